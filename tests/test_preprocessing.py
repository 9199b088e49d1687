"""Preprocessing steps on real videos: the tiny demo dataset, hand-made broken inputs, and (slow) FaceForensics++."""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from skimage.data import astronaut

from conftest import FFPP_ROOT, run_script
from preprocessing import (detect_original_faces, extract_crops, generate_diffs, generate_folds,
                           generate_landmarks)
from core.layout import load_dataset
from core.faces import scale_box
from preprocessing.generate_diffs import ssim_difference
from core.layout import list_crops, load_boxes
from preprocessing.link_dataset import link_dataset

STEPS = (detect_original_faces, extract_crops, generate_landmarks, generate_diffs)
OUTPUT_DIRS = ("boxes", "crops", "landmarks", "diffs")


def run_steps(root: Path, *extra: str, steps=STEPS) -> dict:
    """Run steps in this process (one worker: no pool start-up), returning their summaries by name."""
    return {step.__name__.rsplit(".", 1)[1]: step.main(["--root-dir", str(root), "--workers", "1", *extra])
            for step in steps}


def output_files(root: Path) -> dict[str, int]:
    """Relative path -> mtime of every output file (and folds.csv)."""
    found = {}
    for name in (*OUTPUT_DIRS, "folds.csv"):
        path = root / name
        paths = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())
        found.update({str(p.relative_to(root)): p.stat().st_mtime_ns for p in paths})
    return found


def read_folds(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def add_to_metadata(root: Path, part: int, entries: dict) -> None:
    meta_path = root / f"dfdc_train_part_{part}" / "metadata.json"
    metadata = json.loads(meta_path.read_text())
    metadata.update(entries)
    meta_path.write_text(json.dumps(metadata))


# ---------------------------------------------------------------- output formats on the demo dataset

def test_outputs_have_the_contract_formats(preprocessed_demo):
    entries = load_dataset(preprocessed_demo)
    reals = [e for e in entries.values() if not e.is_fake]
    for entry in reals:
        boxes = json.loads((preprocessed_demo / "boxes" / f"{entry.video_id}.json").read_text())
        assert boxes and all(int(key) % 10 == 0 for key in boxes)
        for frame_boxes in boxes.values():
            assert frame_boxes is None or all(len(box) == 5 and box[0] < box[2] and box[1] < box[3]
                                              and box[4] >= 0 for box in frame_boxes)
    for entry in entries.values():
        crops_dir = preprocessed_demo / "crops" / entry.video_id
        assert (crops_dir / ".done").is_file()
        for name in list_crops(crops_dir):
            crop = cv2.imread(str(crops_dir / name), cv2.IMREAD_UNCHANGED)
            assert crop.ndim == 3 and crop.shape[2] == 3 and crop.dtype == np.uint8
            if not entry.is_fake:
                landmarks = np.load(preprocessed_demo / "landmarks" / entry.video_id / name.replace(".png", ".npy"))
                assert landmarks.dtype == np.int16 and landmarks.shape == (5, 2)
                assert (landmarks >= 0).all() and (landmarks[:, 0] < crop.shape[1]).all()
                assert (landmarks[:, 1] < crop.shape[0]).all()
                assert landmarks[0, 0] < landmarks[1, 0]  # left eye left of right eye
            else:
                diff = cv2.imread(str(preprocessed_demo / "diffs" / entry.video_id / name.replace(".png", "_diff.png")),
                                  cv2.IMREAD_UNCHANGED)
                assert diff.dtype == np.uint8 and diff.shape == crop.shape[:2]
    rows = read_folds(preprocessed_demo / "folds.csv")
    assert list(rows[0]) == ["video", "file", "label", "original", "frame", "fold", "track", "changed"]


def test_detected_boxes_overlap_the_known_faces(preprocessed_demo):
    truth = json.loads((preprocessed_demo / "demo_face_boxes.json").read_text())
    checked = 0
    for entry in load_dataset(preprocessed_demo).values():
        if entry.is_fake:
            continue
        for frame, boxes in load_boxes(preprocessed_demo / "boxes" / f"{entry.video_id}.json").items():
            assert boxes, f"{entry.name}: no face at frame {frame}"
            assert iou(scale_box(boxes[0][:4]), truth[entry.name][frame]) >= 0.5, (entry.name, frame)
            checked += 1
    assert checked >= 18


def test_fake_crops_align_with_their_original(preprocessed_demo):
    for entry in load_dataset(preprocessed_demo).values():
        if not entry.is_fake:
            continue
        fake_dir, original_dir = (preprocessed_demo / "crops" / vid for vid in (entry.video_id, entry.original_id))
        names = list_crops(fake_dir)
        assert names and names == list_crops(original_dir)
        for name in names:
            assert cv2.imread(str(fake_dir / name)).shape == cv2.imread(str(original_dir / name)).shape


def test_diff_masks_show_the_fakes_and_are_clipped(preprocessed_demo):
    for fake_dir in (preprocessed_demo / "diffs").iterdir():
        masks = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in fake_dir.glob("*_diff.png")]
        assert masks and max(mask.mean() for mask in masks) > 5, fake_dir.name
    image = cv2.cvtColor(astronaut()[100:228, 150:278], cv2.COLOR_RGB2BGR)
    assert ssim_difference(image, image).max() == 0
    # an inverted image has SSIM < 0 almost everywhere: clipped it is near white, wrapped (original) it was not
    assert ssim_difference(image, 255 - image).mean() > 240


