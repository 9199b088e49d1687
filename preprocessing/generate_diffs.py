"""Step 4: SSIM difference masks between each fake crop and the same crop of its original.

diffs/<fake_id>/<frame>_<actor>_diff.png: grey uint8, 255 * clip(1 - SSIM map, 0, 1) converted BGR -> grey.
The clip fixes the original's uint8 wrap-around where SSIM < 0. Crops of different shapes are reported.

Per fake, diffs/<fake_id>/tracks.json records how much each person changed: {"<track>": mean of that track's
diff masks / 255}. generate_folds turns it into the `changed` column (core/changes.py holds the rule).
"""
from __future__ import annotations

from core.allocator import use_steady_allocator

use_steady_allocator(__name__)  # first: glibc reads its malloc settings only when a process starts

from typing import Iterable

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from core.atomic import atomic_write_image, atomic_write_json
from core.changes import TRACK_CHANGES_FILE
from core.processes import end_helper_processes
from preprocessing.common import RunSummary, is_done, write_done_marker
from core.layout import crops_folder, diff_path, diffs_folder, list_crops, parse_crop_name
from preprocessing.manifest import require
from preprocessing.step import (begin_step, folder_bytes, make_parser, record_finished, run_video_jobs, shard_of,
                                video_job)

STEP = "generate_diffs"


def ssim_difference(fake_bgr: np.ndarray, original_bgr: np.ndarray) -> np.ndarray:
    """Grey uint8 mask, bright where the fake differs from the original."""
    _score, similarity = structural_similarity(fake_bgr, original_bgr, channel_axis=-1, full=True, data_range=255)
    difference = (np.clip(1.0 - similarity, 0.0, 1.0) * 255).astype(np.uint8)
    return cv2.cvtColor(difference, cv2.COLOR_BGR2GRAY)


def diffs_of_fake(job: tuple) -> RunSummary:
    root, fake_id, original_id = job
    summary = RunSummary(STEP)
    with video_job(summary, fake_id):
        fake_dir, original_dir = crops_folder(root, fake_id), crops_folder(root, original_id)
        out = diffs_folder(root, fake_id)
        out.mkdir(parents=True, exist_ok=True)
        per_track: dict[int, list[float]] = {}
        for name in list_crops(fake_dir):
            if not (original_dir / name).is_file():
                summary.notes["fake crops with no original crop"] += 1
                summary.fail(str(fake_dir / name), f"no crop {name} in {original_dir}")
                continue
            fake = cv2.imread(str(fake_dir / name), cv2.IMREAD_COLOR)
            original = cv2.imread(str(original_dir / name), cv2.IMREAD_COLOR)
            if fake is None or original is None:
                summary.fail(str(fake_dir / name), "unreadable crop image (fake or original)")
                continue
            if fake.shape != original.shape:
                summary.notes["shape mismatch"] += 1
                summary.fail(str(fake_dir / name), f"shape {fake.shape} differs from original {original.shape}")
                continue
            difference = ssim_difference(fake, original)
            atomic_write_image(diff_path(root, fake_id, name), difference)
            per_track.setdefault(parse_crop_name(name)[1], []).append(float(difference.mean()) / 255)
        atomic_write_json(out / TRACK_CHANGES_FILE, {str(track): float(np.mean(values))
                                                     for track, values in sorted(per_track.items())})
        write_done_marker(out)
        summary.done = 1
    return summary


def main(argv: Iterable[str] | None = None) -> RunSummary:
    args = make_parser(__doc__.splitlines()[0]).parse_args(argv)
    entries, summary, settings = begin_step(
        args, STEP, lambda: {"difference": "255 * clip(1 - SSIM, 0, 1), grey", "per_track": "mean of the masks / 255",
                             "crops": require(args.root_dir, "extract_crops", STEP)},
        outputs=f"diffs in {args.root_dir / 'diffs'}",
        how_to_keep="Make the crops with the settings the diffs were made from")
    fakes = [e for e in shard_of(entries, args) if e.is_fake]
    jobs = []
    for fake in fakes:
        if is_done(diffs_folder(args.root_dir, fake.video_id)):
            summary.skipped += 1
            continue
        missing = [vid for vid in (fake.video_id, fake.original_id) if not is_done(crops_folder(args.root_dir, vid))]
        if missing:
            summary.notes["fakes without finished crops (fake or original)"] += 1
            summary.fail(fake.name, f"no finished crops folder for {', '.join(missing)}")
            continue
        jobs.append((args.root_dir, fake.video_id, fake.original_id))
    run_video_jobs(summary, diffs_of_fake, jobs, args.workers, desc="SSIM diffs (fakes)",
                   size_of=lambda job: folder_bytes(crops_folder(job[0], job[1])))
    record_finished(args, STEP, settings, [fake.video_id for fake in fakes], diffs_folder)
    return summary


if __name__ == "__main__":
    main()
    end_helper_processes()
