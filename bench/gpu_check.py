"""One command that exercises the CUDA paths; prints one table and exits non-zero if any section failed.

    bash bench/gpu_check.sh             # one GPU machine; sized to finish in under 8 minutes on one H200
    bash bench/gpu_check.sh --dry-run   # the same code on the CPU at tiny sizes (run by tests/test_gpu_check.py)

Sections, each in its own process so that one crash cannot hide the others:
  train    the trainer under torchrun (one rank per GPU; 2 gloo ranks in the dry run) on synthetic crops: B7 at
           380 px, the config's mixed precision (bf16, or fp16 + GradScaler where bf16 is not native), SyncBN
           when there are several ranks, channels-last; images/s and the share of step time spent waiting for the
           DataLoader, from the trainer's metrics.csv
  predict  the seven-B7 ensemble at 380 px in fp16 on generated face videos (decoding workers, MTCNN on the
           GPU over all sampled frames of a video at once): videos/s and the summed decode / detect / classify time
  compile  the same ensemble with and without torch.compile: videos/s of each, compile time, largest score change
  mtcnn    MTCNN over 32 frames per call against one frame per call on the same frames: time and box agreement
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core.cli import HelpFormatter

REPO_ROOT = Path(__file__).resolve().parent.parent

SECTIONS = ("train", "predict", "compile", "mtcnn")
GOAL_VIDEOS_PER_S = 10.0  # seven B7 on one H200; the original was allowed 8 s per video on a Kaggle P100
DETECTOR_BATCH = 32


@dataclass(frozen=True)
class Sizes:
    device: str
    train_config: str
    train_overrides: tuple[str, ...]
    train_steps: int
    train_workers: int
    crop_size: int  # synthetic training crops (the trainer resizes them to the config's size)
    encoder: str
    input_size: int
    models: int
    videos: int  # scored per run: copies of `distinct_videos` generated ones
    distinct_videos: int
    video_size: tuple[int, int]  # (width, height)
    video_frames: int
    frames_per_video: int  # sampled per video for prediction (the original: 32)
    predict_workers: int
    compile_backend: str  # inductor on the GPU; the dry run traces with dynamo but skips inductor's C++ build
    section_timeout: int  # seconds


FULL = Sizes(device="cuda", train_config="configs/b7.json", train_overrides=(), train_steps=300, train_workers=8,
             crop_size=300, encoder="tf_efficientnet_b7_ns", input_size=380, models=7, videos=40, distinct_videos=8,
             video_size=(1920, 1080), video_frames=300, frames_per_video=32, predict_workers=8,
             compile_backend="inductor",
             section_timeout=420)
DRY = Sizes(device="cpu", train_config="configs/demo_cpu.json",
            train_overrides=("size=64", "optimizer.batch_size=2"), train_steps=3, train_workers=0, crop_size=64,
            encoder="efficientnet_lite0", input_size=64, models=2, videos=2, distinct_videos=2,
            video_size=(384, 288), video_frames=12, frames_per_video=4, predict_workers=1, compile_backend="eager",
            section_timeout=240)


@dataclass
class Row:
    section: str
    measure: str
    value: str
    note: str = ""


@dataclass
class Outcome:
    """What a section hands back: its rows, and an error when it failed part-way."""

    rows: list[Row] = field(default_factory=list)
    error: str | None = None


# ---------------------------------------------------------------- generated inputs

def write_face_video(job: tuple[Path, tuple[int, int], int, int]) -> Path:
    """H.264 video of the astronaut's face drifting over a gradient, the face about 0.18 of the frame height."""
    import av
    import cv2
    import numpy as np
    from skimage.data import astronaut

    path, (width, height), frames, seed = job
    rng = np.random.default_rng(seed)
    side = int(height * 0.6)
    face = cv2.resize(astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    top, bottom = rng.integers(40, 200, 3), rng.integers(40, 200, 3)
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    background = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (height, width, 3)).astype(np.uint8)
    x0, y0 = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for index in range(frames):
            drift = 0.05 * min(width, height)
            x = int(np.clip(x0 + drift * math.sin(index / 15), 0, width - side))
            y = int(np.clip(y0 + drift * math.cos(index / 20), 0, height - side))
            frame = background.copy()
            frame[y:y + side, x:x + side] = face
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_face_videos(folder: Path, sizes: Sizes) -> list[Path]:
    """`sizes.videos` files: the distinct generated videos, copied under new names up to the count."""
    from core.processes import run_parallel

    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(folder / f"face_{i:03d}.mp4", sizes.video_size, sizes.video_frames, i)
            for i in range(sizes.distinct_videos)]
    written = sorted(run_parallel(write_face_video, jobs, min(len(jobs), os.cpu_count() or 1), "face videos"))
    for index in range(len(written), sizes.videos):
        shutil.copyfile(written[index % len(written)], folder / f"face_{index:03d}.mp4")
    return sorted(folder.glob("*.mp4"))


