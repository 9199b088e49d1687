"""Step 2: face crops of every video, every --crop-every-th frame (from step 1's manifest), cut with its ORIGINAL's boxes.

A fake is cropped where its original's faces are, which keeps real and fake crops pixel-aligned; this only
holds when the fake has the original's frame count and resolution, so fakes that differ are reported and
skipped. Output: crops/<id>/<frame>_<track>.png (BGR), then a done marker per video; the second number is the
box's track id (the same person throughout the video, and in its fakes), or its detection index in roots whose
boxes were made before tracks.
"""
from __future__ import annotations

from core.allocator import use_steady_allocator

use_steady_allocator(__name__)  # first: glibc reads its malloc settings only when a process starts

from typing import Iterable

import cv2

from core.atomic import atomic_write_image
from core.processes import end_helper_processes
from core.faces import CROP_PAD_DIVISOR, crop_face, scale_box
from core.layout import VideoEntry, box_actors, boxes_path, crop_name, crops_folder, load_boxes
from core.video import header_geometry, iter_frames
from preprocessing.common import RunSummary, is_done, write_done_marker
from preprocessing.manifest import require
from preprocessing.step import (begin_step, make_parser, missing_file_failures, record_finished, run_video_jobs,
                                shard_of, video_job)

STEP = "extract_crops"

MISALIGNED = "misaligned with original"
NO_ORIGINAL_BOXES = "original has no boxes file"


def misalignment(fake: VideoEntry, original_path) -> str | None:
    """Why the fake's frames do not line up with its original's, or None when they do."""
    fake_w, fake_h, fake_n = header_geometry(fake.path)
    orig_w, orig_h, orig_n = header_geometry(original_path)
    if (fake_w, fake_h) != (orig_w, orig_h):
        return f"{MISALIGNED}: {fake_w}x{fake_h} vs {orig_w}x{orig_h} ({original_path.name})"
    if fake_n != orig_n:
        return f"{MISALIGNED}: {fake_n} frames vs {orig_n} ({original_path.name})"
    return None


def crop_video(job: tuple) -> RunSummary:
    """Crops of one video into its folder; everything that goes wrong is in the returned summary."""
    root, entry, original_path, crop_every, decoder_threads = job
    summary = RunSummary(STEP)
    with video_job(summary, entry.name):
        if entry.is_fake:
            problem = misalignment(entry, original_path)
            if problem:
                summary.notes[MISALIGNED] += 1
                summary.fail(entry.name, problem)
                return summary
        boxes = load_boxes(boxes_path(root, entry.original_id))
        out = crops_folder(root, entry.video_id)
        out.mkdir(parents=True, exist_ok=True)
        wanted = {index for index in boxes if index % crop_every == 0}
        summary.frames_without_face += sum(boxes[index] is None for index in wanted)
        with_face = {index for index in wanted if boxes[index]}
        for index, frame in iter_frames(entry.path, keep=with_face.__contains__, threads=decoder_threads):
            for actor, box in zip(box_actors(boxes[index]), boxes[index]):
                crop = crop_face(frame, scale_box(box[:4]))
                if crop.size == 0:
                    summary.notes["boxes outside the frame"] += 1
                    continue
                atomic_write_image(out / crop_name(index, actor), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        write_done_marker(out)
        summary.done = 1
    return summary


def main(argv: Iterable[str] | None = None) -> RunSummary:
    args = make_parser(__doc__.splitlines()[0]).parse_args(argv)
    entries, summary, settings = begin_step(
        args, STEP, lambda: crop_settings(require(args.root_dir, "detect_original_faces", STEP)),
        outputs=f"crops in {args.root_dir / 'crops'}",
        how_to_keep="Rerun detect_original_faces with the settings the crops were made with")
    videos = missing_file_failures(shard_of(entries, args), summary)
    jobs = []
    for entry in videos:
        if is_done(crops_folder(args.root_dir, entry.video_id)):
            summary.skipped += 1
            continue
        if not boxes_path(args.root_dir, entry.original_id).is_file():
            reason = NO_ORIGINAL_BOXES if entry.is_fake else "no boxes file (detect_original_faces failed on it)"
            summary.notes[reason] += 1
            summary.fail(entry.name, f"{reason}: {boxes_path(args.root_dir, entry.original_id)} is missing")
            continue
        original = entries.get(entry.original_id)
        if original is None:
            summary.fail(entry.name, f"its original {entry.original} is not listed in any metadata.json")
            continue
        # Decoder threads only without a pool: one single-threaded decoder per worker keeps the cores busy without
        # oversubscribing them, and frame threading buffers a frame per thread.
        jobs.append((args.root_dir, entry, original.path, settings["crop_every"], args.workers <= 1))
    run_video_jobs(summary, crop_video, jobs, args.workers, desc="extract crops (videos)",
                   size_of=lambda job: job[1].path.stat().st_size)
    record_finished(args, STEP, settings, [entry.video_id for entry in videos], crops_folder)
    return summary


def crop_settings(boxes_settings: dict) -> dict:
    """What the crops depend on: the frames step 1 promised (its crop_every), the margin and the boxes."""
    return {"crop_every": boxes_settings["crop_every"], "crop_pad_divisor": CROP_PAD_DIVISOR, "boxes": boxes_settings}


if __name__ == "__main__":
    main()
    end_helper_processes()
