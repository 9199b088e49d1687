"""Score every video in a folder with an ensemble of DeepFakeClassifier checkpoints; write a Kaggle submission CSV.

    python predict_folder.py --weights-dir weights --models final_111_... final_555_... \\
        --test-dir /data/test_videos --output submission.csv

Videos: every file directly in --test-dir whose extension is a video container (.mp4 .avi .mov .mkv .webm .m4v
.mpg .mpeg .wmv .flv, in any case); other files are named and skipped. A folder without videos is an error.
Rows are named by file name. Or --dataset ROOT: every video of a FaceForensics++, Celeb-DF v2 or DFDC root (layout
detected, optional --split and --compression, see core/datasets.py), rows named by the collection's unique id (the
path relative to ROOT for FF++ and Celeb-DF, whose folders share file names; the file name for DFDC), as
evaluate.py --dataset ROOT expects them.

Calibration: --calibration FILE (written by evaluate.py --fit-calibration) maps every scored video's P(fake) to
sigmoid(logit(p) / T + b); a video that could not be scored keeps 0.5, and the crop scores in OUTPUT.crops.csv stay
the model's raw ones (the fit is of video scores). A file fitted for other checkpoints is refused. When it was fitted
for the single checkpoint of the run, that checkpoint's card (as used) carries it. Without --calibration, a single
checkpoint whose stored card carries a calibration is calibrated by it. The progress file holds raw scores, so
changing --calibration rescores nothing.

Model card: each checkpoint carries the settings it was trained for (encoder, input size, mean/std, frames per
video, detector thresholds, crop rule, aggregation); the winner's 2020 files get the original's card (B7, 380 px,
32 frames). --encoder, --size, --frames-per-video and --aggregation override the card only when given, and the run
says so.
Checkpoints whose cards disagree on the input pipeline are refused.

Files written:
    OUTPUT                     filename,label     every video, sorted; P(fake), 0.5 for a video that could not be scored
    OUTPUT.errors.csv          filename,reason    each unscored video: "unreadable: ..." or "no face: ..."
    OUTPUT.crops.csv           filename,frame,face,track,score,thumbnail   every face crop's ensemble-mean score and
                               the person (face track) it belongs to
    OUTPUT.people.csv          filename,track,frames,first_frame,last_frame,x1,y1,x2,y2,score,decided   one row per
                               person: sampled frames seen, median box, confident score of its crops (raw, never
                               calibrated), decided 1 for the track that set the video score under per_person
    OUTPUT.progress.jsonl      one line per finished video: a rerun with the same settings resumes from it
    OUTPUT.calibration.json    only when the scores were calibrated: temperature, bias and where they came from
    --save-crops DIR           DIR/<video>/<frame>_<face>.jpg, 128 px thumbnails of what the model saw
    --report DIR               DIR/index.html and DIR/videos/<video>.html: an HTML evidence report (docs/report.md);
                               OUTPUT.report.json beside the predictions says where it is

Several GPUs or machines: `torchrun --nproc-per-node N predict_folder.py ...`; each rank scores the sorted
names [rank::world] into OUTPUT.progress.rank<R>.jsonl and rank 0 writes the merged files.
"""
from __future__ import annotations

from core.allocator import use_steady_allocator

use_steady_allocator(__name__)  # first: glibc reads its malloc settings only when a process starts

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import kernel_utils as ku
from core import runtime
from core.card import AGGREGATIONS, CardError, check_same_pipeline
from core.checkpoints import CheckpointError, LoadedClassifier, load_classifier
from core.cli import HelpFormatter
from core.datasets import load_collection
from core.layout import list_videos, part_dirs
from inference import engine, evidence, resume
from inference.calibration import (Calibration, CalibrationError, check_checkpoints, read_calibration,
                                   record_applied)
from inference.outputs import print_summary, save_thumbnails, write_outputs
from inference.pipeline import PredictionConfig, predict_videos


