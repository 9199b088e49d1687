"""The labels of unchanged people in fake videos: the trainer's "unchanged_tracks" config option.

A fake video in DFDC often swaps one face and leaves another untouched. folds.csv marks each fake crop's person
as changed (1) or not (0) (preprocessing/generate_folds.py). The untouched person's crops can be labelled
    "fake"  as the original did (the default: the faithful recipe keeps the original's labels),
    "real"  relabelled 0, or
    "drop"  left out of training and validation.
Any choice but "fake" needs a folds.csv made with tracks, and is refused before any work on one without.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

UNCHANGED_TRACKS = ("fake", "real", "drop")


class TracksMissing(ValueError):
    """A folds.csv without the track/changed columns for an option that needs them (the message names it)."""


def check_folds_have_tracks(folds_csv: Path, option: str) -> None:
    """Raise TracksMissing when `option` needs per-person flags that `folds_csv` lacks (reads the columns only)."""
    if option == "fake":
        return
    path = Path(folds_csv)
    if not path.is_file():
        return  # reading folds.csv names the missing file
    columns = pd.read_csv(path, nrows=0).columns
    flags = pd.read_csv(path, usecols=["changed"])["changed"] if "changed" in columns else pd.Series(dtype=float)
    if "track" not in columns or flags.notna().sum() == 0:
        raise TracksMissing(f"{path}: \"unchanged_tracks\": \"{option}\" needs to know which person of each fake "
                            f"was changed, and this folds.csv was made without face tracks (no filled 'changed' "
                            f"column). Preprocess a fresh root with preprocess_data.sh (boxes with track ids), or "
                            f"keep \"unchanged_tracks\": \"fake\".")


def apply_unchanged_tracks(folds: pd.DataFrame, option: str) -> pd.DataFrame:
    """folds with the unchanged people of fake videos kept as fake, relabelled real, or dropped."""
    if option == "fake":
        return folds
    unchanged = (folds["label"] == 1) & (pd.to_numeric(folds["changed"], errors="coerce") == 0)
    if option == "drop":
        return folds[~unchanged]
    relabelled = folds.copy()
    relabelled.loc[unchanged, "label"] = 0
    return relabelled
