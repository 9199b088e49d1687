"""Resuming predict_folder: its progress files hold one JSON line per finished video, so that an interrupted run
goes on where it stopped.

    <output>.progress.jsonl           a single process
    <output>.progress.rank<R>.jsonl   rank R under torchrun (each rank appends only to its own file)

The first line is {"run_key": {...}}: the settings that change the scores (checkpoint names, sizes and
mtimes, their model cards as used, precision, detector placement, test folder, thumbnail folder). Each further
line is one VideoResult: {"name", "score", "failure", "reason", "crop_keys", "crop_scores", "crop_tracks",
"crop_boxes", "people", "aggregation"}, flushed as soon as the video is done, so an interruption loses at most the
video in flight. The files stay after the final CSVs
are written: a rerun of a finished run scores nothing and writes the same files.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO

import numpy as np

from core.damage import named_errors, read_text
from core.settings import differences
from inference.pipeline import VideoResult


class ProgressFileError(Exception):
    """A progress file from a run with other settings, or not a progress file (the message names it)."""


def progress_file(output: Path, rank: int, world: int) -> Path:
    suffix = ".progress.jsonl" if world == 1 else f".progress.rank{rank}.jsonl"
    return Path(f"{output}{suffix}")


def progress_files(output: Path) -> list[Path]:
    """Every progress file of `output`, whatever world size wrote it."""
    output = Path(output)
    return sorted(output.parent.glob(f"{output.name}.progress*.jsonl"))


def checkpoint_identity(path: Path) -> dict:
    """How a run key (and a calibration file) names a checkpoint: file name, size and modification time."""
    stat = Path(path).stat()
    return {"name": Path(path).name, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def run_key(weights: list[Path], cards: list[dict], precision: str, detector: str, test_dir: Path,
            crops_dir: Path | None) -> dict:
    """The settings a finished video's record depends on, as plain JSON values."""
    key = {"models": [checkpoint_identity(path) for path in weights], "cards": cards, "precision": precision,
           "detector": detector,
           "test_dir": str(Path(test_dir).resolve()),
           "thumbnails": str(Path(crops_dir).resolve()) if crops_dir else None}
    return json.loads(json.dumps(key))


def to_record(result: VideoResult) -> dict:
    scores = [] if result.crop_scores is None else [float(s) for s in result.crop_scores]
    return {"name": result.name, "score": result.score, "failure": result.failure, "reason": result.reason,
            "crop_keys": [list(k) for k in result.crop_keys], "crop_scores": scores,
            "crop_tracks": [int(t) for t in result.crop_tracks],
            "crop_boxes": [] if result.crop_boxes is None else result.crop_boxes.tolist(),
            "people": result.people, "aggregation": result.aggregation}


def from_record(record: dict) -> VideoResult:
    """A progress line as a VideoResult; ValueError, KeyError or TypeError when a field is missing or of another
    kind."""
    score = record["score"]
    if not isinstance(record["name"], str) or not (score is None or isinstance(score, (int, float))):
        raise ValueError(f"a record with name {record['name']!r} and score {score!r}")
    return VideoResult(record["name"], None if score is None else float(score), record["failure"], record["reason"],
                       crop_keys=[(int(frame), int(actor)) for frame, actor in record["crop_keys"]],
                       crop_scores=np.asarray(record["crop_scores"], dtype=np.float64).reshape(-1),
                       crop_tracks=[int(t) for t in record.get("crop_tracks", [])],
                       crop_boxes=np.asarray(record.get("crop_boxes", []), dtype=np.float32).reshape(-1, 4),
                       people=[dict(person) for person in record.get("people", [])],
                       aggregation=record.get("aggregation", "confident"))


PROGRESS_REMEDY = "delete it or pass --restart to score every video again"


def _read_lines(path: Path) -> list[dict]:
    """The file's JSON lines; an unterminated last line (a write cut short) is dropped."""
    text = read_text(path, ProgressFileError, "a progress file", PROGRESS_REMEDY)
    complete = text.split("\n")[:-1]  # the part after the last newline is empty, or a write cut short
    with named_errors(path, ProgressFileError, "a progress file (one JSON object per line)", PROGRESS_REMEDY):
        lines = [json.loads(line) for line in complete if line]
        if not all(isinstance(line, dict) for line in lines):
            raise ValueError("a line is not a JSON object")
        return lines


def load_finished(output: Path, key: dict) -> dict[str, VideoResult]:
    """Finished videos by name from every progress file of `output`; raises ProgressFileError on another key."""
    finished = {}
    for path in progress_files(output):
        lines = _read_lines(path)
        if not lines:
            continue
        found = lines[0].get("run_key")
        if found != key:
            detail = "; ".join(differences(found, key, "file", "now")) if isinstance(found, dict) else "no run key"
            raise ProgressFileError(f"{path} was written by a run with other settings ({detail}); "
                                    f"{PROGRESS_REMEDY}")
        with named_errors(path, ProgressFileError, "a progress file's video records", PROGRESS_REMEDY):
            finished.update((record["name"], from_record(record)) for record in lines[1:])
    return finished


def recorded_run_key(output: Path) -> dict | None:
    """The run key in the first progress file of `output` (what made those predictions), or None without one."""
    for path in progress_files(output):
        lines = _read_lines(path)
        if lines and isinstance(lines[0], dict) and isinstance(lines[0].get("run_key"), dict):
            return lines[0]["run_key"]
    return None


def discard(output: Path) -> None:
    for path in progress_files(output):
        path.unlink()


class ProgressWriter:
    """Appends one flushed line per finished video to this process's progress file."""

    def __init__(self, path: Path, key: dict):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_unterminated_tail()
        self._handle: IO[str] = open(self.path, "a")
        if self._handle.tell() == 0:
            self._write({"run_key": key})

    def _drop_unterminated_tail(self) -> None:
        """Cut a line left half-written by an interruption, so the next record starts on a line of its own."""
        data = self.path.read_bytes() if self.path.exists() else b""
        if data and not data.endswith(b"\n"):
            with open(self.path, "r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)

    def _write(self, obj: dict) -> None:
        self._handle.write(json.dumps(obj) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def append(self, result: VideoResult) -> None:
        self._write(to_record(result))

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ProgressWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
