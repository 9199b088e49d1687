"""End-to-end speed of predict_folder's pipeline against the original's way of running the same models.

    python bench/predict.py ../shared/data/ffpp_c40 --encoder efficientnet_lite0 --size 224 --limit 12
    python bench/predict.py ../shared/data/ffpp_c40 --encoder tf_efficientnet_b7_ns --size 380 --limit 4 \\
        [--precision bf16] [--compile]
    python bench/predict.py TEST_DIR --device cuda --models-count 7 --encoder tf_efficientnet_b7_ns --size 380
    python bench/predict.py TEST_DIR --weights-dir weights --models final_111_... (real checkpoints)
    python bench/predict.py ../shared/data/ffpp_c40 --encoder tf_efficientnet_b7_ns --size 380 --limit 3 --report

TEST_DIR is searched recursively for *.mp4. Without --models, --models-count randomly initialised
DeepFakeClassifier(--encoder) are used (seeded; the same models in both modes).
baseline (the original's way), in a separate process with glibc's default malloc: one video at a time, one MTCNN
call per frame with facenet-pytorch's own detector code, no overlap, the default tensor layout, fp16 on CUDA and
fp32 on the CPU whatever --precision says.
pipeline: predict_folder's way in this process (allocator setting, channels-last, --precision, --compile),
DataLoader workers (decoding, and detection on the CPU) overlapped with the classifier; on CUDA MTCNN takes all
frames of a video in one call (--detector-batch).
Each mode first runs one video untimed (MTCNN and model start-up; with --compile this is where it compiles, and
its time is printed). --report: also one pass without and one pass with predict_folder's --report pages (keyframes,
timeline, Grad-CAM maps of the top crops, the index) written into a temporary folder, each over the first video
then all of them, timed from the second; prints the added share of time; no baseline. Otherwise prints seconds per video of both, the ratio baseline / pipeline, each process's peak
resident memory, the time per stage and the largest score difference.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.allocator import use_steady_allocator  # noqa: E402

use_steady_allocator(__name__)  # first: glibc reads its malloc settings only when a process starts

import kernel_utils as ku  # noqa: E402
from core import faces, runtime  # noqa: E402
from core.allocator import OPT_OUT  # noqa: E402
from core.card import ModelCard  # noqa: E402
from core.checkpoints import load_classifier  # noqa: E402
from core.cli import HelpFormatter  # noqa: E402
from core.models import DeepFakeClassifier  # noqa: E402
from core.checkpoints import LoadedClassifier  # noqa: E402
from inference.evidence import KEYFRAMES, EvidenceReport  # noqa: E402
from inference.pipeline import PredictionConfig, predict_videos, stage_seconds  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("test_dir", type=Path)
    parser.add_argument("--weights-dir", type=Path, default=Path("weights"))
    parser.add_argument("--models", nargs="*", default=None, help="checkpoint names in --weights-dir")
    parser.add_argument("--models-count", type=int, default=1, help="random models when --models is not given")
    parser.add_argument("--encoder", default="efficientnet_lite0")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--frames-per-video", type=int, default=ku.FRAMES_PER_VIDEO)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["auto", *runtime.PRECISIONS], default="auto",
                        help="the pipeline's precision (the baseline keeps the original's)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the pipeline's models")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--detector-batch", type=int, default=None,
                        help="pipeline's frames per MTCNN call (default: all on CUDA, 1 on CPU)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--limit", type=int, default=None, help="first N videos (sorted by path)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--report", action="store_true",
                        help="measure what predict_folder --report adds to the pipeline (no baseline)")
    parser.add_argument("--mode", choices=["both", "pipeline", "baseline"], default="both", help=argparse.SUPPRESS)
    parser.add_argument("--results-json", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def build_models(args, device: torch.device, dtype: torch.dtype) -> list[torch.nn.Module]:
    """The models in the default layout, as the original ran them."""
    if args.models:
        return [load_classifier(args.weights_dir / name, device, dtype, overrides={"encoder": args.encoder}).model
                for name in args.models]
    models = []
    for seed in range(args.models_count):
        torch.manual_seed(seed)
        models.append(DeepFakeClassifier(args.encoder, pretrained=False).eval().to(device=device, dtype=dtype))
    return models


def timed_run(videos, models, config: PredictionConfig) -> tuple[list, float]:
    if config.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    results = list(predict_videos(videos, models, config, progress=False))
    if config.device.type == "cuda":
        torch.cuda.synchronize()
    return results, time.perf_counter() - started


def timed_pass(videos, models, config: PredictionConfig, args, with_report: bool) -> tuple[float, float]:
    """(wall, CPU seconds) of one pass over [videos[0], *videos] whose first video is untimed (start-up), with or
    without writing the evidence report's pages and index into a temporary folder as predict_folder --report does.
    Both ways have the same shape, so the workers' prefetching is the same; one pass, because a second pass would
    fork its decoding workers after Grad-CAM ran in this process, which hangs them."""
    names = args.models or [f"random_{args.encoder}_{seed}" for seed in range(len(models))]
    loaded = [LoadedClassifier(Path(name), model, config.card, config.card, []) for name, model in zip(names, models)]
    with tempfile.TemporaryDirectory() as folder:
        report = EvidenceReport(Path(folder), {"bench": True}, loaded, None) if with_report else None
        results, started, before = [], None, None
        config = dataclasses.replace(config, keyframes=KEYFRAMES if with_report else 0)
        for result in predict_videos([videos[0], *videos], models, config, keep_images=with_report, progress=False):
            if report is not None:
                report.add(result)
            result.crop_images = result.keyframes = None
            if started is None:
                started, before = time.perf_counter(), cpu_seconds()
                continue
            results.append(result)
        if report is not None:
            report.write_index(results)
        seconds = time.perf_counter() - started
    return seconds, sum(cpu_seconds()) - sum(before)


def cpu_seconds() -> tuple[float, float]:
    """(user, system) CPU seconds of this process and its finished workers: on a shared machine they vary far
    less than wall time, and system time is what the allocator setting removes."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + workers.ru_utime, own.ru_stime + workers.ru_stime


