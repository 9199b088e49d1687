"""Throughput of predict_folder's pipeline against the original's way of running the same models.

    python bench/predict.py ../shared/data/ffpp_c40 --encoder efficientnet_lite0 --size 224 --limit 12
    python bench/predict.py TEST_DIR --device cuda --models-count 7 --encoder tf_efficientnet_b7_ns --size 380
    python bench/predict.py TEST_DIR --weights-dir weights --models final_111_... (real checkpoints)

TEST_DIR is searched recursively for *.mp4. Without --models, --models-count randomly initialised
DeepFakeClassifier(--encoder) are used (seeded; the same models in both modes).
baseline: one video at a time in the main process, one MTCNN call per frame, no overlap (the original).
pipeline: predict_folder's DataLoader workers (decoding, and detection when it runs on the CPU) overlapped with
the classifier; on CUDA, MTCNN takes all frames of a video in one call (--detector-batch).
Prints videos/s of both, the time per stage and the largest difference between their predictions.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.allocator import use_steady_allocator  # noqa: E402

use_steady_allocator(__name__)  # first: glibc reads its malloc settings only when a process starts

import kernel_utils as ku  # noqa: E402
from core import runtime  # noqa: E402
from core.card import ModelCard  # noqa: E402
from core.checkpoints import load_classifier  # noqa: E402
from core.cli import HelpFormatter  # noqa: E402
from core.models import DeepFakeClassifier  # noqa: E402
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
    parser.add_argument("--precision", choices=["auto", *runtime.PRECISIONS], default="auto")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--detector-batch", type=int, default=None,
                        help="pipeline's frames per MTCNN call (default: all on CUDA, 1 on CPU)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--limit", type=int, default=None, help="first N videos (sorted by path)")
    parser.add_argument("--skip-baseline", action="store_true")
    return parser.parse_args(argv)


def build_models(args, device: torch.device, dtype: torch.dtype) -> list[torch.nn.Module]:
    if args.models:
        return [load_classifier(args.weights_dir / name, device, dtype, overrides={"encoder": args.encoder}).model
                for name in args.models]
    models = []
    for seed in range(args.models_count):
        torch.manual_seed(seed)
        model = DeepFakeClassifier(args.encoder, pretrained=False).eval().to(device=device, dtype=dtype)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        models.append(model)
    return models


def run(videos, models, config: PredictionConfig) -> tuple[dict, float, list]:
    if config.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    results = list(predict_videos(videos, models, config, progress=False))
    if config.device.type == "cuda":
        torch.cuda.synchronize()
    return {r.name: r for r in results}, time.perf_counter() - started, results


def report(label: str, seconds: float, results: list) -> float:
    speed = len(results) / seconds
    stages = stage_seconds(results)
    split = ", ".join(f"{k} {v:.1f}s" for k, v in stages.items())
    crops = sum(len(r.crop_keys) for r in results)
    print(f"{label:9s} {len(results)} videos, {crops} crops in {seconds:.1f} s = {speed:.3f} videos/s "
          f"| summed stage time: {split}")
    return speed


def main(argv=None) -> int:
    args = parse_args(argv)
    device = runtime.init(args.device).device
    dtype = runtime.pick_dtype(device, args.precision)
    videos = sorted(args.test_dir.rglob("*.mp4"))[:args.limit]
    if not videos:
        raise SystemExit(f"error: no *.mp4 under {args.test_dir}")
    models = build_models(args, device, dtype)
    card = ModelCard(encoder=args.encoder, input_size=args.size, frames_per_video=args.frames_per_video)
    common = dict(card=card, device=device, detector_device=device, dtype=dtype, batch_size=args.batch_size)
    pipeline = PredictionConfig(**common, workers=args.workers, detect_in_workers=device.type == "cpu",
                                frames_per_detector_call=args.detector_batch or (
                                    args.frames_per_video if device.type == "cuda" else 1))
    baseline = PredictionConfig(**common, workers=0, frames_per_detector_call=1)
    print(f"{len(videos)} videos, {len(models)} x {args.encoder} at {args.size}px, {args.frames_per_video} frames, "
          f"{device} {dtype}, torch threads {torch.get_num_threads()}, pipeline workers {args.workers}, "
          f"detector frames/call {pipeline.frames_per_detector_call}")
    run(videos[:1], models, baseline)  # warm-up: MTCNN, cuDNN autotuning, first allocations

    fast, fast_seconds, fast_results = run(videos, models, pipeline)
    fast_speed = report("pipeline", fast_seconds, fast_results)
    if args.skip_baseline:
        return 0
    slow, slow_seconds, slow_results = run(videos, models, baseline)
    slow_speed = report("baseline", slow_seconds, slow_results)
    print(f"speed-up {fast_speed / slow_speed:.2f}x")
    diffs = [abs(fast[n].score - slow[n].score) for n in slow if slow[n].score is not None and fast[n].score is not None]
    unscored_differ = [n for n in slow if (slow[n].score is None) != (fast[n].score is None)]
    crops_differ = [n for n in slow if slow[n].crop_keys != fast[n].crop_keys]
    print(f"max |pipeline - baseline| over {len(diffs)} scored videos: {max(diffs, default=0.0):.3g}; "
          f"videos with different face crops: {len(crops_differ)}; scored in one mode only: {len(unscored_differ)}")
    if diffs:
        print(f"mean score {np.mean([slow[n].score for n in slow if slow[n].score is not None]):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