# ---------------------------------------------------------------- folds

def test_folds_follow_parts_without_leaks(preprocessed_demo):
    entries = load_dataset(preprocessed_demo)
    rows = read_folds(preprocessed_demo / "folds.csv")
    fold_of_video = {}
    for row in rows:
        entry = entries[row["video"]]
        assert int(row["fold"]) == entry.part // 3
        assert int(row["label"]) == int(entry.is_fake) and row["original"] == entry.original_id
        assert (preprocessed_demo / "crops" / row["video"] / row["file"]).is_file()
        assert row["file"].startswith(f"{row['frame']}_")
        fold_of_video[row["video"]] = row["fold"]
    for row in rows:
        assert fold_of_video[row["original"]] == row["fold"], f"{row['video']} leaks from {row['original']}"
    crops = sum(len(list_crops(d)) for d in (preprocessed_demo / "crops").iterdir())
    assert len(rows) == crops and {r["fold"] for r in rows} == {"0", "1"}


def test_folds_seed_and_n_splits(preprocessed_demo, tmp_path):
    base = ["--root-dir", str(preprocessed_demo), "--workers", "1"]
    generate_folds.main([*base, "--out", str(tmp_path / "a.csv"), "--seed", "1"])
    generate_folds.main([*base, "--out", str(tmp_path / "b.csv"), "--seed", "1"])
    generate_folds.main([*base, "--out", str(tmp_path / "c.csv"), "--seed", "2"])
    a, b, c = ((tmp_path / f"{n}.csv").read_text() for n in "abc")
    assert a == b and a != c and sorted(a.splitlines()) == sorted(c.splitlines())
    generate_folds.main([*base, "--out", str(tmp_path / "d.csv"), "--n-splits", "25"])  # 2 parts per fold
    assert {r["fold"] for r in read_folds(tmp_path / "d.csv")} == {"0", "1"}  # parts 0 and 3


def test_folds_name_a_fake_whose_original_is_unknown_and_write_the_rest(preprocessed_demo, tmp_path):
    root = Path(shutil.copytree(preprocessed_demo, tmp_path / "data"))
    rows_before = (root / "folds.csv").read_text().splitlines()
    add_to_metadata(root, 3, {"stray.mp4": {"label": "FAKE", "original": "nowhere.mp4"}})
    (root / "folds.csv").unlink()
    summary = generate_folds.main(["--root-dir", str(root)])
    assert [name for name, _ in summary.failures] == ["stray.mp4"]
    assert "nowhere.mp4" in summary.failures[0][1]
    assert sorted((root / "folds.csv").read_text().splitlines()) == sorted(rows_before)


# ---------------------------------------------------------------- reruns, shards, bad input

def test_rerun_writes_nothing_new(preprocessed_demo, tmp_path):
    root = Path(shutil.copytree(preprocessed_demo, tmp_path / "data"))
    before = output_files(root)
    summaries = run_steps(root, steps=(*STEPS, generate_folds))
    assert output_files(root) == before
    assert all(s.done == 0 and not s.failures for s in summaries.values())
    assert summaries["extract_crops"].skipped == 18


def test_two_shards_make_the_same_outputs_as_one_run(preprocessed_demo, demo_root, tmp_path):
    root = Path(shutil.copytree(demo_root, tmp_path / "data"))
    for index in ("0", "1"):
        run_steps(root, "--num-shards", "2", "--shard-index", index)
    generate_folds.main(["--root-dir", str(root)])
    assert_same_outputs(root, preprocessed_demo)


def assert_same_outputs(root: Path, reference: Path) -> None:
    """The same output files, boxes and folds.csv as the reference run (also used by tests/test_scale.py)."""
    assert set(output_files(root)) == set(output_files(reference))
    for boxes_file in (root / "boxes").iterdir():
        sharded, single = (load_boxes(r / "boxes" / boxes_file.name) for r in (root, reference))
        assert sharded.keys() == single.keys()
        for frame in sharded:
            np.testing.assert_allclose(sharded[frame], single[frame], atol=1e-2)
    assert (root / "folds.csv").read_text() == (reference / "folds.csv").read_text()


