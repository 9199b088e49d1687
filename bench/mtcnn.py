"""Speed of the face detector on CPU: core.mtcnn against facenet-pytorch's own MTCNN.detect, on real videos.

    python bench/mtcnn.py ../shared/data/ffpp_c40 [--videos 6] [--threads 1]

Two workloads, both from the first --videos REAL videos of DATA_ROOT (DFDC layout), one thread by default (as
the preprocessing workers run):
- step 1 / prediction: half-size frames (every 30th, up to 8 per video), one detector call per video, with the
  thresholds of step 1;
- step 3: the face crops of those frames (crop_face of the largest box), one call per crop, with the
  thresholds of step 3.
Both detectors see the same inputs; prints ms per image of each, the ratio, and whether every box and landmark
is bit-identical (exits 1 if not).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from facenet_pytorch import MTCNN

from core import faces
from core.cli import HelpFormatter
from core.layout import load_dataset
from core.video import half_size, iter_frames


def facenet_detector(thresholds) -> MTCNN:
    """facenet-pytorch's MTCNN as the original configured it, untouched."""
    return MTCNN(margin=0, thresholds=list(thresholds), keep_all=True, select_largest=True, post_process=False)


def facenet_results(mtcnn: MTCNN, batch: np.ndarray) -> list:
    boxes, _, points = mtcnn.detect(batch, landmarks=True)
    return [None if b is None else (np.asarray(b, np.float64), np.asarray(p, np.float64))
            for b, p in zip(boxes, points)]


def same(ours: list, theirs: list) -> bool:
    return all((a is None and b is None) or (a is not None and b is not None and np.array_equal(a[0], b[0])
                                             and np.array_equal(a[1], b[1])) for a, b in zip(ours, theirs))


def timed(function, batches: list[np.ndarray]) -> tuple[list, float]:
    function(batches[0])  # start-up
    start = time.perf_counter()
    results = [function(batch) for batch in batches]
    return results, time.perf_counter() - start


def compare(label: str, thresholds, batches: list[np.ndarray]) -> bool:
    ours_mtcnn, theirs_mtcnn = faces.make_mtcnn(thresholds), facenet_detector(thresholds)
    ours, ours_s = timed(lambda batch: faces.detect_batch(ours_mtcnn, list(batch), landmarks=True), batches)
    theirs, theirs_s = timed(lambda batch: facenet_results(theirs_mtcnn, batch), batches)
    images = sum(len(batch) for batch in batches)
    identical = all(same(a, b) for a, b in zip(ours, theirs))
    print(f"{label:<34} {images:4d} images  facenet-pytorch {theirs_s / images * 1000:6.1f} ms  "
          f"core.mtcnn {ours_s / images * 1000:6.1f} ms  {theirs_s / ours_s:4.2f}x  "
          f"{'bit-identical' if identical else 'DIFFERENT'}")
    return identical


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("data_root", type=Path)
    parser.add_argument("--videos", type=int, default=6, help="real videos to take frames from")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    reals = [entry for entry in load_dataset(args.data_root).values() if not entry.is_fake][:args.videos]
    if not reals:
        raise SystemExit(f"error: no REAL video listed under {args.data_root}")
    frame_batches, crops = [], []
    finder = faces.make_mtcnn(faces.DETECT_THRESHOLDS)
    for entry in reals:
        full = [frame for _, frame in iter_frames(entry.path, keep=lambda i: i % 30 == 0)][:8]
        half = np.stack([half_size(frame) for frame in full])
        frame_batches.append(half)
        for frame, found in zip(full, faces.detect_batch(finder, list(half))):
            if found is not None:
                crops.append(faces.crop_face(frame, faces.scale_box(found[0]))[None])
    print(f"{len(reals)} real videos of {args.data_root}, {args.threads} torch thread(s)")
    ok = compare("half-size frames, a call per video", faces.DETECT_THRESHOLDS, frame_batches)
    ok &= compare("face crops, a call per crop", faces.LANDMARK_THRESHOLDS, crops)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