# ---------------------------------------------------------------- sections (each in a child process)

def section_train(sizes: Sizes, work: Path, options: argparse.Namespace) -> Outcome:
    """The real trainer under torchrun on synthetic crops, one epoch of `train_steps` steps per rank."""
    from bench.train_throughput import write_synthetic_dataset
    from training.pipelines.run_log import read_metrics
    from training.tools.config import load_config

    config_path = options.train_config or sizes.train_config
    config = load_config(REPO_ROOT / config_path, list(sizes.train_overrides))
    ranks = ranks_for(sizes)
    # Every rank needs train_steps full batches of the balanced set (all reals, as many fakes) from 3 of 4 folds.
    reals_needed = sizes.train_steps * config["optimizer"]["batch_size"] * ranks // 2 + 1
    frames = 8
    data = work / "train_data"
    started = time.perf_counter()
    write_synthetic_dataset(data, videos=2 * math.ceil(reals_needed / frames / 0.75) + 8, frames=frames,
                            crop_size=sizes.crop_size)
    written = time.perf_counter() - started
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
               "training/pipelines/train_classifier.py",
               "--config", config_path, "--data-dir", str(data), "--no-pretrained", "--device", sizes.device,
               "--epochs", "1", "--batches-per-epoch", str(sizes.train_steps), "--workers", str(sizes.train_workers),
               "--output-dir", str(work / "train_weights"), "--logdir", str(work / "train_logs"),
               "--prefix", "gpu_check_"]
    for override in sizes.train_overrides:
        command += ["--override", override]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, env=child_env(sizes))
    seconds = time.perf_counter() - started
    (work / "trainer.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        return Outcome(error=f"trainer exited {result.returncode}: {tail(result.stdout + result.stderr)}")
    setup = next((line.split(": ", 2)[-1] for line in result.stdout.splitlines() if "process(es) on" in line), "?")
    metrics = read_metrics(next((work / "train_logs").glob("*/metrics.csv")))[-1]
    batch = config["optimizer"]["batch_size"]
    return Outcome([
        Row("train", "setup", setup.split(";")[0],
            f"{config['encoder']} at {config['size']} px, batch {batch} per rank"),
        Row("train", "images/s", f"{metrics['images_per_s']:.1f}",
            f"all {ranks} rank(s), steps 2..{sizes.train_steps} of one epoch"),
        Row("train", "data-loader wait", f"{100 * metrics['data_wait']:.1f}%",
            f"share of rank 0's step time, {sizes.train_workers} workers per rank"),
        Row("train", "train loss", f"{metrics['train_loss']:.4f}", "finite: the steps ran"
            if math.isfinite(metrics["train_loss"]) else "NOT FINITE"),
        Row("train", "wall time", f"{seconds:.0f} s", f"incl. start-up, validation, checkpoints; "
                                                      f"synthetic data written in {written:.0f} s"),
    ], None if math.isfinite(metrics["train_loss"]) else "training loss is not finite")


def ranks_for(sizes: Sizes) -> int:
    """One rank per GPU; two gloo ranks on the CPU (the dry run), so the DDP path runs there too."""
    if sizes.device == "cpu":
        return 2
    import torch

    return max(torch.cuda.device_count(), 1)


def prediction_setup(sizes: Sizes, work: Path):
    """(videos, models, PredictionConfig) as predict_folder runs them on this device: fp16 on CUDA, decoding
    workers, MTCNN in the main process over all sampled frames of a video at once."""
    import torch

    from bench.predict import build_models
    from core import runtime
    from core.card import ModelCard
    from inference.pipeline import PredictionConfig

    device = runtime.init(sizes.device).device
    dtype = runtime.pick_dtype(device, "auto")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    videos = sorted((work / "videos").glob("*.mp4"))
    models = build_models(argparse.Namespace(models=None, models_count=sizes.models, encoder=sizes.encoder),
                          device, dtype)
    card = ModelCard(encoder=sizes.encoder, input_size=sizes.input_size, frames_per_video=sizes.frames_per_video)
    config = PredictionConfig(card=card, device=device, detector_device=device, dtype=dtype, batch_size=64,
                              workers=sizes.predict_workers, detect_in_workers=False,
                              frames_per_detector_call=sizes.frames_per_video)
    return videos, models, config


def run_videos(videos, models, config):
    """(results by name, seconds, results) of one predict_videos pass (bench.predict's timing)."""
    from bench.predict import timed_run as timed_predict

    results, seconds = timed_predict(videos, models, config)
    return {r.name: r for r in results}, seconds, results


def timed_run(videos, models, config):
    """run_videos after one warm-up video (first calls, autotuning)."""
    run_videos(videos[:1], models, config)
    return run_videos(videos, models, config)


def scored(results) -> list:
    return [r for r in results if r.score is not None and math.isfinite(r.score)]


def section_predict(sizes: Sizes, work: Path, options: argparse.Namespace) -> Outcome:
    from inference.pipeline import stage_seconds

    videos, models, config = prediction_setup(sizes, work)
    _, seconds, results = timed_run(videos, models, config)
    speed = len(results) / seconds
    per_video = {stage: value / len(results) for stage, value in stage_seconds(results).items()}
    goal = ""
    if config.device.type == "cuda":
        goal = f"; goal >= {GOAL_VIDEOS_PER_S:g}: {'met' if speed >= GOAL_VIDEOS_PER_S else 'NOT met'}"
    good = scored(results)
    rows = [
        Row("predict", "ensemble", f"{len(models)} x {sizes.encoder}",
            f"{sizes.input_size} px, {config.dtype}, {config.device}, decoding workers: {config.workers}"),
        Row("predict", "videos/s", f"{speed:.2f}", f"{len(results)} videos {sizes.video_size[0]}x"
                                                   f"{sizes.video_size[1]}, {sizes.video_frames} frames{goal}"),
        Row("predict", "seconds per video", ", ".join(f"{k} {v:.3f}" for k, v in per_video.items()),
            "summed per stage (decode and resize run in the workers, overlapped)"),
        Row("predict", "scored videos", f"{len(good)} of {len(results)}", "faces found and finite scores"),
    ]
    return Outcome(rows, None if len(good) == len(results) else "some videos were not scored")


def section_compile(sizes: Sizes, work: Path, options: argparse.Namespace) -> Outcome:
    import torch

    videos, models, config = prediction_setup(sizes, work)
    eager_by_name, eager_seconds, _ = timed_run(videos, models, config)
    compiled = [torch.compile(model, backend=sizes.compile_backend) for model in models]
    started = time.perf_counter()
    run_videos(videos[:1], compiled, config)  # compiles
    compile_seconds = time.perf_counter() - started
    by_name, seconds, results = run_videos(videos, compiled, config)
    differences = [abs(by_name[name].score - eager_by_name[name].score) for name in by_name
                   if by_name[name].score is not None and eager_by_name[name].score is not None]
    largest = max(differences, default=math.nan)
    rows = [
        Row("compile", "videos/s off", f"{len(videos) / eager_seconds:.2f}", f"{len(models)} x {sizes.encoder}"),
        Row("compile", "videos/s on", f"{len(videos) / seconds:.2f}", f"torch.compile, {sizes.compile_backend}"),
        Row("compile", "compile + first video", f"{compile_seconds:.1f} s", "paid once per process"),
        Row("compile", "largest score change", f"{largest:.2g}", f"over {len(differences)} videos"),
    ]
    tolerance = 0.02 if config.dtype == torch.float16 else 1e-3
    error = None
    if len(differences) != len(videos):
        error = "compiled and eager runs did not score the same videos"
    elif not largest <= tolerance:
        error = f"compiled scores differ from eager ones by {largest:.3g} (> {tolerance:g})"
    return Outcome(rows, error)


def section_mtcnn(sizes: Sizes, work: Path, options: argparse.Namespace) -> Outcome:
    import numpy as np

    import kernel_utils as ku
    from core import faces, runtime
    from core.card import RELEASE_CARD
    from core.video import half_size

    device = runtime.init(sizes.device).device
    videos = sorted((work / "videos").glob("*.mp4"))[:sizes.distinct_videos]
    frames = [half_size(frame) for video in videos
              for frame in ku.read_sampled_frames(video, max(sizes.frames_per_video, DETECTOR_BATCH)).frames]
    mtcnn = faces.make_mtcnn(RELEASE_CARD.detector_thresholds, device)
    ku.detect_faces(mtcnn, frames[:2], 2)  # warm-up
    timings, boxes = {}, {}
    for per_call in (1, DETECTOR_BATCH):
        started = time.perf_counter()
        boxes[per_call] = ku.detect_faces(mtcnn, frames, per_call)
        timings[per_call] = time.perf_counter() - started
    ious, count_differs = [], 0
    for single, batched in zip(boxes[1], boxes[DETECTOR_BATCH]):
        single, batched = (np.zeros((0, 4)) if b is None else np.asarray(b)[:, :4] for b in (single, batched))
        if len(single) != len(batched):
            count_differs += 1
        ious += [box_iou(a, b) for a, b in zip(single, batched)]
    found = sum(b is not None for b in boxes[1])
    rows = [
        Row("mtcnn", "frames/s, 1 per call", f"{len(frames) / timings[1]:.1f}", f"{len(frames)} half-size frames"),
        Row("mtcnn", f"frames/s, {DETECTOR_BATCH} per call", f"{len(frames) / timings[DETECTOR_BATCH]:.1f}",
            f"{timings[1] / timings[DETECTOR_BATCH]:.2f}x"),
        Row("mtcnn", "box IoU min / median", f"{min(ious, default=math.nan):.4f} / "
                                             f"{float(np.median(ious)) if ious else math.nan:.4f}",
            f"{len(ious)} boxes paired by rank (largest first)"),
        Row("mtcnn", "frames with another face count", str(count_differs), f"faces found in {found} of {len(frames)}"),
    ]
    error = None
    if not ious:
        error = "no face found in the generated frames"
    elif min(ious) < 0.5:
        error = f"batched and single-frame boxes disagree (IoU {min(ious):.3f})"
    return Outcome(rows, error)


def box_iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


RUNNERS = {"train": section_train, "predict": section_predict, "compile": section_compile, "mtcnn": section_mtcnn}


# ---------------------------------------------------------------- the driver

def child_env(sizes: Sizes) -> dict:
    env = dict(os.environ)
    if sizes.device == "cpu":
        env.setdefault("OMP_NUM_THREADS", "1")
    return env


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_section(name: str, sizes: Sizes, work: Path, options: argparse.Namespace) -> Outcome:
    """The section in a child process; its failure (exit, timeout, missing result) becomes the Outcome's error."""
    result_path = work / f"{name}.json"
    command = [sys.executable, "-m", "bench.gpu_check", "--section", name, "--work-dir", str(work)]
    command += ["--dry-run"] if options.dry_run else []
    command += ["--train-config", options.train_config] if options.train_config else []
    started = time.perf_counter()
    print(f"[gpu_check] {name} ...", file=sys.stderr, flush=True)
    try:
        result = subprocess.run(command, cwd=REPO_ROOT, env=child_env(sizes), capture_output=True, text=True,
                                timeout=sizes.section_timeout)
    except subprocess.TimeoutExpired as err:
        output = (err.stdout or b"").decode(errors="replace") + (err.stderr or b"").decode(errors="replace")
        (work / f"{name}.log").write_text(output)
        return Outcome(error=f"timed out after {sizes.section_timeout} s: {tail(output, 5)}")
    (work / f"{name}.log").write_text(result.stdout + result.stderr)
    print(f"[gpu_check] {name}: exit {result.returncode} after {time.perf_counter() - started:.0f} s",
          file=sys.stderr, flush=True)
    if not result_path.is_file():
        return Outcome(error=f"exit {result.returncode}: {tail(result.stdout + result.stderr)}")
    saved = json.loads(result_path.read_text())
    return Outcome([Row(**row) for row in saved["rows"]], saved["error"])


def section_main(name: str, sizes: Sizes, work: Path, options: argparse.Namespace) -> int:
    """In the child: run the section and save its rows (and its error) for the driver."""
    try:
        outcome = RUNNERS[name](sizes, work, options)
    except Exception as err:  # noqa: BLE001 - any failure is the finding: save it, show the traceback
        import traceback

        traceback.print_exc()
        outcome = Outcome(error=f"{type(err).__name__}: {err}")
    (work / f"{name}.json").write_text(json.dumps({"rows": [asdict(r) for r in outcome.rows],
                                                   "error": outcome.error}))
    return 0 if outcome.error is None else 1


def print_table(rows: list[Row]) -> None:
    header = Row("section", "measure", "value", "note")
    widths = [max(len(getattr(r, key)) for r in (header, *rows)) for key in ("section", "measure", "value")]
    for row in (header, Row(*("-" * w for w in widths), "----"), *rows):
        print(f"| {row.section:<{widths[0]}} | {row.measure:<{widths[1]}} | {row.value:<{widths[2]}} | {row.note} |")


def describe_machine(sizes: Sizes) -> Row:
    import torch

    if sizes.device == "cuda" and torch.cuda.is_available():
        names = {torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())}
        what = f"{torch.cuda.device_count()} x {', '.join(sorted(names))}"
    else:
        what = "CPU (dry run)" if sizes.device == "cpu" else "no CUDA device"
    return Row("machine", "device", what, f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
                                          f"{os.cpu_count()} CPU cores")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--dry-run", action="store_true",
                        help="the same sections on the CPU at tiny sizes (efficientnet_lite0, 64 px, 2 videos)")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="sections to run")
    parser.add_argument("--train-config", default=None,
                        help="trainer config for the train section (default: configs/b7.json; the dry run "
                             "configs/demo_cpu.json)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep inputs, logs and checkpoints here (default: a temporary folder, removed)")
    parser.add_argument("--section", choices=SECTIONS, default=None, help=argparse.SUPPRESS)  # child processes
    return parser.parse_args(argv)


