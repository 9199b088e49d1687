"""End-to-end speed of predict_folder's pipeline against the original's way of running the same models.

    python bench/predict.py ../shared/data/ffpp_c40 --encoder efficientnet_lite0 --size 224 --limit 12
    python bench/predict.py ../shared/data/ffpp_c40 --encoder tf_efficientnet_b7_ns --size 380 --limit 4 \\
        [--precision bf16] [--compile]
    python bench/predict.py TEST_DIR --device cuda --models-count 7 --encoder tf_efficientnet_b7_ns --size 380
    python bench/predict.py TEST_DIR --weights-dir weights --models final_111_... (real checkpoints)
    python bench/predict.py ../shared/data/ffpp_c40 --encoder tf_efficientnet_b7_ns --size 380 --limit 4 \\
        --engine torch openvino openvino:bf16
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
then all of them, timed from the second; prints the added share of time; no baseline. Otherwise prints seconds
per video of both, the ratio baseline / pipeline, each process's peak resident memory, the time per stage and
the largest score difference.
--engine ENGINE[:PRECISION] ...: one pipeline run per entry, in this order, each against the same baseline
(PRECISION defaults to --precision). openvino converts the models into a fresh cache (or --engine-cache) and
prints the conversion and compile time; random models are first saved as checkpoint files for it. For each run
the classifier's CPU seconds per crop (process CPU time during its calls) are printed next to its
GFLOP per crop.
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

from core.allocator import use_steady_allocator

use_steady_allocator(__name__)  # first: glibc reads its malloc settings only when a process starts

import kernel_utils as ku
from core import runtime
from core.allocator import OPT_OUT
from core.card import ModelCard
from core.checkpoints import load_classifier
from core.cli import HelpFormatter
from core.models import DeepFakeClassifier
from core.checkpoints import LoadedClassifier
from inference import engine
from inference.evidence import KEYFRAMES, EvidenceReport
from inference.pipeline import PredictionConfig, predict_videos, stage_seconds


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
    parser.add_argument("--engine", nargs="+", default=["torch"], metavar="ENGINE[:PRECISION]",
                        help=f"pipeline runs: {' or '.join(engine.ENGINES)}, optionally :fp32, :bf16 or :fp16")
    parser.add_argument("--engine-cache", type=Path, default=None,
                        help="openvino's cache of converted models (default: a fresh temporary folder, so that "
                             "the conversion is timed)")
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
    args = parser.parse_args(argv)
    for spec in args.engine:
        name, precision = engine_spec(spec, args.precision)
        refused = engine.refusal(name, args.device, precision)
        if refused:
            parser.error(f"--engine {spec}: {refused}")
    return args


def engine_spec(spec: str, precision: str) -> tuple[str, str]:
    """'openvino:bf16' -> ('openvino', 'bf16'); without ':PRECISION', --precision."""
    name, _, given = spec.partition(":")
    return name, given or precision


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


class CpuTimed:
    """A classifier that adds up the process CPU time of its calls: its own threads (PyTorch's or OpenVINO's)
    are all that run in the main process meanwhile, the decoding and detection being in worker processes."""

    def __init__(self, model):
        self.model, self.seconds = model, 0.0

    def __call__(self, x):
        started = time.process_time()
        result = self.model(x)
        self.seconds += time.process_time() - started
        return result


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


def checkpoint_files(args, models: list[torch.nn.Module], folder: Path) -> list[Path]:
    """The checkpoint of each model, for the engine's cache key: --models' files, or random models saved."""
    if args.models:
        return [args.weights_dir / name for name in args.models]
    paths = []
    for index, model in enumerate(models):
        paths.append(folder / f"random_{args.encoder}_{index}.pt")
        torch.save(model.state_dict(), paths[-1])
    return paths


def flops_per_crop(model: torch.nn.Module, size: int) -> float:
    """Floating-point operations of one forward pass on one crop (a multiply-add counts two)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.zeros(1, 3, size, size, dtype=next(model.parameters()).dtype))
    return float(counter.get_total_flops())


