"""Shared fixtures: small real datasets generated once per test session (nothing is committed)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from helpers import run_script

# Small enough for seconds of generation, big enough for every step: a holdout part (fold 0) and a train part.
TINY_DEMO = dict(seed=0, parts=(0, 3), reals_per_part=3, frames=30, pairs_per_part=0)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """A freshly generated tiny demo dataset (raw videos + metadata only). Do not write into it."""
    from demo.make_demo_dataset import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("demo_raw"), **TINY_DEMO)


@pytest.fixture(scope="session")
def preprocessed_demo(tmp_path_factory) -> Path:
    """The tiny demo dataset after `preprocess_data.sh`: boxes, crops, landmarks, diffs and folds.csv."""
    from demo.make_demo_dataset import make_demo_dataset

    root = make_demo_dataset(tmp_path_factory.mktemp("demo_preprocessed"), **TINY_DEMO)
    run_script("bash", "preprocess_data.sh", root, "--workers", "2")
    return root


@pytest.fixture
def python() -> str:
    return sys.executable
