"""Labelled video collections in the standard layouts, as records of path, id, label, group and split.

Layouts (detected from the folders under ROOT):
    ffpp      FaceForensics++: ROOT/original_sequences/{youtube,actors}/<compression>/videos/*.mp4 (real) and
              ROOT/manipulated_sequences/<Method>/<compression>/videos/*.mp4 (fake, one group per method; reals
              are grouped as original_youtube / original_actors). Id: the path relative to ROOT (the methods share
              file names). Split: an official split file (e.g. test.json, a list of [target, source] pairs):
              it keeps the originals it names and the fakes <target>_<source> and <source>_<target>; the actors'
              videos and DeepFakeDetection are in no official split and are dropped with it.
    celebdf   Celeb-DF v2: ROOT/Celeb-real, ROOT/YouTube-real (real), ROOT/Celeb-synthesis (fake); the group is
              the folder. Id: the path relative to ROOT, as in List_of_testing_videos.txt, whose lines read
              "<flag> <folder>/<file>" with flag 1 = REAL and 0 = FAKE (the opposite of this project's 1 = fake;
              every line is checked against its folder). Split "test": the videos that list names; "train": the rest.
    dfdc      DFDC training parts: ROOT/dfdc_train_part_N/ with metadata.json (core.layout), or one part folder
              itself; group = the part folder. Id: the file name (metadata.json's key).
    dfdc_test DFDC public test set: ROOT/labels.csv (filename,label with 1 = FAKE, or REAL/FAKE) beside the videos;
              one group "test". Id: the file name.
"""
from __future__ import annotations

import csv
import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path

from core.damage import named_errors, read_json, read_text
from core.layout import METADATA_FILE, is_video_file, load_dataset, part_dirs, read_metadata

FFPP_ORIGINALS = "original_sequences"
FFPP_MANIPULATED = "manipulated_sequences"
CELEBDF_FOLDERS = {"Celeb-real": 0, "YouTube-real": 0, "Celeb-synthesis": 1}
CELEBDF_TEST_LIST = "List_of_testing_videos.txt"
CELEBDF_REAL_FLAG = "1"  # in List_of_testing_videos.txt, 1 marks a real video
CELEBDF_LIST_REMEDY = "fetch List_of_testing_videos.txt again from the Celeb-DF v2 download"
DFDC_TEST_LABELS = "labels.csv"
LAYOUTS = ("ffpp", "celebdf", "dfdc", "dfdc_test")
# Label words and numbers accepted in label files (1 = fake).
LABEL_VALUES = {"REAL": 0, "FAKE": 1, "0": 0, "1": 1}


class DatasetError(ValueError):
    """A root in no known layout, a malformed label or split file; the message names the path."""


@dataclass(frozen=True)
class LabelledVideo:
    path: Path
    id: str  # unique within the collection: the row name in predict_folder's CSV
    label: int  # 1 = fake, 0 = real
    group: str  # manipulation method, source folder or part
    split: str | None = None  # the split it belongs to, when the layout says
    original: str | None = None  # a fake's original (the real video whose face was replaced): its id, when present


@dataclass(frozen=True)
class Collection:
    layout: str
    root: Path
    videos: list[LabelledVideo]


def parse_label(value, where: str) -> int:
    """0/1 (fake = 1) from REAL/FAKE or 0/1 in any case ("1.0" too); DatasetError naming `where` otherwise."""
    label = LABEL_VALUES.get(str(value).strip().upper().removesuffix(".0"))
    if label is None:
        raise DatasetError(f"{where} has label {value!r}; expected REAL/FAKE or 0/1")
    return label


def detect_layout(root: Path) -> str:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    if (root / FFPP_ORIGINALS).is_dir() or (root / FFPP_MANIPULATED).is_dir():
        return "ffpp"
    if any((root / name).is_dir() for name in CELEBDF_FOLDERS):
        return "celebdf"
    if part_dirs(root) or (root / METADATA_FILE).is_file():
        return "dfdc"
    if (root / DFDC_TEST_LABELS).is_file():
        return "dfdc_test"
    raise DatasetError(f"{root}: no known dataset layout (looked for FaceForensics++ {FFPP_ORIGINALS}/ and "
                       f"{FFPP_MANIPULATED}/, Celeb-DF {', '.join(CELEBDF_FOLDERS)}/, DFDC dfdc_train_part_N/ or "
                       f"{METADATA_FILE}, DFDC test {DFDC_TEST_LABELS}); for a plain folder of videos use "
                       f"predict_folder.py --test-dir and evaluate.py --labels")


def _videos_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.iterdir() if is_video_file(path)) if folder.is_dir() else []


