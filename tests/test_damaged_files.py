"""Damaged files: every kind of file the project reads, cut short, bit-flipped, emptied or replaced by a file of
another type, goes through the function its command calls. The outcome must be the reader's own error naming the
file (with what to do), or a counted skip naming the file where the run goes on, or a file that still reads as
valid (a flipped bit in a number, a cut at a line end); never a foreign exception. Nothing in the case folder
changes.

The tests draw damages with hypothesis (fixed seed, a small budget). `python tests/test_damaged_files.py` runs
fixed, larger sweeps over the same cases and prints the table of docs/damaged_files.md.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import REPO_ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from helpers import numpy1_pickle_module, save_release_checkpoint

from core.checkpoints import CheckpointError
from core.datasets import DatasetError
from inference.calibration import CalibrationError
from inference.resume import ProgressFileError
from preprocessing.manifest import ManifestError
from training.datasets.classifier_dataset import DataError
from training.tools.config import ConfigError

ERROR, SKIP, READ = "error", "skip", "read"  # own error naming the file; counted named skip; still a valid file
EXAMPLES = 12  # hypothesis examples per kind of file and damage, by default: keeps the module at seconds
SMALL_ENCODER = "efficientnet_lite0"


class Skipped(Exception):
    """A reader that goes on past a bad file reported it: the message is what it logged or counted."""


@cache
def png_bytes(size: int = 16, grey: bool = False) -> bytes:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size) if grey else (size, size, 3), dtype=np.uint8)
    return cv2.imencode(".png", image)[1].tobytes()


# Files of other types that replace a file (each ends with a newline, as a complete line of text would).
OTHER_TYPES = {
    "a PNG image": png_bytes,
    "a JSON list": lambda: b'[["000", "003"]]\n',
    "a CSV table": lambda: b"video,fold\nabc,1\n",
}


@dataclass(frozen=True)
class Kind:
    """One kind of file: its valid content, where it lies in a case folder, and the reader a command calls."""

    name: str
    file: str
    content: Callable[[], bytes]
    read: Callable[[Path, Path], str]  # (case folder, the file) -> READ or raises its error / Skipped
    errors: tuple[type[BaseException], ...]
    remedy: str  # words of what to do, in every message about an empty or foreign file
    setup: Callable[[Path], None] = lambda folder: None
    cut_may_read: bool = False  # line-based: a cut at a line end leaves a shorter valid file
    empty_may_read: bool = False  # an empty file is a valid, empty one (progress: nothing finished yet)
    own_type: str | None = None  # which of OTHER_TYPES it is itself (not used to replace it)
    examples: int = EXAMPLES  # hypothesis examples per damage in the tests
    table_cases: int = 240  # cases per damage in the printed table


# ---------------------------------------------------------------- checkpoints

def tiny_release_checkpoint(legacy_format: bool) -> bytes:
    """The 2020 release's structure (legacy serialisation, NumPy-1.x scalar, 'module.' keys) at a few hundred bytes."""
    torch.manual_seed(0)
    state = {"module.encoder.conv_stem.weight": torch.randn(4, 3, 3, 3), "module.fc.weight": torch.randn(1, 4),
             "module.fc.bias": torch.zeros(1)}
    buffer = io.BytesIO()
    torch.save({"epoch": 37, "state_dict": state, "bce_best": np.float64(0.1953)}, buffer,
               pickle_module=numpy1_pickle_module, pickle_protocol=2, _use_new_zipfile_serialization=not legacy_format)
    return buffer.getvalue()


def read_checkpoint_file(folder: Path, path: Path) -> str:
    from core.checkpoints import read_checkpoint

    read_checkpoint(path)
    return READ


@cache
def small_release_checkpoint(legacy_format: bool) -> bytes:
    from core.models import DeepFakeClassifier

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_release_checkpoint(DeepFakeClassifier(SMALL_ENCODER, pretrained=False), Path(tmp) / "model",
                                       legacy_format)
        return path.read_bytes()


