"""predict_folder.py --report on generated videos (a face, no face, an odd name, a truncated file, a corrupt one),
read as files and opened in headless Chromium."""
from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import run_script
from helpers import (corrupt_file, face_frames, gradient_frames, save_release_checkpoint,
                                    write_truncated_video, write_video)
from core.models import DeepFakeClassifier

SMALL = ["--encoder", "efficientnet_lite0", "--size", "128", "--frames-per-video", "4", "--batch-size", "4",
         "--workers", "0", "--device", "cpu"]
ODD_NAME = "visage é #1.mp4"  # a space, a non-ASCII letter and a character that ends a URL path
NO_FACE = "no face here.mp4"
VIDEOS = ["corrupt.mp4", "face.mp4", "face_truncated.mp4", NO_FACE, ODD_NAME]
CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("evidence")
    videos = root / "videos"
    videos.mkdir()
    write_video(videos / "face.mp4", face_frames(8))
    write_video(videos / ODD_NAME, face_frames(8)[::-1])
    write_video(videos / NO_FACE, gradient_frames(8))
    write_truncated_video(videos / "face_truncated.mp4", face_frames(24), keep_fraction=0.6)
    corrupt_file(videos / "corrupt.mp4")
    torch.manual_seed(1)
    save_release_checkpoint(DeepFakeClassifier("efficientnet_lite0", pretrained=False), root / "model_1")
    return root


def predict(root: Path, output: Path, *extra, check=True):
    return run_script(sys.executable, "predict_folder.py", "--weights-dir", root, "--models", "model_1",
                      "--test-dir", root / "videos", "--output", output, *SMALL, *extra, check=check)


@pytest.fixture(scope="module")
def report(scene):
    output, folder = scene / "out" / "submission.csv", scene / "report"
    result = predict(scene, output, "--report", folder)
    return output, folder, result


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a" and not attrs.get("href", "#").startswith("#"):
            self.links.append(attrs["href"])


def references(page: Path) -> tuple[list[Path], list[Path]]:
    """(images, linked pages) a page references, as files (hrefs unquoted as a browser does)."""
    parser = _Links()
    parser.feed(page.read_text())
    resolve = lambda href: (page.parent / unquote(href.split("#")[0])).resolve()  # noqa: E731
    return [resolve(h) for h in parser.images], [resolve(h) for h in parser.links]


def page(folder: Path, name: str) -> Path:
    return folder / "videos" / f"{name}.html"


def test_every_video_gets_a_page_and_every_reference_exists(report):
    _output, folder, result = report
    assert "evidence report: file://" in result.stderr
    index_images, index_links = references(folder / "index.html")
    assert sorted(index_links) == sorted(page(folder, name).resolve() for name in VIDEOS)
    assert len(index_images) == 3  # the three videos with a face: their most suspicious crop
    for name in VIDEOS:
        images, links = references(page(folder, name))
        assert links == [(folder / "index.html").resolve()]
        missing = [str(p) for p in images + index_images if not p.is_file()]
        assert not missing, f"{name}: broken images {missing}"
    face_images, _ = references(page(folder, "face.mp4"))
    names = sorted(p.name for p in face_images)
    assert names == ["crop_1.jpg", "crop_2.jpg", "crop_3.jpg", "heat_1.jpg", "heat_2.jpg", "heat_3.jpg",
                     "keyframe_1.jpg", "keyframe_2.jpg", "keyframe_3.jpg", "timeline.png"]
    text = page(folder, "face.mp4").read_text()
    assert "Grad-CAM" in text and "Aggregation confident" in text and "input size" in text


def test_index_is_sorted_by_score_and_names_the_reasons(report):
    output, folder, _ = report
    with open(output, newline="") as handle:
        scores = {row["filename"]: float(row["label"]) for row in csv.DictReader(handle)}
    with open(f"{output}.errors.csv", newline="") as handle:
        reasons = {row["filename"]: row["reason"] for row in csv.DictReader(handle)}
    _images, links = references(folder / "index.html")
    listed = [p.name[:-len(".html")] for p in links]
    scored = sorted((n for n in scores if n not in reasons), key=lambda n: -scores[n])
    assert listed[:3] == scored and set(listed[3:]) == set(reasons)
    index = (folder / "index.html").read_text()
    for reason in reasons.values():
        assert reason.split(":")[0] in index
    assert "model_1" in index and "calibration" in index


