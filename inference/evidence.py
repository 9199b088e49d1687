"""predict_folder.py --report DIR: a static HTML evidence report, one page per video and an index.

    DIR/evidence-report.json            marks the folder as a report and records the settings its pages were made with
    DIR/index.html                      one row per video, most suspicious first
    DIR/videos/<video>.html             timeline, keyframes, the most suspicious crops with Grad-CAM maps, the numbers
    DIR/videos/<video>.files/           that page's images
    OUTPUT.report.json                  beside the predictions: where their report is (evaluate.py links to it)

A page is written as soon as its video is scored (its images first, the page last), so a rerun with the same
settings reuses every finished page; pages made with other settings are remade. A video finished in an earlier
run without a page is decoded and detected again (no classifier pass) to make it. A folder that exists, is not
empty and has no marker is refused before any work, never overwritten.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from collections.abc import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from core.atomic import atomic_write_bytes, atomic_write_json
from core.checkpoints import LoadedClassifier
from inference.calibration import Calibration
from inference.evidence_pages import (IndexRow, TopCrop, VideoPage, draw_keyframe, href, index_html, jpeg_bytes,
                                      timeline_png, video_page_html)
from inference.evidence_rows import crop_rows, person_rows, top_crops
from inference.pipeline import PredictionConfig, VideoResult, prepare_video

MARKER = "evidence-report.json"
MARKER_KIND = "deepfake evidence report"
KEYFRAMES = 3  # per video page
TOP_CROPS = 3  # crops with a Grad-CAM map per video page
CROP_SIDE = 190  # pixels of a crop and its map on the page


class ReportFolderError(Exception):
    """A --report folder that is not a report folder (the message names it)."""


def refusal(folder: Path) -> str | None:
    """Why `folder` cannot take a report, or None: it must be absent, empty, or a report folder made here."""
    folder = Path(folder)
    if not folder.exists():
        return None
    if not folder.is_dir():
        return f"--report {folder} is a file, not a folder"
    if not any(folder.iterdir()):
        return None
    marker = folder / MARKER
    try:
        kind = json.loads(marker.read_text()).get("kind") if marker.is_file() else None
    except (OSError, ValueError, AttributeError):
        kind = None
    if kind != MARKER_KIND:
        return (f"--report {folder} already exists and is not an evidence report (no {MARKER} in it); "
                f"pick a new or empty folder, nothing was written")
    return None


def page_file_name(name: str) -> str:
    """videos/<this>.html; a dataset id's folders are joined with '__' so every page sits in videos/."""
    return name.replace("/", "__").replace(os.sep, "__") + ".html"