def _relative_id(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


# ---------------------------------------------------------------- FaceForensics++

def _ffpp_sources(root: Path) -> list[tuple[Path, str, int]]:
    """(sequence folder, group, label) for every original source and manipulation method."""
    sources = []
    for kind, label in ((FFPP_ORIGINALS, 0), (FFPP_MANIPULATED, 1)):
        folder = root / kind
        for child in sorted(folder.iterdir()) if folder.is_dir() else []:
            if child.is_dir():
                sources.append((child, f"original_{child.name}" if label == 0 else child.name, label))
    return sources


def _ffpp_compression(root: Path, sources, compression: str | None) -> str:
    found = sorted({c.name for folder, _g, _l in sources for c in folder.iterdir() if (c / "videos").is_dir()})
    if compression is not None:
        if compression not in found:
            raise DatasetError(f"{root}: no <sequence>/{compression}/videos folder; found compressions "
                               f"{', '.join(found) or 'none'}")
        return compression
    if len(found) != 1:
        raise DatasetError(f"{root}: {'no' if not found else 'several'} compression folders "
                           f"({', '.join(found) or 'none'} under <sequence>/<compression>/videos); "
                           f"choose one with --compression")
    return found[0]


def read_ffpp_split(path: Path) -> set[str]:
    """Video stems an official FF++ split file names: each pair's two originals and both fakes' names."""
    remedy = "fetch it again (splits/test.json, train.json or val.json in the FaceForensics repository)"
    pairs = read_json(path, DatasetError, "an FF++ split file (a JSON list of [target, source] pairs)", remedy)
    stems = set()
    for pair in pairs if isinstance(pairs, list) else [pairs]:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(name, str) for name in pair)):
            raise DatasetError(f"{path}: not an FF++ split file (a JSON list of [target, source] pairs): found "
                               f"{pair!r}; {remedy}")
        target, source = pair
        stems.update({target, source, f"{target}_{source}", f"{source}_{target}"})
    return stems


def ffpp_original(video_id: str, group: str, compression: str) -> str:
    """Id of the original an FF++ fake was made from: the target of <target>_<source>.mp4, or for
    DeepFakeDetection's <actor>_<actor2>__<scene>__<code>.mp4 the actor's <actor>__<scene>.mp4."""
    stem = Path(video_id).stem
    if group == "DeepFakeDetection":
        actors, scene = stem.split("__")[:2]
        return f"{FFPP_ORIGINALS}/actors/{compression}/videos/{actors.split('_')[0]}__{scene}{Path(video_id).suffix}"
    return f"{FFPP_ORIGINALS}/youtube/{compression}/videos/{stem.split('_')[0]}{Path(video_id).suffix}"


def load_ffpp(root: Path, split: Path | None = None, compression: str | None = None) -> list[LabelledVideo]:
    sources = _ffpp_sources(root)
    compression = _ffpp_compression(root, sources, compression)
    keep = read_ffpp_split(split) if split is not None else None
    split_name = Path(split).stem if split is not None else None
    videos = []
    for folder, group, label in sources:
        for path in _videos_in(folder / compression / "videos"):
            if keep is not None and path.stem not in keep:
                continue
            video_id = _relative_id(root, path)
            original = ffpp_original(video_id, group, compression) if label else None
            videos.append(LabelledVideo(path, video_id, label, group, split_name, original))
    return videos


# ---------------------------------------------------------------- Celeb-DF v2

def read_celebdf_list(path: Path) -> dict[str, int]:
    """{relative path: label (1 = fake)} from a List_of_testing_videos.txt ("1 YouTube-real/00170.mp4")."""
    text = read_text(path, DatasetError, "a Celeb-DF list of videos", CELEBDF_LIST_REMEDY)
    entries = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ("0", "1"):
            raise DatasetError(f"{path}:{number}: expected '<0|1> <folder>/<file>', found {line!r}; "
                               f"{CELEBDF_LIST_REMEDY}")
        entries[parts[1]] = 0 if parts[0] == CELEBDF_REAL_FLAG else 1
    return entries