def main(argv=None) -> int:
    options = parse_args(argv)
    sizes = DRY if options.dry_run else FULL
    if options.section:
        return section_main(options.section, sizes, options.work_dir, options)
    if not options.dry_run:
        import torch

        if not torch.cuda.is_available():
            print("error: no CUDA device; run with --dry-run for the CPU check", file=sys.stderr)
            return 2
    work = options.work_dir or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rows, failures = [describe_machine(sizes)], []
    if {"predict", "compile", "mtcnn"} & set(options.sections):
        began = time.perf_counter()
        videos = write_face_videos(work / "videos", sizes)
        rows.append(Row("inputs", "face videos", str(len(videos)),
                        f"{sizes.distinct_videos} generated, {sizes.video_size[0]}x{sizes.video_size[1]}, "
                        f"{sizes.video_frames} frames, in {time.perf_counter() - began:.0f} s"))
    for name in options.sections:
        outcome = run_section(name, sizes, work, options)
        rows += outcome.rows
        if outcome.error is not None:
            failures.append(name)
            rows.append(Row(name, "FAILED", outcome.error.splitlines()[0][:120],
                            f"log: {work / (name + '.log')}" if options.work_dir else ""))
            print(f"[gpu_check] {name} FAILED:\n{outcome.error}", file=sys.stderr)
    rows.append(Row("total", "wall time", f"{time.perf_counter() - started:.0f} s",
                    "FAILED: " + ", ".join(failures) if failures else "all sections passed"))
    print_table(rows)
    if options.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
