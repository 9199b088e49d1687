"""The DFDC dataset layout: part folders, metadata.json, and where each preprocessing step writes under DATA_ROOT.

    DATA_ROOT/dfdc_train_part_N/*.mp4 + metadata.json   {"x.mp4": {"label": "FAKE"|"REAL", "original": "y.mp4"|null}}
    DATA_ROOT/boxes/<id>.json                            step 1
    DATA_ROOT/crops/<id>/<frame>_<actor>.png             step 2
    DATA_ROOT/landmarks/<id>/<frame>_<actor>.npy         step 3
    DATA_ROOT/landmarks68/<id>/<frame>_<actor>.npy       step 3b (dlib 68 points, for self-blended training)
    DATA_ROOT/diffs/<id>/<frame>_<actor>_diff.png        step 4
    DATA_ROOT/folds.csv                                  step 5
    DATA_ROOT/manifests/<step>.json                      what each step made, with its settings
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from core.settings import read_json_object

PART_DIR_PATTERN = re.compile(r"^dfdc_train_part_(\d+)$")
METADATA_FILE = "metadata.json"
LABELS = ("REAL", "FAKE")
# Containers PyAV opens that datasets ship videos in; matched case-insensitively.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


def is_video_file(path: Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS and Path(path).is_file()


def list_videos(folder: Path) -> tuple[list[Path], list[Path]]:
    """(video files, other entries) directly inside folder, each sorted by name; extensions match in any case."""
    videos, others = [], []
    for path in sorted(Path(folder).iterdir()):
        (videos if is_video_file(path) else others).append(path)
    return videos, others


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


def read_metadata(path: Path) -> dict[str, dict]:
    """One metadata.json as {file name: {"label": "REAL"|"FAKE", "original": name or None}}.

    Raises ValueError naming the file for a missing or malformed file or an entry without a valid label.
    """
    metadata = read_json_object(path, f"{METADATA_FILE} (a JSON object of video entries)")
    entries = {}
    for name, info in metadata.items():
        label = info.get("label") if isinstance(info, dict) else None
        if label not in LABELS:
            raise ValueError(f"{path}: entry {name} has label {label!r}, expected REAL or FAKE")
        entries[name] = {"label": label, "original": info.get("original") if label == "FAKE" else None}
    return entries


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
        meta_path = folder / METADATA_FILE
        for name, info in read_metadata(meta_path).items():
            entry = VideoEntry(name=name, part=part, path=folder / name, label=info["label"],
                               original=info["original"])
            if entry.video_id in entries:
                raise ValueError(f"{meta_path}: video {name} is also listed in part {entries[entry.video_id].part}")
            entries[entry.video_id] = entry
    return entries


def unlisted_videos(root: Path, entries: dict[str, VideoEntry]) -> list[Path]:
    """Video files inside the part folders that no metadata.json lists (they get no boxes, crops or rows)."""
    listed = {entry.path.resolve() for entry in entries.values()}
    return sorted(path for _part, folder in part_dirs(root) for path in folder.iterdir()
                  if is_video_file(path) and path.resolve() not in listed)


# ---------------------------------------------------------------- stage outputs

BOXES_DIR = "boxes"
CROPS_DIR = "crops"
LANDMARKS_DIR = "landmarks"
LANDMARKS68_DIR = "landmarks68"
DIFFS_DIR = "diffs"
FOLDS_FILE = "folds.csv"
MANIFESTS_DIR = "manifests"
FOLDS_COLUMNS = ("video", "file", "label", "original", "frame", "fold")
TRACK_COLUMNS = ("track", "changed")  # folds.csv made from boxes with tracks (docs/people.md); empty otherwise

CROP_NAME_PATTERN = re.compile(r"^(\d+)_(\d+)\.png$")


def boxes_path(root: Path, video_id: str) -> Path:
    return Path(root) / BOXES_DIR / f"{video_id}.json"


def crops_folder(root: Path, video_id: str) -> Path:
    return Path(root) / CROPS_DIR / video_id


def landmarks_folder(root: Path, video_id: str) -> Path:
    return Path(root) / LANDMARKS_DIR / video_id


def landmarks68_folder(root: Path, video_id: str) -> Path:
    return Path(root) / LANDMARKS68_DIR / video_id


def landmarks68_path(root: Path, video_id: str, crop_file: str) -> Path:
    """landmarks68/<video>/<frame>_<actor>.npy for crop file <frame>_<actor>.png."""
    return landmarks68_folder(root, video_id) / f"{Path(crop_file).stem}.npy"


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
    """A boxes/<id>.json file as {frame index: boxes or None}; a box is [x1, y1, x2, y2, track] (half-resolution
    pixels), or [x1, y1, x2, y2] in roots made before tracks (see `box_actors`)."""
    return {int(frame): boxes for frame, boxes in json.loads(Path(path).read_text()).items()}


def box_actors(frame_boxes: list[list[float]]) -> list[int]:
    """The second number of each box's crop name: its track id, or its detection index in a root made before
    tracks (4-number boxes, read as they are)."""
    return [int(box[4]) if len(box) > 4 else index for index, box in enumerate(frame_boxes)]


def box_of_actor(frame_boxes: list[list[float]], actor: int) -> list[float]:
    """x1, y1, x2, y2 of the box whose crop is <frame>_<actor>.png."""
    return frame_boxes[box_actors(frame_boxes).index(actor)][:4]


def boxes_have_tracks(boxes: dict[int, list[list[float]] | None]) -> bool:
    return any(len(box) > 4 for frame_boxes in boxes.values() if frame_boxes for box in frame_boxes)