def load_celebdf(root: Path, split: str | Path | None = None) -> list[LabelledVideo]:
    listed: dict[str, int] = {}
    list_file = Path(split) if split not in (None, "test", "train") else root / CELEBDF_TEST_LIST
    if split is not None:
        if not list_file.is_file():
            raise DatasetError(f"{list_file}: the Celeb-DF test list is missing (split {split})")
        listed = read_celebdf_list(list_file)
    elif list_file.is_file():
        listed = read_celebdf_list(list_file)
    videos = []
    for folder, label in CELEBDF_FOLDERS.items():
        for path in _videos_in(root / folder):
            video_id = _relative_id(root, path)
            if video_id in listed and listed[video_id] != label:
                raise DatasetError(f"{list_file}: {video_id} is listed as {'FAKE' if listed[video_id] else 'REAL'}"
                                   f" but lies in {folder}/ (flag {CELEBDF_REAL_FLAG} means REAL)")
            original = None
            if label and path.stem.count("_") >= 2:  # id<t>_id<s>_<clip>.mp4 swaps into Celeb-real/id<t>_<clip>.mp4
                target, _source, clip = path.stem.split("_", 2)
                original = f"Celeb-real/{target}_{clip}{path.suffix}"
            videos.append(LabelledVideo(path, video_id, label, folder, "test" if video_id in listed else "train",
                                        original))
    if split is not None and not listed:
        raise DatasetError(f"{list_file}: lists no video; {CELEBDF_LIST_REMEDY}")
    absent = sorted(listed.keys() - {v.id for v in videos})
    if absent:  # a damaged list, or videos missing from the download
        raise DatasetError(f"{list_file}: {len(absent)} listed video(s) not found under {root}, e.g. "
                           f"{', '.join(absent[:5])}; fetch the missing videos, or {CELEBDF_LIST_REMEDY}")
    if split == "train":
        return [v for v in videos if v.split == "train"]
    if split is not None:
        return [v for v in videos if v.split == "test"]
    return videos


# ---------------------------------------------------------------- DFDC

def load_dfdc(root: Path) -> list[LabelledVideo]:
    if not part_dirs(root):  # one part folder given directly
        metadata = read_metadata(root / METADATA_FILE)
        return [LabelledVideo(root / name, name, 1 if info["label"] == "FAKE" else 0, root.name,
                              original=info["original"]) for name, info in sorted(metadata.items())]
    return [LabelledVideo(entry.path, entry.name, int(entry.is_fake), entry.path.parent.name, original=entry.original)
            for entry in sorted(load_dataset(root, variants=False).values(), key=lambda e: (e.part, e.name))]


def load_dfdc_test(root: Path) -> list[LabelledVideo]:
    path = root / DFDC_TEST_LABELS
    remedy = "fix it, or fetch the test set's labels.csv again"
    text = read_text(path, DatasetError, "a labels CSV (filename,label)", remedy)
    with named_errors(path, DatasetError, "a labels CSV (filename,label)", remedy):
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        if not rows:
            raise DatasetError(f"{path}: no rows{' (an empty file)' if not text else ''}; {remedy}")
        if not {"filename", "label"} <= set(rows[0]):
            raise DatasetError(f"{path}: expected columns filename,label, found {list(rows[0])}; {remedy}")
        videos, seen = [], set()
        for number, row in enumerate(rows, 2):
            if not row["filename"]:
                raise DatasetError(f"{path}:{number}: a row without a file name; {remedy}")
            if row["filename"] in seen:
                raise DatasetError(f"{path}:{number}: {row['filename']} is listed twice; {remedy}")
            label = parse_label(row["label"], f"{path}:{number}: {row['filename']}")
            seen.add(row["filename"])
            videos.append(LabelledVideo(root / row["filename"], row["filename"], label, "test", "test"))
    return videos


# ----------------------------------------------------------------

def load_collection(root: Path, split: str | Path | None = None, compression: str | None = None) -> Collection:
    """The labelled videos under root, its layout auto-detected; DatasetError (or ValueError from
    core.layout) naming the path on anything unusable. `split`: FF++ split file, Celeb-DF "test"/"train"/list file."""
    root = Path(root)
    layout = detect_layout(root)
    if split is not None and layout in ("dfdc", "dfdc_test"):
        raise DatasetError(f"{root}: a DFDC layout has no split option (its parts are the split)")
    if compression is not None and layout != "ffpp":
        raise DatasetError(f"{root}: --compression applies to FaceForensics++ only (this is {layout})")
    if layout == "ffpp":
        if split is not None and not Path(split).is_file():
            raise DatasetError(f"{split}: FF++ split file not found (the official ones are splits/test.json, "
                               f"train.json and val.json in the FaceForensics repository)")
        videos = load_ffpp(root, Path(split) if split is not None else None, compression)
    elif layout == "celebdf":
        videos = load_celebdf(root, split)
    elif layout == "dfdc":
        videos = load_dfdc(root)
    else:
        videos = load_dfdc_test(root)
    missing = [v.id for v in videos if not v.path.is_file()]
    if missing:
        listed_in = f" (listed in {root / DFDC_TEST_LABELS})" if layout == "dfdc_test" else ""
        raise DatasetError(f"{root}: {len(missing)} labelled video(s) missing on disk{listed_in}, e.g. "
                           f"{', '.join(missing[:5])}")
    if not videos:
        raise DatasetError(f"{root}: {layout} layout with no video{' in split ' + str(split) if split else ''}")
    ids = [v.id for v in videos]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{root}: video ids are not unique")
    present = set(ids)  # an original outside the collection (another compression, not in the split) is unknown
    videos = [v if v.original in present or v.original is None else dataclasses.replace(v, original=None)
              for v in videos]
    return Collection(layout, root, videos)
