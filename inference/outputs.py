"""predict_folder's files: the submission CSV, the failures, the per-crop scores and optional thumbnails.

    <output>             filename,label          every video, sorted; unscorable videos get 0.5 (Kaggle needs a row)
    <output>.errors.csv  filename,reason         one row per unscorable video ("unreadable: ..." / "no face: ...")
    <output>.crops.csv   filename,frame,face,track,score,thumbnail   score = mean over models of the crop's sigmoid
    <output>.people.csv  one row per video and face track (inference.people.PEOPLE_COLUMNS), every aggregation
"""
from __future__ import annotations

import csv
import io
import sys
from collections import Counter
from pathlib import Path
from typing import Sequence

import cv2

from inference.people import PEOPLE_COLUMNS
from inference.pipeline import NO_FACE, UNREADABLE, VideoResult
from core.tracks import CROWDED
from core.atomic import atomic_write_bytes, atomic_write_image

UNSCORED_LABEL = 0.5
THUMBNAIL_SIDE = 128


def errors_path(output: Path) -> Path:
    return Path(f"{output}.errors.csv")


def crops_path(output: Path) -> Path:
    return Path(f"{output}.crops.csv")


def people_path(output: Path) -> Path:
    return Path(f"{output}.people.csv")


def _write_csv(path: Path, header: Sequence[str], rows) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode())


def thumbnail_file(crops_dir: Path, video_name: str, frame: int, face: int) -> Path:
    """<crops_dir>/<row name without extension>/<frame>_<face>.jpg; a dataset id keeps its folders (FF++ methods
    share file names)."""
    return Path(crops_dir) / Path(video_name).with_suffix("") / f"{frame}_{face}.jpg"


def save_thumbnails(result: VideoResult, crops_dir: Path) -> None:
    """The model inputs of a video's crops, shrunk to THUMBNAIL_SIDE, as JPEG (what the model actually saw)."""
    for (frame, face), image in zip(result.crop_keys, result.crop_images):
        small = cv2.resize(image, (THUMBNAIL_SIDE, THUMBNAIL_SIDE), interpolation=cv2.INTER_AREA)
        atomic_write_image(thumbnail_file(crops_dir, result.name, frame, face), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))


def write_outputs(results: Sequence[VideoResult], output: Path, crops_dir: Path | None = None) -> None:
    results = sorted(results, key=lambda r: r.name)
    _write_csv(output, ("filename", "label"),
               ((r.name, UNSCORED_LABEL if r.score is None else r.score) for r in results))
    _write_csv(errors_path(output), ("filename", "reason"),
               ((r.name, f"{r.failure}: {r.reason}") for r in results if r.score is None))
    rows = []
    for r in results:
        scores = r.crop_scores if r.crop_scores is not None else []
        for (frame, face), track, score in zip(r.crop_keys, r.crop_tracks, scores):
            thumb = thumbnail_file(crops_dir, r.name, frame, face).resolve() if crops_dir else ""
            rows.append((r.name, frame, face, track, f"{score:.6f}", thumb))
    _write_csv(crops_path(output), ("filename", "frame", "face", "track", "score", "thumbnail"), rows)
    _write_csv(people_path(output), PEOPLE_COLUMNS, (_people_row(r.name, person) for r in results for person in r.people))


def _people_row(name: str, person: dict) -> tuple:
    values = {**person, "filename": name}
    for column in ("x1", "y1", "x2", "y2"):
        values[column] = f"{values[column]:.1f}"
    values["score"] = f"{values['score']:.6f}"
    return tuple(values[column] for column in PEOPLE_COLUMNS)


def summary_line(results: Sequence[VideoResult]) -> str:
    failures = Counter(r.failure for r in results if r.score is None)
    scored = sum(r.score is not None for r in results)
    return (f"[predict] {len(results)} videos: scored {scored}, {NO_FACE} {failures[NO_FACE]}, "
            f"{UNREADABLE} {failures[UNREADABLE]} (unscored videos got {UNSCORED_LABEL})")


def print_summary(results: Sequence[VideoResult], output: Path) -> None:
    print(summary_line(results), file=sys.stderr)
    for r in sorted(results, key=lambda r: r.name):
        if r.score is None:
            print(f"[predict]   {r.name}: {r.failure}: {r.reason}", file=sys.stderr)
    crowded = sum(len(r.people) > CROWDED for r in results)
    if crowded:
        print(f"[predict] {crowded} video(s) with more than {CROWDED} people (face tracks); each is scored, see "
              f"{people_path(output)}", file=sys.stderr)
    print(f"[predict] wrote {output}, {errors_path(output)}, {crops_path(output)}, {people_path(output)}",
          file=sys.stderr)
