"""Step 3b: dlib's 68 landmarks on every crop of every REAL video (the masks of self-blended training, "fakes": "sbi").

landmarks68/<id>/<frame>_<actor>.npy: int32 (68, 2) x, y in crop pixels. The points come from dlib's HOG face
detector and 68-point predictor; where HOG finds no face (small, blurred or turned faces), the predictor runs on
the MTCNN box the crop was cut around (from boxes/<id>.json), which is counted. Fakes get none: the self-blends
are made from reals only.
"""
from __future__ import annotations

from typing import Iterable

import cv2

from core.atomic import atomic_write_npy
from core.faces import box_in_crop, scale_box
from core.landmarks68 import dlib_shape_predictor_path, hog_face_box, predict_landmarks_68
from core.layout import (box_of_actor, boxes_path, crops_folder, landmarks68_folder, landmarks68_path, list_crops,
                         load_boxes, parse_crop_name)
from preprocessing.common import RunSummary, write_done_marker
from preprocessing.manifest import require
from preprocessing.step import (begin_step, folder_bytes, make_parser, reals_with_crops, record_finished,
                                run_video_jobs, video_job)

STEP = "generate_landmarks68"
FALLBACK_NOTE = "crops where HOG found no face (predictor run on the MTCNN box)"


def landmarks68_of_video(job: tuple) -> RunSummary:
    root, video_id = job
    summary = RunSummary(STEP)
    with video_job(summary, video_id):
        source, out = crops_folder(root, video_id), landmarks68_folder(root, video_id)
        out.mkdir(parents=True, exist_ok=True)
        boxes = load_boxes(boxes_path(root, video_id))
        for name in list_crops(source):
            image = cv2.imread(str(source / name), cv2.IMREAD_COLOR)
            if image is None:
                summary.fail(str(source / name), "unreadable crop image")
                continue
            frame, actor = parse_crop_name(name)
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            box = hog_face_box(image)
            if box is None:
                summary.notes[FALLBACK_NOTE] += 1
                box = box_in_crop(scale_box(box_of_actor(boxes[frame], actor)))
            points = predict_landmarks_68(image, box)
            atomic_write_npy(landmarks68_path(root, video_id, name), points)
        write_done_marker(out)
        summary.done = 1
    return summary


def main(argv: Iterable[str] | None = None) -> RunSummary:
    args = make_parser(__doc__.splitlines()[0]).parse_args(argv)
    entries, summary, settings = begin_step(
        args, STEP, lambda: {"model": dlib_shape_predictor_path().name, "face": "dlib HOG, else the MTCNN box",
                             "crops": require(args.root_dir, "extract_crops", STEP)},
        outputs=f"68-point landmarks in {args.root_dir / 'landmarks68'}",
        how_to_keep="Make the crops with the settings the landmarks were made from")
    reals, todo = reals_with_crops(args, entries, summary, landmarks68_folder)
    jobs = [(args.root_dir, entry.video_id) for entry in todo]
    run_video_jobs(summary, landmarks68_of_video, jobs, args.workers, desc="68 landmarks (videos)",
                   size_of=lambda job: folder_bytes(crops_folder(job[0], job[1])))
    record_finished(args, STEP, settings, [entry.video_id for entry in reals], landmarks68_folder)
    return summary


if __name__ == "__main__":
    main()