def check_checkpoint_command(folder: Path, path: Path) -> str:
    """`python -m core.checkpoints --encoder ... FILE`: exit 0 and OK, or exit 1 and FAILED with the message."""
    from core.checkpoints import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--encoder", SMALL_ENCODER, str(path)])
    if code == 0 and out.getvalue().startswith("OK"):
        return READ
    assert code == 1 and err.getvalue().startswith("FAILED"), (code, out.getvalue(), err.getvalue())
    raise CheckpointError(err.getvalue())


# ---------------------------------------------------------------- inference files

CHECKPOINTS = [{"name": "model", "bytes": 123, "mtime_ns": 456}]


def calibration_content() -> bytes:
    from inference.calibration import Calibration, write_calibration

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "calibration.json"
        write_calibration(path, Calibration(1.3, -0.2), CHECKPOINTS, {"videos": 4, "fakes": 2, "reals": 2},
                          {"folds": 2})
        return path.read_bytes()


def read_calibration_file(folder: Path, path: Path) -> str:
    """What predict_folder.py --calibration does: read the file, then check it was fitted for these checkpoints."""
    from inference.calibration import check_checkpoints, read_calibration

    _calibration, fitted_for = read_calibration(path)
    check_checkpoints(path, fitted_for, CHECKPOINTS)
    return READ


def read_applied_record(folder: Path, path: Path) -> str:
    from inference.calibration import read_applied

    read_applied(folder / "submission.csv")
    return READ


RUN_KEY = {"models": CHECKPOINTS, "precision": "fp32", "test_dir": "/videos"}


def progress_content() -> bytes:
    records = [{"run_key": RUN_KEY},
               {"name": "a.mp4", "score": 0.25, "failure": None, "reason": None, "crop_keys": [[0, 0], [10, 0]],
                "crop_scores": [0.2, 0.3]},
               {"name": "b.mp4", "score": None, "failure": "no_face", "reason": "no face", "crop_keys": [],
                "crop_scores": []}]
    return "".join(json.dumps(record) + "\n" for record in records).encode()


def read_progress_file(folder: Path, path: Path) -> str:
    """What predict_folder.py does before scoring: the finished videos of the progress files of --output."""
    from inference.resume import load_finished

    load_finished(folder / "submission.csv", RUN_KEY)
    return READ


def read_config_file(folder: Path, path: Path) -> str:
    """train_classifier.py --config FILE."""
    from training.tools.config import load_config

    load_config(path)
    return READ


# ---------------------------------------------------------------- dataset and label files

def metadata_content() -> bytes:
    return json.dumps({"real.mp4": {"label": "REAL", "split": "train", "original": None},
                       "fake.mp4": {"label": "FAKE", "split": "train", "original": "real.mp4"}}).encode()


def read_dataset_metadata(folder: Path, path: Path) -> str:
    """Every preprocessing step starts with core.layout.load_dataset (and exits with its message)."""
    from core.layout import load_dataset

    load_dataset(folder)
    return READ


def labels_content() -> bytes:
    return b"filename,label\na.mp4,FAKE\nb.mp4,REAL\nc.mp4,1\n"


def empty_videos(*names: str) -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        for name in names:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(b"")
    return setup


def load_collection_of(split: str | None = None) -> Callable[[Path, Path], str]:
    """evaluate.py / predict_folder.py --dataset: the labelled collection under the case folder."""
    def read(folder: Path, path: Path) -> str:
        from core.datasets import load_collection

        load_collection(folder, split)
        return READ
    return read


def read_labels_csv(folder: Path, path: Path) -> str:
    """evaluate.py --labels FILE."""
    from evaluate import read_labels

    read_labels([path])
    return READ


def folds_content() -> bytes:
    rows = ["video,file,label,original,frame,fold", "real,0_0.png,0,real,0,0", "real,10_0.png,0,real,10,0",
            "fake,0_0.png,1,real,0,0", "fake,10_0.png,1,real,10,0"]
    return ("\n".join(rows) + "\n").encode()


