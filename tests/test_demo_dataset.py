"""The offline demo dataset: DFDC layout, decodable clips with motion, fakes that differ at the face, determinism."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import av
import numpy as np
import pytest

from demo.make_demo_dataset import BOXES_NAME, MANIFEST_NAME, OUTPUT_SIZES, make_demo_dataset

SETTINGS = dict(seed=0, parts=(0, 3), reals_per_part=2, frames=20, pairs_per_part=0)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "data", **SETTINGS)


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def metadata(root: Path) -> dict[str, tuple[Path, dict]]:
    """Every metadata entry of every part: name -> (part folder, entry)."""
    entries = {}
    for folder in sorted(root.glob("dfdc_train_part_*")):
        for name, info in read_json(folder / "metadata.json").items():
            assert name not in entries, f"{name} listed twice"
            entries[name] = (folder, info)
    return entries


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def x264_settings(path: Path) -> bytes:
    """The encoder settings string x264 writes into the stream."""
    match = re.search(rb"x264 - core [^\x00]*", Path(path).read_bytes())
    assert match, f"{path}: no x264 settings found"
    return match.group(0)


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def box_masks(boxes: list[list[float]], shape: tuple[int, int]) -> np.ndarray:
    """(frames, H, W) True inside each frame's face box."""
    inside = np.zeros((len(boxes), *shape), bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        inside[i, max(int(y1), 0):int(np.ceil(y2)), max(int(x1), 0):int(np.ceil(x2))] = True
    return inside


def test_layout_and_metadata(demo):
    assert sorted(p.name for p in demo.iterdir() if p.is_dir()) == ["dfdc_train_part_0", "dfdc_train_part_3"]
    entries = metadata(demo)
    reals = [n for n, (_, info) in entries.items() if info["label"] == "REAL"]
    fakes = [n for n, (_, info) in entries.items() if info["label"] == "FAKE"]
    assert len(reals) == 4 and len(fakes) == 8
    for name, (folder, info) in entries.items():
        assert info["split"] == "train" and re.fullmatch(r"[a-z]{10}\.mp4", name)
        if info["label"] == "REAL":
            assert info["original"] is None
        else:
            original_folder, original = entries[info["original"]]
            assert original_folder == folder and original["label"] == "REAL"
    assert all(sum(entries[f][1]["original"] == r for f in fakes) == 2 for r in reals)
    for folder in demo.glob("dfdc_train_part_*"):
        listed = {n for n, (f, _) in entries.items() if f == folder}
        assert {p.name for p in folder.iterdir()} == listed | {"metadata.json"}
    boxes = read_json(demo / BOXES_NAME)
    assert set(boxes) == set(entries)
    assert all(len(per_frame) == SETTINGS["frames"] for per_frame in boxes.values())
    manifest = read_json(demo / MANIFEST_NAME)
    assert manifest["seed"] == 0 and manifest["parts"] == [0, 3] and manifest["videos"] == 12


def test_videos_decode_and_fakes_share_encoding(demo):
    for name, (folder, info) in metadata(demo).items():
        frames = decode(folder / name)
        assert frames.shape[0] == SETTINGS["frames"]
        assert (frames.shape[2], frames.shape[1]) in OUTPUT_SIZES
        if info["label"] == "FAKE":
            original = folder / info["original"]
            assert x264_settings(folder / name) == x264_settings(original)
            with av.open(str(folder / name)) as fake, av.open(str(original)) as real:
                assert fake.streams.video[0].average_rate == real.streams.video[0].average_rate


def test_faces_are_boxed_and_sized(demo):
    boxes = read_json(demo / BOXES_NAME)
    for name, (folder, _) in metadata(demo).items():
        height, width = decode(folder / name).shape[1:3]
        per_frame = np.array(boxes[name])
        assert (per_frame[:, 2] - per_frame[:, 0]).min() > 70 and (per_frame[:, 2] - per_frame[:, 0]).max() < 140
        centres = (per_frame[:, :2] + per_frame[:, 2:]) / 2
        assert ((centres > 0) & (centres < [width, height])).all()


def test_boxes_match_mtcnn_on_half_resolution(demo):
    """The transformed source boxes are where a detector finds the face, as the pipeline runs it."""
    import cv2

    from core.faces import DETECT_THRESHOLDS, detect_batch, make_mtcnn

    mtcnn = make_mtcnn(DETECT_THRESHOLDS)
    boxes = read_json(demo / BOXES_NAME)
    for name, (folder, info) in metadata(demo).items():
        if info["label"] != "REAL":
            continue
        frames = decode(folder / name)[[0, -1]]
        small = [cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), interpolation=cv2.INTER_AREA) for f in frames]
        for index, found in zip([0, SETTINGS["frames"] - 1], detect_batch(mtcnn, small)):
            assert found is not None, f"{name}: no face at frame {index}"
            detected, truth = found[0] * 2, np.array(boxes[name][index])
            overlap = np.maximum(0, np.minimum(detected[2:], truth[2:]) - np.maximum(detected[:2], truth[:2])).prod()
            union = np.prod(detected[2:] - detected[:2]) + np.prod(truth[2:] - truth[:2]) - overlap
            assert overlap / union > 0.5, f"{name} frame {index}: IoU {overlap / union:.2f}"


