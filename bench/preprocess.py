"""Speed of preprocessing steps 1 (detect faces) and 2 (extract crops) against the floor of only decoding.

usage: python bench/preprocess.py DATA_ROOT [--frame-stride 1 10] [--workers N] [--videos a.mp4 ...]

DATA_ROOT is never written to: the videos are linked into a temporary folder and every output goes there.
Prints videos/s for step 1 at each stride and for step 2, and, as floors, the time to decode the same videos
(every frame, no colour conversion) and to decode + convert only the frames each step keeps.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.allocator import use_steady_allocator  # noqa: E402

use_steady_allocator(__name__)  # first: glibc reads its malloc settings only when a process starts

from core.cli import HelpFormatter  # noqa: E402
from core.layout import load_dataset  # noqa: E402
from core.runtime import run_parallel  # noqa: E402
from core.video import iter_frames  # noqa: E402
from preprocessing import detect_original_faces, extract_crops  # noqa: E402
from preprocessing.detect_original_faces import DEFAULT_CROP_EVERY as CROP_EVERY  # noqa: E402
from preprocessing.link_dataset import link_dataset  # noqa: E402


def decode(job: tuple[str, int, int]) -> int:
    """Decode one video; convert only frames at multiples of `stride` (stride 0: convert none). Returns frames."""
    path, stride, half = job
    keep = (lambda i: i % stride == 0) if stride else (lambda i: False)
    frames = sum(1 for _ in iter_frames(Path(path), keep=keep, half=half, threads=False))
    return frames


def timed(function, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def decode_floor(paths: list[Path], stride: int, half: bool, workers: int) -> float:
    jobs = [(str(p), stride, half) for p in paths]
    seconds, _ = timed(lambda: list(run_parallel(decode, jobs, workers, desc=f"decode (stride {stride})")))
    return seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=HelpFormatter)
    parser.add_argument("data_root", type=Path)
    parser.add_argument("--frame-stride", type=int, nargs="+", default=[10], help="detect strides to time")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--videos", nargs="*", default=None, help="only these file names (default: all)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    with tempfile.TemporaryDirectory(prefix="bench_preprocess_") as tmp:
        results = {}
        for stride in sorted(set(args.frame_stride), reverse=True):
            root = link_dataset(args.data_root, Path(tmp) / f"stride{stride}", args.videos)
            common = ["--root-dir", str(root), "--workers", str(args.workers)]
            results[stride] = timed(detect_original_faces.main, [*common, "--frame-stride", str(stride)])
        crops_stride = CROP_EVERY if CROP_EVERY in results else max(results)
        crops_root = Path(tmp) / f"stride{crops_stride}"
        step2_seconds, step2 = timed(extract_crops.main, ["--root-dir", str(crops_root), "--workers", str(args.workers)])

        entries = load_dataset(crops_root).values()
        reals = [e.path for e in entries if not e.is_fake]
        every = [e.path for e in entries]
        floor_all_reals = decode_floor(reals, 0, False, args.workers)
        floor_all_videos = decode_floor(every, 0, False, args.workers)
        floor_kept_step1 = decode_floor(reals, crops_stride, True, args.workers)
        floor_kept_step2 = decode_floor(every, CROP_EVERY, False, args.workers)

    print(f"\n{len(reals)} real videos, {len(every)} videos in all, {args.workers} workers")
    for stride, (seconds, summary) in sorted(results.items()):
        print(f"step 1 detect, stride {stride:3d}: {seconds:7.1f} s  {len(reals) / seconds:6.2f} videos/s  "
              f"({summary.done} done, {len(summary.failures)} failed)")
    if 1 in results and crops_stride != 1:
        print(f"step 1 speed-up of stride {crops_stride} over stride 1: {results[1][0] / results[crops_stride][0]:.1f}x")
    print(f"step 2 crops:                {step2_seconds:7.1f} s  {len(every) / step2_seconds:6.2f} videos/s  "
          f"({step2.done} done, {len(step2.failures)} failed)")
    print(f"floor, decode every frame, no conversion: reals {floor_all_reals:.1f} s, all videos {floor_all_videos:.1f} s")
    print(f"floor, decode + convert kept frames: step 1 {floor_kept_step1:.1f} s, step 2 {floor_kept_step2:.1f} s")
    steps = results[crops_stride][0] + step2_seconds
    print(f"steps 1+2 (stride {crops_stride}): {steps:.1f} s = {steps / (floor_all_reals + floor_all_videos):.2f}x the "
          f"decode-only floor, {steps / (floor_kept_step1 + floor_kept_step2):.2f}x decode+convert of kept frames")


if __name__ == "__main__":
    main()