def read_folds_file(folder: Path, path: Path) -> str:
    """What train_classifier.py reads first: folds.csv, then the validation rows of fold 0."""
    from training.datasets.classifier_dataset import read_folds, select_rows

    select_rows(read_folds(path), 0, "val")
    return READ


def ffpp_split_content() -> bytes:
    return json.dumps([["000", "003"], ["001", "870"], ["002", "006"]]).encode()


def read_ffpp_split_file(folder: Path, path: Path) -> str:
    from core.datasets import read_ffpp_split

    read_ffpp_split(path)
    return READ


CELEBDF_VIDEOS = ("YouTube-real/00000.mp4", "Celeb-real/id1_0000.mp4", "Celeb-synthesis/id0_id1_0000.mp4")


def celebdf_list_content() -> bytes:
    return b"1 YouTube-real/00000.mp4\n1 Celeb-real/id1_0000.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n"


# ---------------------------------------------------------------- preprocessing outputs

def boxes_content() -> bytes:
    return json.dumps({"0": [[10.5, 12.0, 60.25, 70.0]], "10": None, "20": [[11.0, 12.5, 61.0, 71.0],
                                                                          [80.0, 10.0, 120.0, 55.5]]}).encode()


def read_boxes_file(folder: Path, path: Path) -> str:
    from core.layout import load_boxes

    load_boxes(path)
    return READ


def manifest_content() -> bytes:
    return json.dumps({"step": "extract_crops", "settings": {"crop_every": 10, "crop_pad_divisor": 3},
                       "videos": ["fake", "real"]}, indent=1).encode()


def read_step_manifest(folder: Path, path: Path) -> str:
    """What every step does first: the settings (and videos) an earlier run of a step recorded."""
    from preprocessing.manifest import recorded_settings, recorded_videos

    recorded_settings(folder, "extract_crops")
    recorded_videos(folder, "extract_crops")
    return READ


def landmarks_content() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([[30, 40], [60, 41], [45, 55], [33, 70], [58, 70]], dtype=np.int16))
    return buffer.getvalue()


@contextlib.contextmanager
def logged(logger: str):
    """The warnings `logger` writes inside the block."""
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Collect(logging.WARNING)
    target = logging.getLogger(logger)
    target.addHandler(handler)
    try:
        yield records
    finally:
        target.removeHandler(handler)


def training_dataset(folder: Path):
    import pandas as pd

    from core.layout import FOLDS_COLUMNS
    from training.datasets.classifier_dataset import (
        DatasetOptions,
        DeepFakeClassifierDataset,
    )

    return DeepFakeClassifierDataset(pd.DataFrame(columns=list(FOLDS_COLUMNS)), "val", DatasetOptions(folder),
                                     transforms=None)


def read_landmarks_in_training(folder: Path, path: Path) -> str:
    """The training dataset's landmark reader: a bad file is logged by name and the crop gets no landmark cut-out."""
    from training.datasets.classifier_dataset import CropRow

    with logged("training.dataset") as warnings:
        points = training_dataset(folder)._read_landmarks(CropRow("fake", "0_0.png", 1, "real", 0))
    if points is None:
        raise Skipped("\n".join(warnings))
    return READ


def read_diff_in_training(folder: Path, path: Path) -> str:
    """The training dataset's diff reader: a bad diff is logged by name and used as 'no change'."""
    from training.datasets.classifier_dataset import CropRow

    with logged("training.dataset") as warnings:
        training_dataset(folder)._read_diff(CropRow("fake", "0_0.png", 1, "real", 0), (16, 16))
    if warnings:
        raise Skipped("\n".join(warnings))
    return READ


def read_crop_in_step(folder: Path, path: Path) -> str:
    """Step 3 (generate_landmarks) reading a video's crops: a bad crop is a counted failure naming the file."""
    from preprocessing.common import RunSummary
    from preprocessing.generate_landmarks import read_crops

    summary = RunSummary("generate_landmarks")
    read_crops(path.parent, [path.name], summary)
    if summary.failures:
        raise Skipped("\n".join(f"{name}: {reason}" for name, reason in summary.failures))
    return READ


# ----------------------------------------------------------------

