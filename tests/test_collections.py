"""Dataset layouts (core/datasets.py): tiny FaceForensics++, Celeb-DF v2 and DFDC trees of real small videos give
the right labels, groups, ids and splits; evaluate.py --dataset reports them; the converter makes a DFDC layout."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import run_script, write_video
from core.datasets import DatasetError, load_collection
from core.layout import load_dataset
from preprocessing.link_dataset import convert_collection

FRAMES = [np.full((96, 128, 3), 40 * i, np.uint8) for i in range(3)]  # MTCNN fails on tiny frames


def videos(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        write_video(folder / name, FRAMES)


@pytest.fixture(scope="module")
def ffpp(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ffpp")
    videos(root / "original_sequences/youtube/c23/videos", "000.mp4", "001.mp4", "002.mp4", "003.mp4")
    videos(root / "original_sequences/actors/c23/videos", "01__talking.mp4")
    for method in ("Deepfakes", "Face2Face"):
        videos(root / f"manipulated_sequences/{method}/c23/videos", "000_001.mp4", "001_000.mp4", "002_003.mp4")
    videos(root / "manipulated_sequences/DeepFakeDetection/c23/videos", "01_02__talking__ABCD1234.mp4")
    (root / "test.json").write_text(json.dumps([["000", "001"]]))
    return root


def test_ffpp_labels_groups_ids_and_originals(ffpp):
    collection = load_collection(ffpp)
    assert collection.layout == "ffpp"
    by_id = {v.id: v for v in collection.videos}
    assert len(by_id) == 12  # the methods share file names, the ids do not
    fake = by_id["manipulated_sequences/Face2Face/c23/videos/000_001.mp4"]
    assert (fake.label, fake.group, fake.original) == (1, "Face2Face", "original_sequences/youtube/c23/videos/000.mp4")
    real = by_id["original_sequences/actors/c23/videos/01__talking.mp4"]
    assert (real.label, real.group, real.original) == (0, "original_actors", None)
    dfd = by_id["manipulated_sequences/DeepFakeDetection/c23/videos/01_02__talking__ABCD1234.mp4"]
    assert dfd.original == real.id
    assert {v.group for v in collection.videos} == {"original_youtube", "original_actors", "Deepfakes", "Face2Face",
                                                    "DeepFakeDetection"}


def test_ffpp_official_split_keeps_the_pairs(ffpp):
    kept = {v.id.split("/", 1)[1] for v in load_collection(ffpp, split=ffpp / "test.json").videos}
    assert kept == {"youtube/c23/videos/000.mp4", "youtube/c23/videos/001.mp4",
                    "Deepfakes/c23/videos/000_001.mp4", "Deepfakes/c23/videos/001_000.mp4",
                    "Face2Face/c23/videos/000_001.mp4", "Face2Face/c23/videos/001_000.mp4"}


def test_ffpp_two_compressions_need_a_choice(ffpp, tmp_path):
    root = tmp_path / "ffpp2"
    videos(root / "original_sequences/youtube/c23/videos", "000.mp4")
    videos(root / "original_sequences/youtube/c40/videos", "000.mp4")
    with pytest.raises(DatasetError, match="--compression"):
        load_collection(root)
    assert [v.id for v in load_collection(root, compression="c40").videos] == [
        "original_sequences/youtube/c40/videos/000.mp4"]


@pytest.fixture(scope="module")
def celebdf(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("celebdf")
    videos(root / "Celeb-real", "id0_0000.mp4", "id1_0000.mp4")
    videos(root / "YouTube-real", "00000.mp4", "00001.mp4")
    videos(root / "Celeb-synthesis", "id0_id1_0000.mp4", "id1_id0_0000.mp4")
    (root / "List_of_testing_videos.txt").write_text("1 YouTube-real/00000.mp4\n1 Celeb-real/id1_0000.mp4\n"
                                                     "0 Celeb-synthesis/id0_id1_0000.mp4\n")
    return root


def test_celebdf_labels_and_test_list(celebdf):
    collection = load_collection(celebdf)
    assert collection.layout == "celebdf"
    labels = {v.id: (v.label, v.group, v.split) for v in collection.videos}
    assert labels["YouTube-real/00000.mp4"] == (0, "YouTube-real", "test")
    assert labels["Celeb-synthesis/id1_id0_0000.mp4"] == (1, "Celeb-synthesis", "train")
    test = load_collection(celebdf, split="test").videos
    assert sorted(v.id for v in test) == ["Celeb-real/id1_0000.mp4", "Celeb-synthesis/id0_id1_0000.mp4",
                                          "YouTube-real/00000.mp4"]
    by_id = {v.id: v for v in collection.videos}
    assert by_id["Celeb-synthesis/id0_id1_0000.mp4"].original == "Celeb-real/id0_0000.mp4"
    assert next(v for v in test if v.label).original is None  # its original is not in the test list


def test_celebdf_list_that_contradicts_its_folder_is_refused(celebdf, tmp_path):
    wrong = tmp_path / "list.txt"
    wrong.write_text("0 YouTube-real/00000.mp4\n")  # 0 means FAKE in this file's convention
    with pytest.raises(DatasetError, match="listed as FAKE but lies in YouTube-real"):
        load_collection(celebdf, split=wrong)


def test_dfdc_parts_and_public_test_labels(tmp_path):
    part = tmp_path / "dfdc" / "dfdc_train_part_3"
    videos(part, "a.mp4", "b.mp4")
    (part / "metadata.json").write_text(json.dumps({"a.mp4": {"label": "REAL"},
                                                    "b.mp4": {"label": "FAKE", "original": "a.mp4"}}))
    collection = load_collection(tmp_path / "dfdc")
    assert collection.layout == "dfdc"
    assert [(v.id, v.label, v.group, v.original) for v in collection.videos] == [
        ("a.mp4", 0, "dfdc_train_part_3", None), ("b.mp4", 1, "dfdc_train_part_3", "a.mp4")]
    assert load_collection(part).layout == "dfdc"  # one part folder
    test = tmp_path / "test"
    videos(test, "x.mp4", "y.mp4")
    (test / "labels.csv").write_text("filename,label\nx.mp4,1\ny.mp4,0\n")
    assert [(v.id, v.label) for v in load_collection(test).videos] == [("x.mp4", 1), ("y.mp4", 0)]


def test_unknown_layout_is_named(tmp_path):
    videos(tmp_path / "plain", "a.mp4")
    with pytest.raises(DatasetError, match="no known dataset layout.*--test-dir"):
        load_collection(tmp_path / "plain")


@pytest.mark.slow
def test_evaluate_dataset_reports_per_method_and_frame_auc(ffpp, tmp_path, python):
    collection = load_collection(ffpp)
    scores = {v.id: (0.8 if v.group == "Deepfakes" else 0.45 if v.label else 0.3) for v in collection.videos}
    scores["original_sequences/youtube/c23/videos/003.mp4"] = 0.6  # one real above Face2Face's fakes
    predictions = tmp_path / "ffpp.csv"
    predictions.write_text("filename,label\n" + "".join(f"{k},{v}\n" for k, v in scores.items()))
    crops = "".join(f"{k},0,0,{v},\n{k},1,0,{1 - v},\n" for k, v in scores.items())
    (tmp_path / "ffpp.csv.crops.csv").write_text("filename,frame,face,score,thumbnail\n" + crops)
    out = tmp_path / "eval"
    result = run_script(python, "evaluate.py", "--predictions", predictions, "--dataset", ffpp, "--out-dir", out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["videos"] == 12 and metrics["fakes"] == 7
    assert metrics["groups"]["Deepfakes"]["roc_auc"] == 1.0  # its 3 fakes against all 5 reals
    assert metrics["groups"]["Face2Face"]["roc_auc"] == pytest.approx(12 / 15)
    assert metrics["groups"]["Face2Face"]["ranked_against"] == "all reals"
    assert metrics["frame_roc_auc"] == pytest.approx(0.5) and metrics["crops"] == 24  # each crop pair mirrors
    assert "Face2Face" in result.stdout and "ffpp layout, 12 labelled videos" in result.stderr
    html = (out / "report.html").read_text()
    assert str(predictions) in html and f"--dataset {ffpp}" in html and "equal error rate" in html


def test_converter_gives_a_dfdc_layout(ffpp, tmp_path):
    target, orphans = convert_collection(ffpp, tmp_path / "dfdc", parts=2)
    assert orphans == []
    entries = load_dataset(target)
    assert len(entries) == 12 and {e.part for e in entries.values()} == {0, 1}
    fake = entries["Face2Face_000_001"]
    assert fake.original == "000.mp4" and fake.part == entries["000"].part  # a fake stays with its original
    assert entries["01_02__talking__ABCD1234"].original == "01__talking.mp4"
    assert fake.path.resolve() == (ffpp / "manipulated_sequences/Face2Face/c23/videos/000_001.mp4").resolve()
    reals, _ = convert_collection(ffpp, tmp_path / "reals", reals_only=True)
    assert sorted(load_dataset(reals)) == ["000", "001", "002", "003", "01__talking"]


def test_converter_command_line(ffpp, tmp_path, python):
    run_script(python, "-m", "preprocessing.link_dataset", ffpp, tmp_path / "out", "--split", ffpp / "test.json")
    metadata = json.loads((tmp_path / "out/dfdc_train_part_0/metadata.json").read_text())
    assert metadata["Deepfakes_001_000.mp4"] == {"label": "FAKE", "original": "001.mp4"}
    assert len(metadata) == 6


@pytest.mark.slow
def test_predict_folder_names_rows_by_dataset_id(ffpp, tmp_path, python):
    import torch

    from core.models import DeepFakeClassifier
    from helpers import save_release_checkpoint

    save_release_checkpoint(DeepFakeClassifier("efficientnet_lite0", pretrained=False), tmp_path / "model")
    output = tmp_path / "ffpp.csv"
    result = run_script(python, "predict_folder.py", "--weights-dir", tmp_path, "--models", "model", "--dataset", ffpp,
                        "--split", ffpp / "test.json", "--output", output, "--workers", "0", "--encoder",
                        "efficientnet_lite0", "--size", "128", "--frames-per-video", "2")
    rows = output.read_text().splitlines()
    assert rows[0] == "filename,label" and len(rows) == 7
    assert "manipulated_sequences/Deepfakes/c23/videos/000_001.mp4,0.5" in rows  # no face in these tiny videos
    assert "manipulated_sequences/Face2Face/c23/videos/000_001.mp4,0.5" in rows
    assert "ffpp layout, 6 videos" in result.stderr
    assert torch.__version__  # the checkpoint above was written with this torch