def test_bad_videos_get_pages_that_say_what_happened(report):
    _output, folder, _ = report
    no_face = page(folder, NO_FACE).read_text()
    assert "no face found in 4 sampled frames" in no_face
    images, _ = references(page(folder, NO_FACE))
    assert images and all(p.name.startswith("keyframe_") for p in images)  # the frames, no plot, no crops
    assert "Not scored: unreadable" in page(folder, "corrupt.mp4").read_text()
    assert not references(page(folder, "corrupt.mp4"))[0]
    truncated = page(folder, "face_truncated.mp4").read_text()
    assert "sampled frames decoded" in truncated and "header" in truncated


@pytest.mark.slow
def test_rerun_reuses_the_finished_pages(scene, report):
    output, folder, _ = report
    before = {p: p.stat().st_mtime_ns for p in (folder / "videos").rglob("*")}
    again = predict(scene, output, "--report", folder)
    assert "(5 finished pages reused)" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in (folder / "videos").rglob("*")} == before


@pytest.mark.slow
def test_videos_finished_without_a_report_get_full_pages(scene, tmp_path):
    output = tmp_path / "submission.csv"
    predict(scene, output)
    result = predict(scene, output, "--report", tmp_path / "later")
    assert "resuming: 5 of 5 videos already done" in result.stderr
    images, _ = references(page(tmp_path / "later", "face.mp4"))
    assert {p.name for p in images} >= {"crop_1.jpg", "heat_1.jpg", "keyframe_1.jpg", "timeline.png"}
    assert all(p.is_file() for p in images)


def test_a_folder_that_is_not_a_report_is_refused_before_any_work(scene, tmp_path):
    folder = tmp_path / "holiday photos"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    result = predict(scene, tmp_path / "submission.csv", "--report", folder, check=False)
    assert result.returncode == 2
    assert "is not an evidence report" in result.stderr and str(folder) in result.stderr
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]
    assert not (tmp_path / "submission.csv").exists()


@pytest.mark.slow
def test_evaluate_links_each_mistake_to_its_page(report, tmp_path):
    output, folder, _ = report
    with open(output, newline="") as handle:
        wrong = {row["filename"]: "REAL" if float(row["label"]) > 0.5 else "FAKE" for row in csv.DictReader(handle)}
    labels = tmp_path / "labels.csv"
    labels.write_text("filename,label\n" + "".join(f"{name},{label}\n" for name, label in wrong.items()))
    run_script(sys.executable, "evaluate.py", "--predictions", output, "--labels", labels, "--out-dir",
               tmp_path / "eval")
    _images, links = references(tmp_path / "eval" / "report.html")
    assert page(folder, "face.mp4").resolve() in links and page(folder, ODD_NAME).resolve() in links
    assert all(p.is_file() for p in links)


def screenshot(url: str, path: Path) -> np.ndarray:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run",
                        f"--user-data-dir={profile}", f"--screenshot={path}", "--window-size=1280,1600", url],
                       check=True, capture_output=True, timeout=120)
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32)


def rendered_text(url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                                 "--no-first-run", f"--user-data-dir={profile}", "--dump-dom", url],
                                check=True, capture_output=True, text=True, timeout=120)
    return re.sub(r"<[^>]+>", " ", result.stdout)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install -y chromium; .ci/run does)")
def test_pages_render_in_chromium(report, tmp_path):
    _output, folder, _ = report
    for name, path in (("index", folder / "index.html"), ("video", page(folder, ODD_NAME))):
        pixels = screenshot(path.resolve().as_uri(), tmp_path / f"{name}.png")
        assert pixels.std() > 20, f"{name} page looks blank (grey-level std {pixels.std():.1f})"
        # Under the headings, the images: a text-only page has few pixels between white and black.
        assert ((pixels > 30) & (pixels < 220)).mean() > 0.02, f"{name} page shows no pictures"
    assert "no face found in 4 sampled frames" in rendered_text(page(folder, NO_FACE).resolve().as_uri())


@pytest.mark.slow
def test_report_cost_bench_writes_pages_with_the_pipelines_models(scene):
    """bench/predict.py --report: Grad-CAM gets the classifier itself, not the bench's CPU-timing wrapper."""
    result = run_script(sys.executable, "bench/predict.py", scene / "videos", "--encoder", "efficientnet_lite0",
                        "--size", "96", "--frames-per-video", "4", "--workers", "1", "--report")
    measured = re.search(r"without the report ([\d.]+) s, with it ([\d.]+) s: ([+-][\d.]+)% wall time",
                         result.stdout)
    assert measured, result.stdout[-2000:]
    assert float(measured.group(1)) > 0 and float(measured.group(2)) > 0