def test_fakes_differ_from_original_at_the_face(demo):
    boxes = read_json(demo / BOXES_NAME)
    for name, (folder, info) in metadata(demo).items():
        if info["label"] != "FAKE":
            continue
        fake, real = decode(folder / name).astype(np.float32), decode(folder / info["original"]).astype(np.float32)
        difference = np.abs(fake - real).mean(axis=3)
        inside = box_masks(boxes[name], difference.shape[1:])
        in_box, out_box = difference[inside].mean(), difference[~inside].mean()
        assert in_box > 4 and in_box > 3 * out_box, f"{name}: diff {in_box:.2f} in the face box, {out_box:.2f} outside"


def test_every_clip_moves(demo):
    for name, (folder, _) in metadata(demo).items():
        frames = decode(folder / name).astype(np.float32)
        assert np.abs(frames[-1] - frames[0]).mean() > 3, f"{name}: first and last frame almost equal"
        assert (np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3)) > 0.3).all(), f"{name}: a frozen frame"


@pytest.mark.slow
def test_same_seed_same_bytes_other_seed_other_data_and_rerun_skips(demo, tmp_path, capsys):
    again = make_demo_dataset(tmp_path / "again", **SETTINGS)
    assert digests(again) == digests(demo)

    capsys.readouterr()
    before = {p: p.stat().st_mtime_ns for p in again.rglob("*") if p.is_file()}
    make_demo_dataset(again, **SETTINGS)
    assert "skipping" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in again.rglob("*") if p.is_file()} == before

    other = make_demo_dataset(again, **{**SETTINGS, "seed": 1})
    assert not set(digests(other).values()) & set(digests(demo).values())
    on_disk = {p.name for p in other.rglob("*.mp4")}
    assert on_disk == set(metadata(other)), "videos of the previous seed were left behind"


def test_two_person_clips_change_one_person_each(tmp_path):
    """Two people side by side: the real one untouched, each fake changes one side only, the real is its original."""
    from demo.make_demo_dataset import PAIR_HALF_SIZE, PAIRS_NAME

    root = make_demo_dataset(tmp_path / "pairs", seed=0, parts=(0,), reals_per_part=1, frames=8, pairs_per_part=1)
    pairs = read_json(root / PAIRS_NAME)
    entries = metadata(root)
    assert len(entries) == 6 and len(pairs) == 3
    (real,) = [name for name, record in pairs.items() if record["changed"] is None]
    assert entries[real][1]["label"] == "REAL"
    original = decode(entries[real][0] / real).astype(np.float32)
    assert original.shape[1:3] == (PAIR_HALF_SIZE[1], 2 * PAIR_HALF_SIZE[0]) and original.shape[0] == 4
    half = PAIR_HALF_SIZE[0]
    for name, record in pairs.items():
        if record["changed"] is None:
            continue
        assert entries[name][1]["label"] == "FAKE" and entries[name][1]["original"] == real
        difference = np.abs(decode(entries[name][0] / name).astype(np.float32) - original).mean(axis=(0, 1, 3))
        changed, kept = (difference[:half], difference[half:]) if record["changed"] == "left" else \
            (difference[half:], difference[:half])
        assert changed.mean() > 3 * kept.mean(), (name, record["changed"], changed.mean(), kept.mean())
        left, right = np.array(record["boxes"])[:, 0], np.array(record["boxes"])[:, 1]
        assert (left[:, 2] <= half + 20).all() and (right[:, 0] >= half - 20).all()
