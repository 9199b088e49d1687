"""Where each preprocessing step writes under DATA_ROOT, and how crop files are named (the stage contract)."""
from __future__ import annotations

import json
import re
from pathlib import Path

BOXES_DIR = "boxes"
CROPS_DIR = "crops"
LANDMARKS_DIR = "landmarks"
DIFFS_DIR = "diffs"
FOLDS_FILE = "folds.csv"
FOLDS_COLUMNS = ("video", "file", "label", "original", "frame", "fold")

CROP_NAME_PATTERN = re.compile(r"^(\d+)_(\d+)\.png$")


def boxes_path(root: Path, video_id: str) -> Path:
    return Path(root) / BOXES_DIR / f"{video_id}.json"


def crops_folder(root: Path, video_id: str) -> Path:
    return Path(root) / CROPS_DIR / video_id


def landmarks_folder(root: Path, video_id: str) -> Path:
    return Path(root) / LANDMARKS_DIR / video_id


def diffs_folder(root: Path, video_id: str) -> Path:
    return Path(root) / DIFFS_DIR / video_id


def landmarks_path(root: Path, video_id: str, crop_file: str) -> Path:
    """landmarks/<video>/<frame>_<actor>.npy for crop file <frame>_<actor>.png."""
    return landmarks_folder(root, video_id) / f"{Path(crop_file).stem}.npy"


def diff_path(root: Path, video_id: str, crop_file: str) -> Path:
    """diffs/<video>/<frame>_<actor>_diff.png for crop file <frame>_<actor>.png."""
    return diffs_folder(root, video_id) / f"{Path(crop_file).stem}_diff.png"


def crop_name(frame: int, actor: int) -> str:
    return f"{frame}_{actor}.png"


def parse_crop_name(name: str) -> tuple[int, int]:
    """(frame, actor) of a crop file name like "120_0.png"; ValueError for anything else."""
    match = CROP_NAME_PATTERN.match(name)
    if not match:
        raise ValueError(f"{name}: not a crop file name (<frame>_<actor>.png)")
    return int(match.group(1)), int(match.group(2))


def list_crops(folder: Path) -> list[str]:
    """Crop file names in a crops folder, ordered by (frame, actor); temporary and marker files are ignored."""
    names = [p.name for p in Path(folder).iterdir() if CROP_NAME_PATTERN.match(p.name)]
    return sorted(names, key=parse_crop_name)


def load_boxes(path: Path) -> dict[int, list[list[float]] | None]:
    """A boxes/<id>.json file as {frame index: boxes or None}."""
    return {int(frame): boxes for frame, boxes in json.loads(Path(path).read_text()).items()}
