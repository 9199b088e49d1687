"""Shared fixtures: small real datasets generated once per test session (nothing is committed)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# Real FaceForensics++ videos in the DFDC layout for the integration test (skipped when absent).
FFPP_ROOT = Path(os.environ.get("FFPP_ROOT") or REPO_ROOT.parent / "shared" / "data" / "ffpp_c40")

# Small enough for seconds of generation, big enough for every step: a holdout part (fold 0) and a train part.
TINY_DEMO = dict(seed=0, parts=(0, 3), reals_per_part=3, frames=30, pairs_per_part=0)


def run_script(*args: str, env: dict | None = None, check: bool = True, timeout: float = 900):
    """Run a repository script or module the way a user does, from the repository root."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    result = subprocess.run([str(a) for a in args], cwd=REPO_ROOT, env=full_env, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


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


def stand_in_on_path(folder: Path, name: str, script: str) -> str:
    """Write an executable stand-in for a command (docker, kaggle) into folder/bin; returns a PATH that finds it first."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    program = bin_dir / name
    program.write_text(script)
    program.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


@pytest.fixture
def python() -> str:
    return sys.executable
