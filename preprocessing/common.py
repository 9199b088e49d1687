"""Bookkeeping of a preprocessing run: the options every step takes, sharding, done markers and the run summary.

The dataset layout, decoding, detection, atomic writes and worker pools they use live in `core`.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from collections.abc import Iterable

from core.atomic import atomic_write_bytes
from core.processes import world_from_env

T = TypeVar("T")

log = logging.getLogger("preprocessing")


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


# ---------------------------------------------------------------- sharding across machines

def add_common_args(parser: argparse.ArgumentParser) -> None:
    """--root-dir, --workers and the shard options every step accepts."""
    num_shards, shard_index = world_from_env()
    parser.add_argument("--root-dir", required=True, type=Path, help="DATA_ROOT holding dfdc_train_part_N/ folders")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="worker processes (default: all cores)")
    parser.add_argument("--num-shards", type=int, default=num_shards,
                        help="split the videos over this many machines "
                             "(default: from WORLD_SIZE or SLURM_ARRAY_TASK_COUNT, else 1)")
    parser.add_argument("--shard-index", type=int, default=shard_index,
                        help="which of the shards this process takes "
                             "(default: from RANK or SLURM_ARRAY_TASK_ID, else 0)")


def take_shard(items: Iterable[T], num_shards: int, shard_index: int, key=None) -> list[T]:
    """A stable slice of items: sorted (by key), then every num_shards-th from shard_index."""
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"--shard-index {shard_index} is outside 0..{num_shards - 1}")
    return sorted(items, key=key)[shard_index::num_shards]


# ---------------------------------------------------------------- done markers

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

    def merge(self, other: RunSummary) -> None:
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
