"""Step 3: five MTCNN landmarks on every crop of every REAL video.

landmarks/<id>/<frame>_<actor>.npy: int16 (5, 2) x, y in crop pixels, of the largest face MTCNN finds in the
crop (left eye, right eye, nose, mouth left, mouth right). Fakes reuse their original's landmarks (the crops
are aligned). Crops of one size are detected in one batch; a crop with no face gets no file and is counted.
"""
from __future__ import annotations

from core.allocator import use_steady_allocator

use_steady_allocator(__name__)  # first: glibc reads its malloc settings only when a process starts

from collections import defaultdict
from functools import cache
from collections.abc import Iterable

import cv2
import numpy as np

from core.atomic import atomic_write_npy
from core.processes import end_helper_processes
from preprocessing.common import RunSummary, write_done_marker
from core.faces import LANDMARK_THRESHOLDS, detect_batch, make_mtcnn
from core.layout import crops_folder, landmarks_folder, landmarks_path, list_crops
from core.runtime import pick_device
from preprocessing.manifest import require
from preprocessing.step import (checked_step_inputs, folder_bytes, make_parser, reals_with_crops, record_finished,
                                run_video_jobs, video_job)

STEP = "generate_landmarks"


@cache
def landmark_detector(device: str):
    """One MTCNN per worker process, on one CPU thread also without a pool: a crop is too small for intra-op
    threads (two threads cost several times the CPU time of one, see bench/results/preprocess.md), so
    parallelism comes from videos."""
    import torch

    torch.set_num_threads(1)
    return make_mtcnn(LANDMARK_THRESHOLDS, pick_device(device))


def read_crops(folder, names: list[str], summary: RunSummary) -> dict[tuple, list[tuple[str, np.ndarray]]]:
    """Readable crops as RGB, grouped by shape so that each group is one detector batch."""
    groups = defaultdict(list)
    for name in names:
        image = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
        if image is None:
            summary.fail(str(folder / name), "unreadable crop image")
            continue
        groups[image.shape].append((name, cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
    return groups


def landmarks_of_video(job: tuple) -> RunSummary:
    root, video_id, device = job
    summary = RunSummary(STEP)
    with video_job(summary, video_id):
        source, out = crops_folder(root, video_id), landmarks_folder(root, video_id)
        out.mkdir(parents=True, exist_ok=True)
        mtcnn = landmark_detector(device)
        for crops in read_crops(source, list_crops(source), summary).values():
            results = detect_batch(mtcnn, [image for _, image in crops], landmarks=True)
            for (name, _), found in zip(crops, results):
                if found is None:
                    summary.frames_without_face += 1
                    continue
                points = np.round(found[1][0]).astype(np.int16)
                atomic_write_npy(landmarks_path(root, video_id, name), points)
        write_done_marker(out)
        summary.done = 1
    return summary


def main(argv: Iterable[str] | None = None) -> RunSummary:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu",
                        help="cpu (default: crops are small, worker processes each run their own detector) or cuda")
    args = parser.parse_args(argv)
    entries, summary, settings = checked_step_inputs(
        args, STEP, lambda: {"detector_thresholds": list(LANDMARK_THRESHOLDS),
                             "crops": require(args.root_dir, "extract_crops", STEP)},
        outputs=f"landmarks in {args.root_dir / 'landmarks'}",
        how_to_keep="Make the crops with the settings the landmarks were made from")
    reals, todo = reals_with_crops(args, entries, summary, landmarks_folder)
    jobs = [(args.root_dir, entry.video_id, args.device) for entry in todo]
    workers = 1 if args.device.startswith("cuda") else args.workers
    # Forked workers inherit torch and facenet-pytorch, imported here but not yet used: spawned ones spent more
    # time importing them than detecting on a few videos' crops (the original forked as well).
    import core.mtcnn  # noqa: F401  (facenet-pytorch and torchvision: ~1.6 s per worker otherwise)

    run_video_jobs(summary, landmarks_of_video, jobs, workers, desc="landmarks (videos)",
                   size_of=lambda job: folder_bytes(crops_folder(job[0], job[1])), start_method="fork")
    record_finished(args, STEP, settings, [entry.video_id for entry in reals], landmarks_folder)
    return summary


if __name__ == "__main__":
    main()
    end_helper_processes()