def run_mode(args, mode: str, videos: list[Path]) -> dict:
    """Run one mode in this process; returns what the report needs (JSON-friendly)."""
    device = runtime.init(args.device).device
    pipeline = mode == "pipeline"
    faces.CORE_MTCNN_ON_CPU = pipeline
    dtype = runtime.pick_dtype(device, args.precision if pipeline else "auto")
    models = build_models(args, device, dtype)
    if pipeline:
        models = [ku.inference_model(model, args.compile) for model in models]
    card = ModelCard(encoder=args.encoder, input_size=args.size, frames_per_video=args.frames_per_video)
    common = dict(card=card, device=device, detector_device=device, dtype=dtype, batch_size=args.batch_size)
    if pipeline:
        config = PredictionConfig(**common, workers=args.workers, detect_in_workers=device.type == "cpu",
                                  frames_per_detector_call=args.detector_batch or (
                                      args.frames_per_video if device.type == "cuda" else 1))
    else:
        config = PredictionConfig(**common, workers=0, frames_per_detector_call=1)
    _, first_seconds = timed_run(videos[:1], models, config)  # start-up: MTCNN, allocations, cuDNN, compiling
    before = cpu_seconds()
    results, seconds = timed_run(videos, models, config)
    user, system = (after - start for after, start in zip(cpu_seconds(), before))
    extra = {}
    if args.report:  # the decoding workers' CPU time counts from the pass's start (including the untimed video)
        plain_seconds, plain_cpu = timed_pass(videos, models, config, args, with_report=False)
        report_seconds, report_cpu = timed_pass(videos, models, config, args, with_report=True)
        extra = {"plain_seconds": plain_seconds, "plain_cpu": plain_cpu, "report_seconds": report_seconds,
                 "report_cpu": report_cpu}
    return {**extra, "mode": mode, "seconds": seconds, "user": user, "system": system, "first_video_seconds": first_seconds, "videos": len(results),
            "crops": sum(len(r.crop_keys) for r in results), "stages": stage_seconds(results),
            "scores": {r.name: r.score for r in results},
            "crop_keys": {r.name: [list(key) for key in r.crop_keys] for r in results},  # as JSON gives them back
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "allocator": os.environ.get("GLIBC_TUNABLES", "glibc defaults"),
            "setup": f"{len(models)} x {args.encoder} at {args.size}px, {args.frames_per_video} frames, {device} "
                     f"{dtype}, torch threads {torch.get_num_threads()}, workers {config.workers}, "
                     f"detector frames/call {config.frames_per_detector_call}"
                     + (", channels-last" + (", compiled" if args.compile else "") if pipeline else "")}


