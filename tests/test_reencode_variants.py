"""preprocessing.reencode_variants on a tiny generated dataset: the copies, their metadata, folds and reruns."""
from __future__ import annotations

import json
import re

import av
import pandas as pd
import pytest
from conftest import TINY_DEMO
from helpers import run_script

from core.datasets import load_dfdc
from core.layout import is_variant, load_dataset, variant_dir
from preprocessing.generate_folds import fold_of_part
from preprocessing.reencode_variants import CRF_RANGE, RATE_RANGE, SCALE_RANGE


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from demo.make_demo_dataset import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("variants"), **TINY_DEMO)


def reencode(root, python, *extra):
    return run_script(python, "-m", "preprocessing.reencode_variants", "--root-dir", root, "--workers", "2", *extra,
                      check=False)


def test_copies_beside_the_originals_in_their_part_with_aligned_families(root, python):
    result = reencode(root, python, "--variants", "1", "--seed", "5")
    assert result.returncode == 0, result.stderr
    source = load_dataset(root, variants=False)
    train_sources = [e for e in source.values() if fold_of_part(e.part, 16) != 0]
    assert train_sources and any(fold_of_part(e.part, 16) == 0 for e in source.values())
    assert not variant_dir(root, 0, 1).exists()  # the holdout part gets no copy

    folder = variant_dir(root, 3, 1)
    metadata = json.loads((folder / "metadata.json").read_text())
    assert set(metadata) == {f"{e.video_id}_rv1.mp4" for e in train_sources}
    for name, info in metadata.items():
        original = source[info["reencode"]["source"][:-4]]
        draw = info["reencode"]
        assert CRF_RANGE[0] <= draw["crf"] <= CRF_RANGE[1] and SCALE_RANGE[0] <= draw["scale"] <= SCALE_RANGE[1]
        assert RATE_RANGE[0] <= draw["rate"] <= RATE_RANGE[1]
        if original.is_fake:  # the fake's copy points to its original's copy, made with the same draw
            assert info["original"] == f"{original.original_id}_rv1.mp4"
            assert metadata[info["original"]]["reencode"] | {"source": None} == draw | {"source": None}
        with av.open(str(folder / name)) as copy, av.open(str(original.path)) as src:
            assert copy.streams.video[0].codec_context.height == src.streams.video[0].codec_context.height
            assert not copy.streams.audio

    everything = load_dataset(root)
    copies = [e for e in everything.values() if is_variant(e.video_id)]
    assert len(copies) == len(train_sources) and all(e.part == 3 for e in copies)  # same part, same fold
    assert not any(is_variant(v.id) for v in load_dfdc(root))  # never scored as test videos
    manifest = json.loads((root / "manifests" / "reencode_variants.json").read_text())
    assert set(manifest["videos"]) == {e.video_id for e in copies}
    assert manifest["settings"]["seed"] == 5 and manifest["settings"]["variants"] == 1

    stamps = {p: p.stat().st_mtime_ns for p in folder.glob("*.mp4")}
    again = reencode(root, python, "--variants", "1", "--seed", "5")
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in folder.glob("*.mp4")} == stamps  # finished copies skipped

    other = reencode(root, python, "--variants", "1", "--seed", "6")
    assert other.returncode != 0 and "seed" in other.stderr and "other settings" in other.stderr


@pytest.mark.slow
def test_preprocessing_and_training_use_the_copies_only_when_asked(root, python, tmp_path):
    """preprocess_data.sh processes the copies like any video; folds keep them in their source's fold; the
    trainer uses them with "reencode_variants": true and never validates on them."""
    if not variant_dir(root, 3, 1).is_dir():
        reencode(root, python, "--variants", "1", "--seed", "5")
    run_script("bash", "preprocess_data.sh", root, "--workers", "2")
    folds = pd.read_csv(root / "folds.csv", dtype={"video": str, "original": str})
    copies = folds[folds["video"].map(is_variant)]
    assert not copies.empty and set(copies["fold"]) == {1}
    assert all(folds.loc[folds["video"] == v[: -len("_rv1")], "fold"].iloc[0] == 1 for v in copies["video"].unique()
               if (folds["video"] == v[: -len("_rv1")]).any())

    def train(*extra):
        return run_script(python, "training/pipelines/train_classifier.py", "--config", "configs/demo_cpu.json",
                          "--data-dir", root, "--output-dir", tmp_path / "w", "--logdir", tmp_path / "l",
                          "--workers", "0", "--epochs", "1", "--batches-per-epoch", "1", "--override",
                          "optimizer.batch_size=2", *extra, env={"OMP_NUM_THREADS": "1"})

    def crops(output):
        found = re.search(r"(\d+) train / (-?\d+) val crops", output)
        return int(found.group(1)), int(found.group(2))

    plain = train("--prefix", "plain_")
    with_copies = train("--prefix", "copies_", "--override", "reencode_variants=true")
    train_plain, val_plain = crops(plain.stdout + plain.stderr)
    train_copies, val_copies = crops(with_copies.stdout + with_copies.stderr)
    assert train_copies == train_plain + int((copies["fold"] != 0).sum())
    assert val_copies == val_plain
