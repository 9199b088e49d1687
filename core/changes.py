"""Which people of a fake were changed: the rule that turns each track's mean SSIM difference into a flag.

generate_diffs measures, per fake and per track, the mean of that track's diff masks (0: identical to the
original's crops, 1: nothing alike). A track is changed when its mean difference is at least CHANGED_RATIO
times the largest one in the same fake. The rule is relative because re-encoding alone differs a fake from its
original everywhere (more at stronger compression), while the swapped face differs far more than the rest: an
absolute threshold would depend on the codec. A fake with one track has that track changed, as the original
labels assumed.
"""
from __future__ import annotations

TRACK_CHANGES_FILE = "tracks.json"  # diffs/<fake_id>/tracks.json: {"<track>": mean diff}
CHANGED_RATIO = 0.5


def changed_tracks(mean_differences: dict[int, float], ratio: float = CHANGED_RATIO) -> dict[int, bool]:
    """{track: changed} for one fake."""
    if not mean_differences:
        return {}
    largest = max(mean_differences.values())
    return {track: value >= ratio * largest for track, value in mean_differences.items()}