def baseline_in_own_process(argv: list[str]) -> dict:
    """The baseline in a fresh interpreter with glibc's default malloc, as the original ran."""
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    env[OPT_OUT] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "baseline.json"
        subprocess.run([sys.executable, str(Path(__file__).resolve()), *argv, "--mode", "baseline",
                        "--results-json", str(out)], env=env, check=True)
        return json.loads(out.read_text())


def report(run: dict) -> float:
    per_video = run["seconds"] / run["videos"]
    split = ", ".join(f"{k} {v:.1f}s" for k, v in run["stages"].items())
    print(f"{run['mode']:9s} {run['videos']} videos, {run['crops']} crops in {run['seconds']:.1f} s = "
          f"{per_video:.2f} s/video, CPU {run['user'] / run['videos']:.1f} s user + "
          f"{run['system'] / run['videos']:.1f} s system per video; first video (start-up{', compile' if 'compiled' in run['setup'] else ''}) "
          f"{run['first_video_seconds']:.1f} s; peak RSS {run['peak_rss_mib']:.0f} MiB\n"
          f"          {run['setup']}; malloc: {run['allocator']}\n          summed stage time: {split}")
    return per_video


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    videos = sorted(args.test_dir.rglob("*.mp4"))[:args.limit]
    if not videos:
        raise SystemExit(f"error: no *.mp4 under {args.test_dir}")
    if args.mode != "both":
        result = run_mode(args, args.mode, videos)
        if args.results_json:
            args.results_json.write_text(json.dumps(result))
        else:
            report(result)
        return 0
    print(f"{len(videos)} videos under {args.test_dir}")
    fast = run_mode(args, "pipeline", videos)
    fast_per_video = report(fast)
    if args.report:
        added = fast["report_seconds"] / fast["plain_seconds"] - 1
        added_cpu = fast["report_cpu"] / fast["plain_cpu"] - 1
        print(f"one pass each, first video untimed: without the report {fast['plain_seconds']:.1f} s, with it "
              f"{fast['report_seconds']:.1f} s: {100 * added:+.1f}% wall time, {100 * added_cpu:+.1f}% CPU time "
              f"(user + system)")
    if args.skip_baseline or args.report:
        return 0
    slow = baseline_in_own_process(argv)
    slow_per_video = report(slow)
    print(f"ratio baseline / pipeline (end to end, per video): {slow_per_video / fast_per_video:.2f}x; "
          f"in CPU seconds (user + system): {(slow['user'] + slow['system']) / (fast['user'] + fast['system']):.2f}x")
    names = [n for n in slow["scores"] if slow["scores"][n] is not None and fast["scores"].get(n) is not None]
    diffs = [abs(fast["scores"][n] - slow["scores"][n]) for n in names]
    one_mode = [n for n in slow["scores"] if (slow["scores"][n] is None) != (fast["scores"].get(n) is None)]
    crops_differ = [n for n in slow["scores"] if slow["crop_keys"][n] != fast["crop_keys"].get(n)]
    print(f"max |pipeline - baseline| score over {len(diffs)} scored videos: {max(diffs, default=0.0):.3g}; "
          f"videos with different face crops: {len(crops_differ)}; scored in one mode only: {len(one_mode)}")
    if diffs:
        print(f"mean baseline score {np.mean([slow['scores'][n] for n in names]):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