def engine_models(args, models: list[torch.nn.Module], name: str, precision: str, card: ModelCard,
                  scratch: Path) -> tuple[list, list[dict]]:
    """The pipeline's classifiers for one engine, and what each conversion cost."""
    conversions = []
    paths = checkpoint_files(args, models, scratch) if name == "openvino" else [Path()] * len(models)
    prepared = engine.prepare_models(name, models, paths, [card.to_dict()] * len(models), card.input_size,
                                     precision, args.engine_cache or scratch / "cache", args.compile,
                                     report=lambda c: conversions.append({"converted": c.converted,
                                                                          "convert": c.convert_seconds,
                                                                          "compile": c.compile_seconds}))
    return prepared, conversions


def run_mode(args, mode: str, videos: list[Path], engine_name: str = "torch", precision: str | None = None) -> dict:
    """Run one mode in this process; returns what the report needs (JSON-friendly)."""
    device = runtime.init(args.device).device
    pipeline = mode == "pipeline"
    precision = precision or args.precision
    dtype = runtime.pick_dtype(device, precision if pipeline else "auto")
    if pipeline:
        dtype = engine.model_dtype(engine_name, dtype)
    models = build_models(args, device, dtype)
    card = ModelCard(encoder=args.encoder, input_size=args.size, frames_per_video=args.frames_per_video)
    flops = flops_per_crop(models[0], args.size) if device.type == "cpu" else float("nan")
    conversions = []
    if pipeline:
        with tempfile.TemporaryDirectory() as scratch:
            models, conversions = engine_models(args, models, engine_name, precision, card, Path(scratch))
    common = dict(card=card, device=device, detector_device=device, dtype=dtype, batch_size=args.batch_size,
                  core_cascade_on_cpu=pipeline)
    if pipeline:
        config = PredictionConfig(**common, workers=args.workers, detect_in_workers=device.type == "cpu",
                                  frames_per_detector_call=args.detector_batch or (
                                      args.frames_per_video if device.type == "cuda" else 1))
    else:
        config = PredictionConfig(**common, workers=0, frames_per_detector_call=1)
    models = [CpuTimed(model) for model in models]
    _, first_seconds = timed_run(videos[:1], models, config)  # start-up: MTCNN, allocations, cuDNN, compiling
    before, warm_cpu = cpu_seconds(), sum(model.seconds for model in models)
    results, seconds = timed_run(videos, models, config)
    user, system = (after - start for after, start in zip(cpu_seconds(), before))
    extra = {}
    if args.report:  # the decoding workers' CPU time counts from the pass's start (including the untimed video)
        unwrapped = [model.model for model in models]  # Grad-CAM needs the module itself
        plain_seconds, plain_cpu = timed_pass(videos, unwrapped, config, args, with_report=False)
        report_seconds, report_cpu = timed_pass(videos, unwrapped, config, args, with_report=True)
        extra = {"plain_seconds": plain_seconds, "plain_cpu": plain_cpu, "report_seconds": report_seconds,
                 "report_cpu": report_cpu}
    label = f"{mode} {engine_name} {engine.openvino_precision(precision) if engine_name == 'openvino' else dtype}"
    return {**extra, "mode": mode, "label": label if pipeline else mode, "seconds": seconds, "user": user,
            "system": system, "classifier_cpu": (sum(model.seconds for model in models) - warm_cpu) / len(models),
            "flops_per_crop": flops, "conversions": conversions,
            "first_video_seconds": first_seconds, "videos": len(results),
            "crops": sum(len(r.crop_keys) for r in results), "stages": stage_seconds(results),
            "scores": {r.name: r.score for r in results},
            "crop_keys": {r.name: [list(key) for key in r.crop_keys] for r in results},  # as JSON gives them back
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "allocator": os.environ.get("GLIBC_TUNABLES", "glibc defaults"),
            "setup": f"{len(models)} x {args.encoder} at {args.size}px, {args.frames_per_video} frames, {device} "
                     f"{dtype}, torch threads {torch.get_num_threads()}, workers {config.workers}, "
                     f"detector frames/call {config.frames_per_detector_call}"
                     + (f", {engine_name} engine" if pipeline else "")
                     + (", channels-last" + (", compiled" if args.compile else "")
                        if pipeline and engine_name == "torch" else "")}


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
    crops = max(run["crops"], 1)
    classify = run["stages"].get("classify", 0.0)
    print(f"{run['label']}: classifier {classify / crops:.3f} s/crop wall, {run['classifier_cpu'] / crops:.3f} "
          f"CPU-s/crop/model (all its threads) for {run['flops_per_crop'] / 1e9:.2f} GFLOP/crop/model")
    for index, conversion in enumerate(run["conversions"]):
        print(f"          model {index}: {'converted' if conversion['converted'] else 'from the cache'} in "
              f"{conversion['convert']:.1f} s, compiled in {conversion['compile']:.1f} s")
    print(f"{run['mode']:9s} {run['videos']} videos, {run['crops']} crops in {run['seconds']:.1f} s = "
          f"{per_video:.2f} s/video, CPU {run['user'] / run['videos']:.1f} s user + "
          f"{run['system'] / run['videos']:.1f} s system per video; "
          f"first video (start-up{', compile' if 'compiled' in run['setup'] else ''}) "
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
        result = run_mode(args, args.mode, videos, *engine_spec(args.engine[0], args.precision))
        if args.results_json:
            args.results_json.write_text(json.dumps(result))
        else:
            report(result)
        return 0
    print(f"{len(videos)} videos under {args.test_dir}")
    runs = [run_mode(args, "pipeline", videos, *engine_spec(spec, args.precision)) for spec in args.engine]
    for run in runs:
        report(run)
        if args.report:
            added = run["report_seconds"] / run["plain_seconds"] - 1
            added_cpu = run["report_cpu"] / run["plain_cpu"] - 1
            print(f"{run['label']}: one pass each, first video untimed: without the report "
                  f"{run['plain_seconds']:.1f} s, with it {run['report_seconds']:.1f} s: {100 * added:+.1f}% wall "
                  f"time, {100 * added_cpu:+.1f}% CPU time (user + system)")
    if args.skip_baseline or args.report:
        return 0
    slow = baseline_in_own_process(argv)
    slow_per_video = report(slow)
    for fast in runs:
        compare(slow, slow_per_video, fast, fast["seconds"] / fast["videos"])
    return 0


def compare(slow: dict, slow_per_video: float, fast: dict, fast_per_video: float) -> None:
    print(f"{fast['label']}: ratio baseline / pipeline (end to end, per video): "
          f"{slow_per_video / fast_per_video:.2f}x; "
          f"in CPU seconds (user + system): {(slow['user'] + slow['system']) / (fast['user'] + fast['system']):.2f}x")
    names = [n for n in slow["scores"] if slow["scores"][n] is not None and fast["scores"].get(n) is not None]
    diffs = [abs(fast["scores"][n] - slow["scores"][n]) for n in names]
    one_mode = [n for n in slow["scores"] if (slow["scores"][n] is None) != (fast["scores"].get(n) is None)]
    crops_differ = [n for n in slow["scores"] if slow["crop_keys"][n] != fast["crop_keys"].get(n)]
    print(f"max |pipeline - baseline| score over {len(diffs)} scored videos: {max(diffs, default=0.0):.3g}; "
          f"videos with different face crops: {len(crops_differ)}; scored in one mode only: {len(one_mode)}")
    if diffs:
        print(f"mean baseline score {np.mean([slow['scores'][n] for n in names]):.4f}")


if __name__ == "__main__":
    sys.exit(main())