def test_bad_videos_are_reported_and_the_rest_completes(demo_root, tmp_path):
    root = Path(shutil.copytree(demo_root, tmp_path / "data"))
    part = root / "dfdc_train_part_0"
    real = next(e for e in load_dataset(root).values() if not e.is_fake and e.part == 0)
    fake = next(e for e in load_dataset(root).values() if e.is_fake and e.part == 0)
    (part / "random.mp4").write_bytes(np.random.default_rng(0).bytes(50_000))
    (part / "truncated.mp4").write_bytes(real.path.read_bytes()[: real.path.stat().st_size // 2])
    (part / "empty.mp4").write_bytes(b"")
    shutil.copy(fake.path, part / "orphan.mp4")
    add_to_metadata(root, 0, {
        "random.mp4": {"label": "REAL"}, "truncated.mp4": {"label": "REAL"}, "empty.mp4": {"label": "REAL"},
        "absent.mp4": {"label": "REAL"}, "orphan.mp4": {"label": "FAKE", "original": "empty.mp4"}})

    detect = detect_original_faces.main(["--root-dir", str(root), "--workers", "2"])  # the decoder pool path
    crops = extract_crops.main(["--root-dir", str(root), "--workers", "1"])

    failed = {name: reason for name, reason in detect.failures}
    assert set(failed) == {"random.mp4", "truncated.mp4", "empty.mp4", "absent.mp4"}
    assert "empty file" in failed["empty.mp4"] and "does not exist" in failed["absent.mp4"]
    assert detect.done == 6
    assert crops.done == 18 and crops.notes[extract_crops.NO_ORIGINAL_BOXES] == 1
    assert "orphan.mp4" in dict(crops.failures)
    assert len(list((root / "crops").iterdir())) == 18


def write_moving_face_video(path: Path, frames: int = 30, broken: int = 10) -> None:
    """The astronaut moving 4 px right per frame, all-intra, with frame `broken` replaced by garbage bytes."""
    face = astronaut()[::2, ::2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"g": "1", "bf": "0"})
        stream.width, stream.height, stream.pix_fmt = 384, 256, "yuv420p"
        for index in range(frames):
            canvas = np.zeros((256, 384, 3), np.uint8)
            canvas[:, 4 * index: 4 * index + 256] = face
            for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                if packet.pts * packet.time_base * 25 == broken:
                    garbage = av.Packet(os.urandom(packet.size))
                    garbage.pts, garbage.dts, garbage.time_base = packet.pts, packet.dts, packet.time_base
                    garbage.stream = stream
                    packet = garbage
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_frame_keys_stay_true_after_an_undecodable_frame(tmp_path):
    part = tmp_path / "dfdc_train_part_0"
    part.mkdir()
    write_moving_face_video(part / "moving.mp4")
    (part / "metadata.json").write_text(json.dumps({"moving.mp4": {"label": "REAL"}}))
    detect_original_faces.main(["--root-dir", str(tmp_path), "--workers", "1", "--frame-stride", "5"])
    boxes = load_boxes(tmp_path / "boxes" / "moving.json")
    assert set(boxes) == {0, 5, 15, 20, 25}
    # the face moves 4 px per frame: a box found at the key's own position proves the key is the true index
    offsets = [scale_box(boxes[key][0][:4])[0] - 4 * key for key in sorted(boxes)]
    assert max(offsets) - min(offsets) <= 8, offsets


def test_script_usage(tmp_path):
    for args in ((), (str(tmp_path / "nope"),)):
        result = run_script("bash", "preprocess_data.sh", *args, check=False)
        assert result.returncode == 2 and "usage: preprocess_data.sh DATA_ROOT" in result.stderr
        assert "--num-shards" in result.stderr


# ---------------------------------------------------------------- FaceForensics++ (real data)

@pytest.mark.slow
@pytest.mark.skipif(not FFPP_ROOT.is_dir(), reason="FaceForensics++ sample not present")
def test_ffpp_misaligned_fakes_are_detected(tmp_path):
    """Two real originals with an aligned fake, a fake with another frame count and one with another width."""
    root = link_dataset(FFPP_ROOT, tmp_path / "ffpp", ["183.mp4", "deepfakes_183_253.mp4", "face2face_183_253.mp4",
                                                       "469.mp4", "face2face_469_481.mp4"])
    summaries = run_steps(root, "--workers", "2", steps=(detect_original_faces, extract_crops))
    crops = summaries["extract_crops"]
    assert summaries["detect_original_faces"].done == 2
    assert crops.done == 3 and crops.notes[extract_crops.MISALIGNED] == 2
    reasons = dict(crops.failures)
    assert "501 frames vs 390" in reasons["face2face_183_253.mp4"]
    assert "832x480 vs 854x480" in reasons["face2face_469_481.mp4"]
    assert not (root / "crops" / "face2face_183_253").exists()


def test_video_jobs_start_largest_first():
    from preprocessing.common import RunSummary
    from preprocessing.step import run_video_jobs

    started = []

    def worker(job):
        started.append(job[0])
        return RunSummary("test")

    sizes = {"small": 10, "large": 300, "medium": 50}
    run_video_jobs(RunSummary("test"), worker, [(name,) for name in sizes], workers=1, desc="jobs",
                   size_of=lambda job: sizes[job[0]])
    assert started == ["large", "medium", "small"]