COMPILE_HELP = ("torch.compile the classifiers (needs g++). Each model compiles on its first videos, twice (the first "
                "batch size, then once for any other). Scores change by <1e-6. Whether it pays off depends on the "
                "machine and the number of videos: see docs/benchmarks.md")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--weights-dir", type=Path, default=Path("weights"))
    parser.add_argument("--models", nargs="+", required=True, help="checkpoint file names inside --weights-dir")
    videos = parser.add_mutually_exclusive_group(required=True)
    videos.add_argument("--test-dir", type=Path, help="folder with the videos to score (rows: file names)")
    videos.add_argument("--dataset", type=Path, help="FF++, Celeb-DF v2 or DFDC root (rows: the collection's ids)")
    parser.add_argument("--split", default=None,
                        help="with --dataset: FF++ split file (test.json); Celeb-DF test, train or a list file")
    parser.add_argument("--compression", default=None, help="with --dataset: FF++ compression folder (c23, c40, raw)")
    parser.add_argument("--calibration", type=Path, default=None,
                        help="calibration file from evaluate.py --fit-calibration, applied to every video score")
    parser.add_argument("--output", type=Path, default=Path("submission.csv"))
    parser.add_argument("--encoder", default=None, help="override the card's timm encoder (default: from the card)")
    parser.add_argument("--frames-per-video", type=int, default=None, help="override the card's frames per video")
    parser.add_argument("--size", type=int, default=None, help="override the card's model input side in pixels")
    parser.add_argument("--aggregation", choices=AGGREGATIONS, default=None,
                        help="override the card's per-video aggregation: confident (the winner's, over all faces), "
                             "mean, or per_person (confident per face track, the highest track decides; "
                             "docs/people.md)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (classifier)")
    parser.add_argument("--detector-device", default=None,
                        help="MTCNN device (default: --device). On cpu the detector runs inside the decoding workers")
    parser.add_argument("--precision", choices=["auto", *runtime.PRECISIONS], default="auto",
                        help="auto: fp16 on CUDA (as the original), fp32 on the CPU (the original's scores to 1e-4). "
                             "bf16 on the CPU: bf16 weights and activations, faster where the CPU has AVX512-BF16 "
                             "or AMX, scores within 0.03 of fp32 (bench/predict.py measures both)")
    parser.add_argument("--compile", action="store_true", help=COMPILE_HELP)
    parser.add_argument("--engine", choices=engine.ENGINES, default="torch",
                        help="the classifier's engine. torch: PyTorch, the original's scores. openvino: CPU only; "
                             "each checkpoint is converted once (seconds to a minute) and cached in --engine-cache; "
                             "faster on the CPU, scores within 1e-4 of torch in fp32 (docs/engine.md)")
    parser.add_argument("--engine-cache", type=Path, default=None,
                        help=f"with --engine openvino: folder of the converted models (default: "
                             f"{engine.default_cache_dir()})")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="face crops per classifier call (--engine openvino splits each into calls of "
                             f"{engine.OPENVINO_CROPS_PER_CALL} crops: docs/engine.md)")
    parser.add_argument("--detector-batch", type=int, default=None,
                        help="frames per MTCNN call (default: all frames of a video on CUDA; 1 on CPU, where "
                             "batching is not faster and 1 reproduces the original exactly)")
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8),
                        help="decoding (and CPU detection) worker processes; 0 = in the main process")
    parser.add_argument("--save-crops", type=Path, default=None,
                        help="save a thumbnail of every face crop here (<video>/<frame>_<face>.jpg) for evaluate.py")
    parser.add_argument("--report", type=Path, default=None, metavar="DIR",
                        help="write a static HTML evidence report here: per video a timeline, keyframes with each "
                             "person's box, the most suspicious crops with Grad-CAM maps (docs/report.md)")
    parser.add_argument("--trusted-checkpoints", action="store_true",
                        help="load checkpoints with torch.load(weights_only=False): only for files you trust")
    parser.add_argument("--restart", action="store_true",
                        help="discard the progress of an earlier run (OUTPUT.progress*.jsonl) and score every video")
    args = parser.parse_args(argv)
    if args.compile and args.engine != "torch":
        parser.error("--compile applies to --engine torch only")
    refused = engine.refusal(args.engine, args.device, args.precision)
    if refused:
        parser.error(refused)
    if args.compile and ku.compile_unavailable():
        parser.error(f"--compile: {ku.compile_unavailable()}; or run without --compile")
    if args.test_dir is not None and not args.test_dir.is_dir():
        parser.error(f"--test-dir {args.test_dir} is not a folder")
    if args.dataset is None and (args.split or args.compression):
        parser.error("--split and --compression need --dataset")
    if args.calibration is not None and not args.calibration.is_file():
        parser.error(f"--calibration {args.calibration}: file not found")
    if args.report is not None and evidence.refusal(args.report):
        parser.error(evidence.refusal(args.report))
    return args


def find_videos(test_dir: Path) -> list[Path]:
    """The videos to score; names every skipped file; SystemExit when there is no video at all."""
    videos, others = list_videos(test_dir)
    for path in others:
        why = "a folder" if path.is_dir() else f"not a video container ({path.suffix or 'no extension'})"
        print(f"[predict] skipped {path.name}: {why}", file=sys.stderr)
    if not videos:
        hint = ""
        parts = part_dirs(test_dir)
        if parts:
            hint = (f"; it holds {len(parts)} dfdc_train_part_N folders: did you mean one of them, e.g. "
                    f"--test-dir {parts[0][1]}?")
        raise SystemExit(f"error: no video file in {test_dir} (looked for "
                         f"{', '.join(sorted({'.mp4', '.avi', '.mov', '.mkv', '.webm'}))} and more, any case){hint}")
    return videos


