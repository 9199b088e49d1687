"""Speed of preprocessing steps 1-5 (faces, crops, landmarks, SSIM diffs, folds) against the floor of only decoding.

usage: python bench/preprocess.py DATA_ROOT [--frame-stride 1 10] [--workers N] [--videos a.mp4 ...] [--default-malloc]

DATA_ROOT is never written to: the videos are linked into a temporary folder and every output goes there.
Each step runs as its own program, as a user runs it. Prints wall time, videos/s, CPU time (user and system:
system time is what the allocator setting removes) and peak resident memory of each step, and, as floors, the
time to decode the same videos (every frame, no colour conversion) and to decode (skipping what can be skipped)
and convert the kept frames, as the steps do.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

from core.allocator import use_steady_allocator

use_steady_allocator(__name__)  # first: glibc reads its malloc settings only when a process starts

from core.allocator import OPT_OUT
from core.cli import HelpFormatter
from core.layout import load_dataset
from core.processes import run_parallel
from core.video import decodable_frame_count, iter_frames
from preprocessing.detect_original_faces import DEFAULT_CROP_EVERY as CROP_EVERY
from preprocessing.link_dataset import link_dataset


def decode(job: tuple[str, int, int]) -> int:
    """Decode one video; returns its frames. Stride 0: every frame, nothing converted. Otherwise as the steps do:
    iter_frames keeping multiples of `stride` (unkept unreferenced frames skipped, kept ones converted)."""
    path, stride, half = job
    if not stride:
        return decodable_frame_count(Path(path), threads=False)
    return sum(1 for _ in iter_frames(Path(path), keep=lambda i: i % stride == 0, half=half, threads=False))


def run_step(step: str, root: Path, workers: int, *extra: str) -> dict:
    """Run a step as its own program (start-up included, as the original's scripts ran); wall seconds, CPU
    seconds (user + system, its workers included) and the peak resident memory of the largest of its processes."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", f"preprocessing.{step}", "--root-dir", str(root),
                                "--workers", str(workers), *extra], cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"error: {step} exited with {process.returncode}")
    return {"wall": time.perf_counter() - started, "user": usage.ru_utime, "system": usage.ru_stime,
            "peak_mib": usage.ru_maxrss / 1024}


def decode_floor(paths: list[Path], stride: int, half: bool, workers: int) -> float:
    jobs = [(str(p), stride, half) for p in paths]
    started = time.perf_counter()
    list(run_parallel(decode, jobs, workers, desc=f"decode (stride {stride})"))
    return time.perf_counter() - started


def line(label: str, run: dict, videos: int) -> str:
    return (f"{label:28s} {run['wall']:7.1f} s  {videos / run['wall']:6.2f} videos/s  CPU {run['user']:.1f} s user + "
            f"{run['system']:.1f} s system  peak {run['peak_mib']:.0f} MiB")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("data_root", type=Path)
    parser.add_argument("--frame-stride", type=int, nargs="+", default=[10], help="detect strides to time")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--videos", nargs="*", default=None, help="only these file names (default: all)")
    parser.add_argument("--default-malloc", action="store_true",
                        help=f"run the steps with glibc's default malloc ({OPT_OUT}=1), the 'before' of the "
                             f"allocator setting")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.default_malloc:
        os.environ.pop("GLIBC_TUNABLES", None)
        os.environ[OPT_OUT] = "1"

    with tempfile.TemporaryDirectory(prefix="bench_preprocess_") as tmp:
        results = {}
        for stride in sorted(set(args.frame_stride), reverse=True):
            root = link_dataset(args.data_root, Path(tmp) / f"stride{stride}", args.videos)
            results[stride] = run_step("detect_original_faces", root, args.workers, "--frame-stride", str(stride))
        crops_stride = CROP_EVERY if CROP_EVERY in results else max(results)
        crops_root = Path(tmp) / f"stride{crops_stride}"
        step2 = run_step("extract_crops", crops_root, args.workers)
        step3 = run_step("generate_landmarks", crops_root, args.workers)
        step4 = run_step("generate_diffs", crops_root, args.workers)
        step5 = run_step("generate_folds", crops_root, args.workers)
        crops = sum(1 for _ in (crops_root / "crops").rglob("*.png"))
        landmark_crops = sum(1 for _ in (crops_root / "landmarks").rglob("*.npy"))
        diffs = sum(1 for _ in (crops_root / "diffs").rglob("*.png"))

        entries = load_dataset(crops_root).values()
        reals = [e.path for e in entries if not e.is_fake]
        every = [e.path for e in entries]
        floor_all_reals = decode_floor(reals, 0, False, args.workers)
        floor_all_videos = decode_floor(every, 0, False, args.workers)
        floor_kept_step1 = decode_floor(reals, crops_stride, True, args.workers)
        floor_kept_step2 = decode_floor(every, CROP_EVERY, False, args.workers)

    print(f"\n{len(reals)} real videos, {len(every)} videos in all, {args.workers} workers, malloc: "
          f"{'glibc defaults' if args.default_malloc else os.environ.get('GLIBC_TUNABLES')}")
    for stride, run in sorted(results.items()):
        print(line(f"step 1 detect, stride {stride}", run, len(reals)))
    if 1 in results and crops_stride != 1:
        speedup = results[1]["wall"] / results[crops_stride]["wall"]
        print(f"step 1 speed-up of stride {crops_stride} over stride 1: {speedup:.1f}x")
    print(line("step 2 crops", step2, len(every)) + f"  ({crops} crops)")
    print(line("step 3 landmarks", step3, len(reals)) + f"  ({landmark_crops} crops with landmarks, "
          f"{1000 * step3['wall'] / max(landmark_crops, 1):.0f} ms per crop)")
    print(line("step 4 SSIM diffs", step4, len(every) - len(reals)) + f"  ({diffs} diff masks)")
    print(line("step 5 folds", step5, len(every)))
    print(f"floor, decode every frame, no conversion: reals {floor_all_reals:.1f} s, "
          f"all videos {floor_all_videos:.1f} s")
    print(f"floor, decode as the steps do + convert kept frames: step 1 {floor_kept_step1:.1f} s, "
          f"step 2 {floor_kept_step2:.1f} s")
    step1 = results[crops_stride]["wall"]
    print(f"step 1 (stride {crops_stride}) = {step1 / floor_all_reals:.2f}x the decode-only floor of the real videos; "
          f"step 2 = {step2['wall'] / floor_all_videos:.2f}x that of all videos")


if __name__ == "__main__":
    main()