KINDS = [
    Kind("checkpoint, 2020 release format (legacy)", "model.pth", lambda: tiny_release_checkpoint(True),
         read_checkpoint_file, (CheckpointError,), "fetch it again", table_cases=600),
    Kind("checkpoint, zip format", "model.pth", lambda: tiny_release_checkpoint(False), read_checkpoint_file,
         (CheckpointError,), "fetch it again", table_cases=600),
    Kind("checkpoint, legacy, `python -m core.checkpoints`", "model.pth", lambda: small_release_checkpoint(True),
         check_checkpoint_command, (CheckpointError,), "fetch it again", examples=4, table_cases=40),
    Kind("checkpoint, zip, `python -m core.checkpoints`", "model.pth", lambda: small_release_checkpoint(False),
         check_checkpoint_command, (CheckpointError,), "fetch it again", examples=4, table_cases=40),
    Kind("calibration JSON (--calibration)", "calibration.json", calibration_content, read_calibration_file,
         (CalibrationError,), "evaluate.py --fit-calibration"),
    Kind("calibration record beside a CSV", "submission.csv.calibration.json", calibration_content,
         read_applied_record, (CalibrationError,), "predict_folder.py"),
    Kind("training config", "config.json", lambda: (REPO_ROOT / "configs" / "demo_cpu.json").read_bytes(),
         read_config_file,
         (ConfigError,), "configs/"),
    Kind("metadata.json", "dfdc_train_part_0/metadata.json", metadata_content, read_dataset_metadata,
         (ValueError,), "metadata.json again"),
    Kind("labels.csv (DFDC test layout)", "labels.csv", labels_content, load_collection_of(), (DatasetError,),
         "labels.csv again", setup=empty_videos("a.mp4", "b.mp4", "c.mp4"), cut_may_read=True),
    Kind("labels CSV (evaluate.py --labels)", "labels.csv", labels_content, read_labels_csv,
         (DatasetError, SystemExit), "filename,label", cut_may_read=True),
    Kind("folds.csv", "folds.csv", folds_content, read_folds_file, (DataError,), "generate_folds",
         cut_may_read=True),
    Kind("FF++ split (test.json)", "test.json", ffpp_split_content, read_ffpp_split_file, (DatasetError,),
         "FaceForensics repository", own_type="a JSON list"),
    Kind("Celeb-DF list", "List_of_testing_videos.txt", celebdf_list_content, load_collection_of("test"),
         (DatasetError,), "Celeb-DF v2 download", setup=empty_videos(*CELEBDF_VIDEOS), cut_may_read=True),
    Kind("boxes JSON", "boxes/real.json", boxes_content, read_boxes_file, (ValueError,), "detect_original_faces"),
    Kind("landmarks .npy (training)", "landmarks/real/0_0.npy", landmarks_content, read_landmarks_in_training,
         (Skipped,), "rerun the landmarks step"),
    Kind("crop PNG (step 3)", "crops/real/0_0.png", png_bytes, read_crop_in_step, (Skipped,), "unreadable crop",
         own_type="a PNG image"),
    Kind("diff PNG (training)", "diffs/fake/0_0_diff.png", lambda: png_bytes(16, grey=True), read_diff_in_training,
         (Skipped,), "bad diff", own_type="a PNG image"),
    Kind("step manifest", "manifests/extract_crops.json", manifest_content, read_step_manifest, (ManifestError,),
         "rerun extract_crops"),
    Kind("progress file (predict_folder.py)", "submission.csv.progress.jsonl", progress_content, read_progress_file,
         (ProgressFileError,), "--restart", cut_may_read=True, empty_may_read=True),
]
KIND_IDS = [kind.name for kind in KINDS]


@cache
def valid_content(kind: Kind) -> bytes:
    return kind.content()