def videos_to_score(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """(video file, row name) for each video: file names in a plain folder, the collection's ids in a dataset."""
    if args.test_dir is not None:
        return [(path, path.name) for path in find_videos(args.test_dir)]
    try:
        collection = load_collection(args.dataset, args.split, args.compression)
    except ValueError as err:  # DatasetError, or a malformed metadata.json named by core.layout
        raise SystemExit(f"error: {err}") from None
    print(f"[predict] {args.dataset}: {collection.layout} layout, {len(collection.videos)} videos", file=sys.stderr)
    return [(video.path, video.id) for video in collection.videos]


def read_checked_calibration(args: argparse.Namespace) -> tuple[Calibration, list[dict] | None, str | None] | None:
    """(the --calibration fit, the checkpoints it names, a note), refused (CalibrationError) when it was fitted for
    other checkpoints than --models; checked before any model is loaded."""
    if args.calibration is None:
        return None
    calibration, fitted_for = read_calibration(args.calibration)
    paths = [args.weights_dir / name for name in args.models]
    if not all(path.is_file() for path in paths):  # loading the models names the missing file
        return calibration, fitted_for, None
    used = [resume.checkpoint_identity(path) for path in paths]
    return calibration, fitted_for, check_checkpoints(args.calibration, fitted_for, used)


def use_calibration(args: argparse.Namespace, checked, loaded: list[LoadedClassifier],
                    verbose: bool) -> Calibration | None:
    """The calibration to apply: --calibration (set on the card when it was fitted for the run's one checkpoint),
    else the one a single checkpoint's card carries; CalibrationError for cards with calibrations in an ensemble."""
    if checked is None:
        carried = [item for item in loaded if item.card.calibration is not None]
        if not carried:
            return None
        if len(loaded) > 1:
            raise CalibrationError(f"the cards of {', '.join(item.path.name for item in carried)} carry a calibration "
                                   f"each, fitted for that checkpoint alone; an ensemble needs its own: fit one with "
                                   f"evaluate.py --fit-calibration and pass --calibration")
        calibration = Calibration(**loaded[0].card.calibration)
        if verbose:
            print(f"[predict] calibration from {loaded[0].path.name}'s card: p' = sigmoid(logit(p) / "
                  f"{calibration.temperature:.4f} {calibration.bias:+.4f}) on every scored video", file=sys.stderr)
        return calibration
    calibration, fitted_for, note = checked
    recorded = ""
    if fitted_for is not None and len(loaded) == 1:
        loaded[0].card = dataclasses.replace(loaded[0].card, calibration=calibration.card_value())
        recorded = f"; {loaded[0].path.name}'s card records it"
    if verbose:
        if note:
            print(f"[predict] note: {note}", file=sys.stderr)
        print(f"[predict] calibration from {args.calibration}: p' = sigmoid(logit(p) / "
              f"{calibration.temperature:.4f} {calibration.bias:+.4f}) on every scored video{recorded}",
              file=sys.stderr)
    return calibration


def calibrated(results: list, calibration: Calibration | None) -> list:
    if calibration is None:
        return results
    return [dataclasses.replace(r, score=float(calibration.apply(r.score))) if r.score is not None else r
            for r in results]


def card_overrides(args: argparse.Namespace) -> dict:
    """Card fields the user gave explicitly; None means 'use the card'."""
    return {"encoder": args.encoder, "input_size": args.size, "frames_per_video": args.frames_per_video,
            "aggregation": args.aggregation}


def load_models(args: argparse.Namespace, device, dtype) -> list[LoadedClassifier]:
    loaded = [load_classifier(args.weights_dir / name, device, dtype, args.trusted_checkpoints, card_overrides(args))
              for name in args.models]
    check_same_pipeline({item.path: item.card for item in loaded})
    return loaded


def make_config(args: argparse.Namespace, device, dtype, loaded: list[LoadedClassifier]) -> PredictionConfig:
    """The pipeline settings; `dtype` is the one the models were loaded in."""
    detector_device = runtime.pick_device(args.detector_device) if args.detector_device else device
    card = loaded[0].card
    frames_per_call = args.detector_batch or (card.frames_per_video if detector_device.type == "cuda" else 1)
    return PredictionConfig(card=card, device=device, detector_device=detector_device,
                            dtype=dtype, batch_size=args.batch_size,
                            frames_per_detector_call=frames_per_call, workers=args.workers,
                            detect_in_workers=detector_device.type == "cpu",
                            keyframes=evidence.KEYFRAMES if args.report else 0)


def _print_conversion(conversion: engine.Conversion) -> None:
    done = f"converted in {conversion.convert_seconds:.1f} s" if conversion.converted else "found in the cache"
    print(f"[predict] {conversion.path.name}: OpenVINO model {done}, compiled in {conversion.compile_seconds:.1f} s",
          file=sys.stderr)


def _rank_label(context: runtime.Context) -> str:
    return f"rank {context.rank}: " if context.distributed else ""


def main(argv=None) -> int:
    args = parse_args(argv)
    videos_in_folder = videos_to_score(args)
    try:
        checked_calibration = read_checked_calibration(args)
    except CalibrationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    context = runtime.init(args.device)
    dtype = engine.model_dtype(args.engine, runtime.pick_dtype(context.device, args.precision))
    try:
        loaded = load_models(args, context.device, dtype)
    except (CheckpointError, CardError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if context.is_main:
        for item in loaded:
            for line in item.overrides:
                print(f"[predict] {item.path.name}: {line}", file=sys.stderr)
        card = loaded[0].card
        print(f"[predict] card: {card.encoder if len(loaded) == 1 else 'per model'}, {card.input_size} px, "
              f"{card.frames_per_video} frames per video, {card.aggregation} aggregation", file=sys.stderr)
    config = make_config(args, context.device, dtype, loaded)
    key = resume.run_key([item.path for item in loaded], [item.card.to_dict() for item in loaded],
                           engine.run_label(args.engine, args.precision, config.dtype),
                           f"{config.detector_device.type}, {config.frames_per_detector_call} frames per call",
                           args.test_dir or args.dataset, args.save_crops)
    try:  # after the run key: progress files hold raw scores, calibrated when the outputs are written
        calibration = use_calibration(args, checked_calibration, loaded, context.is_main)
    except CalibrationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.restart and context.is_main:
        resume.discard(args.output)
    runtime.barrier(context)  # no rank reads the progress files before --restart has removed them
    try:
        finished = resume.load_finished(args.output, key)
    except resume.ProgressFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    videos = context.slice(videos_in_folder)
    results = [finished[name] for _path, name in videos if name in finished]
    to_score = [(path, name) for path, name in videos if name not in finished]
    if results:
        print(f"[predict] {_rank_label(context)}resuming: {len(results)} of {len(videos)} videos already done "
              f"(from {args.output}.progress*.jsonl)", file=sys.stderr)
    started = time.perf_counter()
    report = None
    if args.report is not None:
        report = evidence.EvidenceReport(args.report, key, loaded, calibration, context.is_main)
        runtime.barrier(context)  # rank 0 has removed pages made with other settings before any rank writes one
    try:
        models = engine.prepare_models(args.engine, [item.model for item in loaded], [item.path for item in loaded],
                                       [item.card.to_dict() for item in loaded], config.card.input_size,
                                       args.precision, args.engine_cache, args.compile, report=_print_conversion)
    except engine.EngineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    progress_path = resume.progress_file(args.output, context.rank, context.world_size)
    with resume.ProgressWriter(progress_path, key) as progress_writer:
        scored = predict_videos([path for path, _name in to_score], models, config,
                                keep_images=args.save_crops is not None or report is not None,
                                progress=context.is_main)
        for result, (_path, name) in zip(scored, to_score):
            result.rename(name)
            if report is not None:
                report.add(result)
            if args.save_crops is not None and result.crop_images is not None:
                save_thumbnails(result, args.save_crops)
            result.crop_images = result.keyframes = None
            progress_writer.append(result)  # after the thumbnails: a recorded video is complete
            results.append(result)
    if report is not None:  # after the loop: Grad-CAM before the decoding workers start would hang their fork
        report.add_finished([(path, finished[name]) for path, name in videos if name in finished], config)
    results = runtime.gather_to_main(context, results)
    scored_now = runtime.gather_to_main(context, [len(to_score)])
    if context.is_main:
        write_outputs(calibrated(results, calibration), args.output, args.save_crops)
        record_applied(args.output, calibration, str(args.calibration or f"{loaded[0].path.name}'s card"))
        print_summary(results, args.output)
        if report is not None:
            index = report.write_index(results)
            evidence.write_pointer(args.output, args.report)
            print(f"[predict] evidence report: {index.resolve().as_uri()} ({report.reused} finished pages reused)",
                  file=sys.stderr)
        print(f"[predict] {sum(scored_now)} of {len(results)} videos processed in this run, "
              f"{time.perf_counter() - started:.1f} s on {context.device} ({context.world_size} rank(s))",
              file=sys.stderr)
    runtime.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
