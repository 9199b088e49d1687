"""Helpers shared by every preprocessing step: dataset layout, sharding, atomic writes, run summaries."""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Sequence, TypeVar

import cv2
import numpy as np

T = TypeVar("T")
PART_DIR_PATTERN = re.compile(r"^dfdc_train_part_(\d+)$")
CROP_FRAME_STEP = 10  # the original crops every 10th frame

log = logging.getLogger("preprocessing")


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def limit_library_threads() -> None:
    """One thread per worker process: parallelism comes from the worker pool, not from OpenMP/OpenCV."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cv2.setNumThreads(0)
    cv2.ocl.setUseOpenCL(False)


# ---------------------------------------------------------------- dataset layout

@dataclass(frozen=True)
class VideoEntry:
    """One metadata.json entry, with where its file lives."""

    name: str  # file name, e.g. "abc.mp4"
    part: int  # DFDC part number, from the folder name
    path: Path
    label: str  # "REAL" or "FAKE"
    original: str | None  # the original's file name for a fake, None for a real

    @property
    def video_id(self) -> str:
        return Path(self.name).stem

    @property
    def original_id(self) -> str:
        """Id of the video whose boxes this one is cropped with: its original, or itself for a real."""
        return Path(self.original).stem if self.original else self.video_id

    @property
    def is_fake(self) -> bool:
        return self.label == "FAKE"


def part_dirs(root: Path) -> list[tuple[int, Path]]:
    """`dfdc_train_part_N` folders under root, sorted by N."""
    found = []
    for child in Path(root).iterdir():
        match = PART_DIR_PATTERN.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def load_dataset(root: Path) -> dict[str, VideoEntry]:
    """All metadata entries of all parts, keyed by video id.

    Raises ValueError naming the file when a metadata.json is missing or malformed, or a video id is
    listed in two parts.
    """
    root = Path(root)
    parts = part_dirs(root)
    if not parts:
        raise ValueError(f"{root}: no dfdc_train_part_N folders found")
    entries: dict[str, VideoEntry] = {}
    for part, folder in parts:
        meta_path = folder / "metadata.json"
        if not meta_path.is_file():
            raise ValueError(f"{meta_path}: missing metadata.json")
        try:
            metadata = json.loads(meta_path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{meta_path}: not valid JSON ({err})") from err
        for name, info in metadata.items():
            label = info.get("label")
            if label not in ("REAL", "FAKE"):
                raise ValueError(f"{meta_path}: entry {name} has label {label!r}, expected REAL or FAKE")
            entry = VideoEntry(name=name, part=part, path=folder / name, label=label,
                               original=info.get("original") if label == "FAKE" else None)
            if entry.video_id in entries:
                raise ValueError(f"{meta_path}: video {name} is also listed in part {entries[entry.video_id].part}")
            entries[entry.video_id] = entry
    return entries


# ---------------------------------------------------------------- sharding across machines

def default_shard() -> tuple[int, int]:
    """(num_shards, shard_index) from torchrun (WORLD_SIZE/RANK) or a SLURM array, else (1, 0)."""
    if "WORLD_SIZE" in os.environ and "RANK" in os.environ:
        return int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
    if "SLURM_ARRAY_TASK_COUNT" in os.environ and "SLURM_ARRAY_TASK_ID" in os.environ:
        first = int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
        return int(os.environ["SLURM_ARRAY_TASK_COUNT"]), int(os.environ["SLURM_ARRAY_TASK_ID"]) - first
    return 1, 0


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """--root-dir, --workers and the shard options every step accepts."""
    num_shards, shard_index = default_shard()
    parser.add_argument("--root-dir", required=True, type=Path, help="DATA_ROOT holding dfdc_train_part_N/ folders")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    parser.add_argument("--num-shards", type=int, default=num_shards,
                        help="split the videos over this many machines (default from WORLD_SIZE or SLURM_ARRAY_TASK_COUNT)")
    parser.add_argument("--shard-index", type=int, default=shard_index,
                        help="which of the shards this process takes (default from RANK or SLURM_ARRAY_TASK_ID)")


def take_shard(items: Iterable[T], num_shards: int, shard_index: int, key=None) -> list[T]:
    """A stable slice of items: sorted (by key), then every num_shards-th from shard_index."""
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"--shard-index {shard_index} is outside 0..{num_shards - 1}")
    return sorted(items, key=key)[shard_index::num_shards]


# ---------------------------------------------------------------- atomic writes

def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write(handle)` on a temporary file beside `path`, then rename: a kill never leaves a half file at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj).encode())


def atomic_write_image(path: Path, image: np.ndarray) -> None:
    """Encode with OpenCV by the file's extension (BGR or grey input) and write atomically."""
    ok, encoded = cv2.imencode(Path(path).suffix, image)
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode the image")
    atomic_write_bytes(path, encoded.tobytes())


def atomic_write_npy(path: Path, array: np.ndarray) -> None:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(path, buffer.getvalue())


def write_done_marker(folder: Path) -> None:
    """Marks a per-video output folder complete: a rerun trusts only folders that have it."""
    atomic_write_bytes(Path(folder) / ".done", b"")


def is_done(folder: Path) -> bool:
    return (Path(folder) / ".done").is_file()


# ---------------------------------------------------------------- run summary

@dataclass
class RunSummary:
    """Counts what a step did, so a long run ends with one honest line instead of scrolled-away warnings."""

    step: str
    done: int = 0
    skipped: int = 0
    frames_without_face: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)

    def fail(self, name: str, reason: str) -> None:
        log.warning("%s: %s: %s", self.step, name, reason)
        self.failures.append((name, reason))

    def merge(self, other: "RunSummary") -> None:
        self.done += other.done
        self.skipped += other.skipped
        self.frames_without_face += other.frames_without_face
        self.failures.extend(other.failures)
        self.notes.update(other.notes)

    def report(self) -> str:
        lines = [f"[{self.step}] done {self.done}, skipped (already done) {self.skipped}, "
                 f"failed {len(self.failures)}, frames with no face {self.frames_without_face}"]
        lines += [f"[{self.step}]   {key}: {count}" for key, count in sorted(self.notes.items())]
        lines += [f"[{self.step}]   FAILED {name}: {reason}" for name, reason in self.failures]
        text = "\n".join(lines)
        print(text, file=sys.stderr, flush=True)
        return text


def run_parallel(function, jobs: Sequence, workers: int, desc: str):
    """Map `function` over jobs with a process pool (or inline for one worker), with a tqdm bar; yields results."""
    from tqdm import tqdm

    if workers <= 1 or len(jobs) <= 1:
        for job in tqdm(jobs, desc=desc):
            yield function(job)
        return
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers, initializer=limit_library_threads) as pool:
        yield from tqdm(pool.imap_unordered(function, jobs), total=len(jobs), desc=desc)