def snapshot(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha1(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@dataclass
class Result:
    outcome: str
    message: str = ""


def attempt(kind: Kind, data: bytes) -> Result:
    """Write `data` as the kind's file in a fresh case folder and run its reader; checks that apply to every case:
    an error or skip names the file, and no file in the folder changed or went missing."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        kind.setup(folder)
        path = folder / kind.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        before = snapshot(folder)
        try:
            result = Result(kind.read(folder, path))
        except kind.errors as err:
            message = str(err.code if isinstance(err, SystemExit) else err)
            result = Result(SKIP if isinstance(err, Skipped) else ERROR, message)
            assert str(path) in message, f"the message does not name {path}: {message}"
        after = snapshot(folder)
        assert {name: after.get(name) for name in before} == before, "a file in the case folder changed"
        return result


def cut(data: bytes, length: int) -> bytes:
    return data[:length]


def flip(data: bytes, offset: int, bit: int) -> bytes:
    damaged = bytearray(data)
    damaged[offset] ^= 1 << bit
    return bytes(damaged)


def allowed_outcomes(kind: Kind, damage: str, data: bytes) -> set[str]:
    """ERROR or SKIP; READ too where the damaged bytes can still be a valid file of the kind."""
    allowed = {ERROR, SKIP}
    if damage == "bit-flipped" or (damage == "empty" and kind.empty_may_read):
        allowed.add(READ)
    if damage == "truncated" and (kind.cut_may_read or data.strip() == valid_content(kind).strip()):
        allowed.add(READ)  # a cut at a line end, or one that takes only the final newline
    return allowed


def fuzz(kind: Kind, damage: str, damaged: Callable[[st.DataObject, bytes], bytes]) -> None:
    """Run the kind's reader on `kind.examples` damaged copies drawn by hypothesis (fixed seed, no database)."""
    content = valid_content(kind)

    @settings(database=None, derandomize=True, max_examples=kind.examples, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def run(data):
        damaged_content = damaged(data, content)
        assert attempt(kind, damaged_content).outcome in allowed_outcomes(kind, damage, damaged_content)

    run()


# ---------------------------------------------------------------- tests

@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_valid_file_reads(kind):
    assert attempt(kind, valid_content(kind)).outcome == READ


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_truncated_file(kind):
    fuzz(kind, "truncated",
         lambda data, content: cut(content, data.draw(st.integers(0, len(content) - 1), label="length")))


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_bit_flipped_file(kind):
    fuzz(kind, "bit-flipped",
         lambda data, content: flip(content, data.draw(st.integers(0, len(content) - 1), label="offset"),
                                    data.draw(st.integers(0, 7), label="bit")))


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
@pytest.mark.parametrize("other", ["empty", *OTHER_TYPES])
def test_empty_or_other_type_file(kind, other):
    if other == kind.own_type:
        pytest.skip(f"{kind.name} is {other} itself")
    data = b"" if other == "empty" else OTHER_TYPES[other]()
    result = attempt(kind, data)
    assert result.outcome in allowed_outcomes(kind, "empty" if other == "empty" else "other type", data)
    if result.outcome != READ:
        assert kind.remedy.lower() in result.message.lower(), result.message


def assert_every_cut_is_named(content: bytes, lengths, folder: Path) -> None:
    from core.checkpoints import read_checkpoint

    cut_file = folder / "cut.pth"
    for length in lengths:
        cut_file.write_bytes(content[:length])
        with pytest.raises(CheckpointError, match="may be truncated.*fetch it again") as caught:
            read_checkpoint(cut_file)
        assert str(cut_file) in str(caught.value)


def test_release_checkpoint_cut_anywhere_is_named(tmp_path):
    """The lengths the legacy loader used to answer with IndexError or struct.error: every 7th cut up to 4,000
    bytes of a file in the release format (efficientnet_lite0 weights, the B7 release's structure), then 12 cuts
    spread over the rest of it."""
    content = small_release_checkpoint(True)
    spread = np.linspace(4000, len(content) - 1, 12).astype(int)
    assert_every_cut_is_named(content, [*range(1, 4000, 7), *spread], tmp_path)


@pytest.mark.slow
def test_b7_release_checkpoint_cut_anywhere_in_its_first_4000_bytes_is_named(tmp_path):
    """The sweep as first reported: a B7 checkpoint in the 2020 release format, cut at every 3rd length."""
    from core.models import DeepFakeClassifier

    full = save_release_checkpoint(DeepFakeClassifier("tf_efficientnet_b7_ns", pretrained=False), tmp_path / "b7")
    with open(full, "rb") as handle:
        head = handle.read(4000)
    assert_every_cut_is_named(head, range(1, 4000, 3), tmp_path)


def test_damaged_boxes_file_is_a_counted_failure_of_its_video(tmp_path):
    """extract_crops goes on past a video whose boxes file is damaged: one failure, naming the file."""
    from core.layout import VideoEntry, boxes_path
    from preprocessing.extract_crops import crop_video

    entry = VideoEntry("real.mp4", 0, tmp_path / "dfdc_train_part_0" / "real.mp4", "REAL", None)
    boxes = boxes_path(tmp_path, "real")
    boxes.parent.mkdir()
    boxes.write_bytes(boxes_content()[:25])
    summary = crop_video((tmp_path, entry, entry.path, 10, False))
    assert summary.done == 0 and len(summary.failures) == 1
    name, reason = summary.failures[0]
    assert name == "real.mp4" and str(boxes) in reason and "rerun detect_original_faces" in reason
    assert boxes.read_bytes() == boxes_content()[:25]


# ---------------------------------------------------------------- the table

DAMAGES = ("truncated", "bit-flipped", "empty", "other type")


def sweep(kind: Kind, damage: str) -> list[bytes]:
    """Fixed, evenly spread cases: lengths, or (offset, bit) pairs, up to kind.table_cases; one empty file; the
    files of other types."""
    content = valid_content(kind)
    if damage == "truncated":
        return [cut(content, int(n)) for n in np.unique(np.linspace(0, len(content) - 1, kind.table_cases).astype(int))]
    if damage == "bit-flipped":
        offsets = np.unique(np.linspace(0, len(content) - 1, kind.table_cases).astype(int))
        return [flip(content, int(offset), int(offset) % 8) for offset in offsets]
    if damage == "empty":
        return [b""]
    return [make() for name, make in OTHER_TYPES.items() if name != kind.own_type]


@dataclass
class Cell:
    outcomes: Counter = field(default_factory=Counter)
    foreign: Counter = field(default_factory=Counter)

    def text(self) -> str:
        total = sum(self.outcomes.values()) + sum(self.foreign.values())
        parts = [f"{count} {name}" for name, count in sorted(self.outcomes.items())]
        parts += [f"**{count} {name}**" for name, count in sorted(self.foreign.items())]
        return f"{total}: " + ", ".join(parts)


def table() -> str:
    lines = ["| file (reader) | " + " | ".join(DAMAGES) + " |", "|---|" + "---|" * len(DAMAGES)]
    for kind in KINDS:
        cells = []
        for damage in DAMAGES:
            cell = Cell()
            for data in sweep(kind, damage):
                try:
                    result = attempt(kind, data)
                except AssertionError as err:
                    cell.foreign[f"failed check: {str(err).splitlines()[0][:60]}"] += 1
                except Exception as err:  # noqa: BLE001 - a foreign exception is what the table counts
                    cell.foreign[f"foreign {type(err).__name__}"] += 1
                else:
                    cell.outcomes[result.outcome] += 1
            cells.append(cell.text())
        lines.append(f"| {kind.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def header() -> str:
    import datetime
    import os
    import subprocess

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                            text=True, check=False).stdout.strip()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; commit {commit}; machine: "
            f"{os.cpu_count()} CPU cores, {memory:.0f} GiB, load {load} at the start\n"
            f"Command: python tests/test_damaged_files.py\n"
            f"Cell: cases tried: outcomes (error = the reader's own error naming the file; skip = a counted or "
            f"logged skip naming the file, the run goes on; read = the damaged bytes still read as a valid file)\n")


if __name__ == "__main__":
    print(header())
    with contextlib.redirect_stderr(io.StringIO()):  # the readers' warnings, one per skipped case
        printed = table()
    print(printed)