def pointer_path(output: Path) -> Path:
    return Path(f"{output}.report.json")


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def report_for_predictions(predictions: Path) -> Path | None:
    """The report folder made with exactly these predictions (recorded beside them), or None."""
    pointer = pointer_path(predictions)
    try:
        record = json.loads(pointer.read_text())
        folder = Path(record["folder"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if record.get("predictions_sha256") != _sha256(predictions) or not (folder / "index.html").is_file():
        return None
    return folder


def page_of(folder: Path, name: str) -> Path:
    return Path(folder) / "videos" / page_file_name(name)


def page_links(predictions: Path, names: Sequence[str], from_folder: Path) -> dict[str, str]:
    """name -> relative, quoted link from `from_folder` to the video's page, for the names whose page exists in
    the report made with exactly these predictions (empty without one)."""
    folder = report_for_predictions(predictions)
    if folder is None:
        return {}
    links = {}
    for name in names:
        target = page_of(folder, name)
        if target.is_file():
            links[name] = href(os.path.relpath(target.resolve(), Path(from_folder).resolve()))
    return links


class EvidenceReport:
    """Writes the pages of one run; its settings (the run key, calibration, report options) decide page reuse."""

    def __init__(self, folder: Path, run_key: dict, loaded: Sequence[LoadedClassifier],
                 calibration: Calibration | None, is_main: bool = True):
        self.folder, self.card, self.calibration = Path(folder), loaded[0].card, calibration
        self.model_names = [item.path.name for item in loaded]
        self.classifier = loaded[0].model  # the one model whose Grad-CAM maps the pages show
        self.settings = json.loads(json.dumps({
            "run_key": run_key, "calibration": calibration.card_value() if calibration else None,
            "keyframes": KEYFRAMES, "top_crops": TOP_CROPS}))
        self._mapper = None
        self.reused = 0
        marker = self.folder / MARKER
        previous = json.loads(marker.read_text()).get("settings") if marker.is_file() else None
        if is_main:
            if previous is not None and previous != self.settings and (self.folder / "videos").is_dir():
                print(f"[report] {self.folder}: pages made with other settings are remade", file=sys.stderr)
                shutil.rmtree(self.folder / "videos")
            atomic_write_json(marker, {"kind": MARKER_KIND, "settings": self.settings}, indent=1)
        self.pages_valid = previous is None or previous == self.settings

    # ------------------------------------------------------------ one video

    def has_page(self, name: str) -> bool:
        return self.pages_valid and page_of(self.folder, name).is_file()

    def heat_source(self) -> str:
        if len(self.model_names) == 1:
            return self.model_names[0]
        return f"{self.model_names[0]} (one model: the first of the {len(self.model_names)}; maps are not averaged)"

    def _heat_maps(self, crops: np.ndarray) -> list[np.ndarray]:
        if self._mapper is None:
            from inference.gradcam import HeatMapper  # torch autograd set-up only when a page needs maps

            self._mapper = HeatMapper(self.classifier, self.card)
        return self._mapper.overlays(crops)

    def shown_score(self, result: VideoResult) -> float | None:
        if result.score is None or self.calibration is None:
            return result.score
        return float(self.calibration.apply(result.score))

    def aggregation_note(self, result: VideoResult) -> str:
        aggregation = result.aggregation
        if result.score is None:
            return f"Aggregation {aggregation}: nothing to aggregate."
        scores = [r.score for r in crop_rows(result)]
        calibrated = "" if self.calibration is None else (
            f" Calibrated: sigmoid(logit(p) / {self.calibration.temperature:.4f} {self.calibration.bias:+.4f}) "
            f"gives {self.shown_score(result):.4f} from the raw {result.score:.4f}.")
        per_model = "" if len(self.model_names) == 1 else (
            " With several models each model aggregates its own crop scores and the video score is their mean; "
            "the counts here are of the models' mean crop scores.")
        if aggregation == "mean":
            return f"Aggregation mean: the plain mean of {len(scores)} crop scores.{per_model}{calibrated}"
        if aggregation == "per_person":
            decided = [p for p in person_rows(result) if p.decided]
            which = (f"person {decided[0].track} decided" if decided else
                     f"no person was seen in {self.card.person_min_frames} sampled frames or more, so the confident "
                     f"strategy over all crops decided")
            return (f"Aggregation per_person: the confident strategy within each person; the video takes the highest "
                    f"score among the people seen in at least {self.card.person_min_frames} sampled frames. Here "
                    f"{which}.{calibrated}")
        t = self.card.confident_threshold
        above, below = sum(s > t for s in scores), sum(s < 0.2 for s in scores)
        if above > len(scores) // 2.5 and above > 11:
            rule = f"{above} of {len(scores)} crops score above {t:g}: the mean of those"
        elif below > 0.9 * len(scores):
            rule = f"{below} of {len(scores)} crops score below 0.2 (over 90%): the mean of those"
        else:
            rule = (f"{above} of {len(scores)} crops above {t:g} (not more than 11 and 40%) and {below} below 0.2 "
                    f"(not over 90%): the plain mean")
        return f"Aggregation confident (the winner's): {rule}.{per_model}{calibrated}"

    def page_settings(self) -> list[tuple[str, str]]:
        card = self.card
        return [("model(s)", ", ".join(self.model_names)), ("encoder", card.encoder),
                ("input size", f"{card.input_size} px"), ("frames per video", str(card.frames_per_video)),
                ("aggregation (card)", card.aggregation), ("confident threshold", f"{card.confident_threshold:g}"),
                ("detector thresholds", ", ".join(f"{v:g}" for v in card.detector_thresholds)),
                ("calibration", self.calibration_text())]

    def calibration_text(self) -> str:
        if self.calibration is None:
            return "none (raw model scores)"
        return f"temperature {self.calibration.temperature:.4f}, bias {self.calibration.bias:+.4f}"

    def add(self, result: VideoResult) -> None:
        """Write the video's page from a freshly scored result (crop images and keyframes kept)."""
        page_path = page_of(self.folder, result.name)
        files_dir = page_path.with_name(page_path.name[:-len(".html")] + ".files")
        files_name = files_dir.name
        rows = crop_rows(result)
        timeline = None
        if rows:
            atomic_write_bytes(files_dir / "timeline.png",
                               timeline_png(rows, self.card, result.aggregation))
            timeline = f"{files_name}/timeline.png"
        keyframe_files = []
        for number, keyframe in enumerate(result.keyframes.frames if result.keyframes else [], 1):
            atomic_write_bytes(files_dir / f"keyframe_{number}.jpg", jpeg_bytes(draw_keyframe(keyframe, rows)))
            keyframe_files.append((keyframe.index, f"{files_name}/keyframe_{number}.jpg"))
        tops = []
        if result.crop_images is not None and rows:
            chosen = top_crops(result, TOP_CROPS)
            crops = np.stack([result.crop_images[row.position] for row in chosen])
            for number, (row, crop, heat) in enumerate(zip(chosen, crops, self._heat_maps(crops)), 1):
                atomic_write_bytes(files_dir / f"crop_{number}.jpg", jpeg_bytes(_side(crop)))
                atomic_write_bytes(files_dir / f"heat_{number}.jpg", jpeg_bytes(_side(heat)))
                tops.append(TopCrop(row, f"{files_name}/crop_{number}.jpg", f"{files_name}/heat_{number}.jpg"))
        people = person_rows(result) if rows else []
        keyframes = result.keyframes
        page = VideoPage(
            name=result.name, score=self.shown_score(result), failure=result.failure, reason=result.reason,
            aggregation=result.aggregation, people=people,
            frames_scored=len({r.frame for r in rows}),
            frames_sampled=keyframes.frames_sampled if keyframes else None,
            resampled=bool(keyframes and keyframes.resampled), card=self.card, models=self.model_names,
            aggregation_note=self.aggregation_note(result), timeline_file=timeline, keyframe_files=keyframe_files,
            top_crops=tops, heat_source=self.heat_source(), settings=self.page_settings())
        atomic_write_bytes(page_path, video_page_html(page, "../index.html"))

    def add_finished(self, finished: Sequence[tuple[Path, VideoResult]], config: PredictionConfig) -> None:
        """Pages for videos finished in an earlier run: kept when made with these settings, else rebuilt by
        decoding and detecting the video again (the scores are the recorded ones)."""
        missing = [(path, result) for path, result in finished if not self.has_page(result.name)]
        self.reused += len(finished) - len(missing)
        again = dataclasses.replace(config, detect_in_workers=True, workers=0)
        for path, result in tqdm(missing, desc="report pages of finished videos", disable=not missing):
            self.add(with_images(result, prepare_video(path, again)))

    # ------------------------------------------------------------ the index

    def write_index(self, results: Sequence[VideoResult]) -> Path:
        rows = []
        for result in results:
            page = page_of(self.folder, result.name)
            thumbnail = page.with_name(page.name[:-len(".html")] + ".files") / "crop_1.jpg"
            rows.append(IndexRow(
                name=result.name, page_href=href(f"videos/{page.name}"),
                thumbnail_href=(href(f"videos/{thumbnail.parent.name}/{thumbnail.name}") if thumbnail.is_file()
                                else None),
                score=self.shown_score(result), people=len({r.track for r in crop_rows(result)}),
                frames_scored=len({frame for frame, _face in result.crop_keys}),
                reason=f"{result.failure}: {result.reason}" if result.failure else None))
        card = self.card
        provenance = [("checkpoints", ", ".join(self.model_names)),
                      ("card", f"{card.encoder}, {card.input_size} px, {card.frames_per_video} frames per video, "
                               f"{card.aggregation} aggregation (confident threshold {card.confident_threshold:g}), "
                               f"detector thresholds {', '.join(f'{v:g}' for v in card.detector_thresholds)}"),
                      ("calibration", self.calibration_text()),
                      ("verdict", "FAKE when P(fake) > 0.5"),
                      ("heat maps", f"Grad-CAM of {self.heat_source()}")]
        index = self.folder / "index.html"
        atomic_write_bytes(index, index_html(rows, ", ".join(self.model_names), provenance))
        return index


def with_images(result: VideoResult, prepared) -> VideoResult:
    """The recorded result with the crop images and keyframes of a fresh decode, when its crops are the same."""
    crops = prepared.crops
    same = crops is not None and [tuple(k) for k in crops.keys] == [tuple(k) for k in result.crop_keys]
    return dataclasses.replace(result, crop_images=crops.inputs if same else None, keyframes=prepared.keyframes)


def _side(image: np.ndarray) -> np.ndarray:
    return cv2.resize(image, (CROP_SIDE, CROP_SIDE), interpolation=cv2.INTER_AREA)


def write_pointer(output: Path, folder: Path) -> None:
    """OUTPUT.report.json: the report of exactly these predictions (evaluate.py checks the hash)."""
    atomic_write_json(pointer_path(output), {"folder": str(Path(folder).resolve()),
                                             "predictions_sha256": _sha256(output)}, indent=1)
