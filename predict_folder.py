"""Score every *.mp4 in a folder with an ensemble of DeepFakeClassifier checkpoints; write a Kaggle submission CSV.

    python predict_folder.py --weights-dir weights --models final_111_... final_555_... \
        --test-dir /data/test_videos --output submission.csv

Several GPUs or machines: `torchrun --nproc-per-node N predict_folder.py ...`; each rank scores the sorted
names [rank::world] and rank 0 writes the merged files. See inference/outputs.py for the files written.

Resumable: every finished video is appended at once to <output>.progress.jsonl (one file per rank under
torchrun, see inference/progress.py); a rerun with the same settings skips the videos recorded there and
writes the same files as an uninterrupted run. Other settings are refused until --restart discards them.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

import kernel_utils as ku
from inference import progress, runtime
from inference.checkpoints import DEFAULT_ENCODER, CheckpointError, load_classifier
from inference.outputs import print_summary, save_thumbnails, write_outputs
from inference.pipeline import PredictionConfig, predict_videos
from preprocessing import faces


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights-dir", type=Path, default=Path("weights"))
    parser.add_argument("--models", nargs="+", required=True, help="checkpoint file names inside --weights-dir")
    parser.add_argument("--test-dir", type=Path, required=True, help="folder with the *.mp4 files to score")
    parser.add_argument("--output", type=Path, default=Path("submission.csv"))
    parser.add_argument("--encoder", default=DEFAULT_ENCODER, help=f"timm encoder of the checkpoints ({DEFAULT_ENCODER})")
    parser.add_argument("--frames-per-video", type=int, default=ku.FRAMES_PER_VIDEO)
    parser.add_argument("--size", type=int, default=ku.INPUT_SIZE, help="model input side in pixels")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (classifier)")
    parser.add_argument("--detector-device", default=None,
                        help="MTCNN device (default: --device). On cpu the detector runs inside the decoding workers")
    parser.add_argument("--precision", choices=["auto", *runtime.PRECISIONS], default="auto",
                        help="auto: fp16 on CUDA, fp32 on CPU")
    parser.add_argument("--batch-size", type=int, default=64, help="face crops per classifier call")
    parser.add_argument("--detector-batch", type=int, default=None,
                        help="frames per MTCNN call (default: all frames of a video on CUDA; 1 on CPU, where "
                             "batching is not faster and 1 reproduces the original exactly)")
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8),
                        help="decoding (and CPU detection) worker processes; 0 = in the main process")
    parser.add_argument("--save-crops", type=Path, default=None,
                        help="save a thumbnail of every face crop here (<video>/<frame>_<face>.jpg) for evaluate.py")
    parser.add_argument("--trusted-checkpoints", action="store_true",
                        help="load checkpoints with torch.load(weights_only=False): only for files you trust")
    parser.add_argument("--restart", action="store_true",
                        help="discard the progress of an earlier run (<output>.progress*.jsonl) and score every video")
    args = parser.parse_args(argv)
    if not args.test_dir.is_dir():
        parser.error(f"--test-dir {args.test_dir} is not a folder")
    return args


def make_config(args: argparse.Namespace, device: torch.device) -> PredictionConfig:
    detector_device = faces.pick_device(args.detector_device) if args.detector_device else device
    frames_per_call = args.detector_batch or (args.frames_per_video if detector_device.type == "cuda" else 1)
    return PredictionConfig(frames_per_video=args.frames_per_video, size=args.size, device=device,
                            detector_device=detector_device, dtype=runtime.pick_dtype(device, args.precision),
                            batch_size=args.batch_size, frames_per_detector_call=frames_per_call,
                            workers=args.workers, detect_in_workers=detector_device.type == "cpu")


def _rank_label(rank: runtime.Rank) -> str:
    return f"rank {rank.rank}: " if rank.world > 1 else ""


def main(argv=None) -> int:
    args = parse_args(argv)
    rank, device = runtime.start(args.device)
    config = make_config(args, device)
    try:
        models = [load_classifier(args.weights_dir / name, args.encoder, device, config.dtype,
                                  args.trusted_checkpoints) for name in args.models]
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    key = progress.run_key([args.weights_dir / name for name in args.models], args.encoder, args.size,
                           args.frames_per_video, str(config.dtype),
                           f"{config.detector_device.type}, {config.frames_per_detector_call} frames per call",
                           args.test_dir, args.save_crops)
    if args.restart and rank.is_main:
        progress.discard(args.output)
    runtime.barrier(rank)  # no rank reads the progress files before --restart has removed them
    try:
        finished = progress.load_finished(args.output, key)
    except progress.ProgressFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    videos = rank.slice(args.test_dir.glob("*.mp4"))
    results = [finished[video.name] for video in videos if video.name in finished]
    to_score = [video for video in videos if video.name not in finished]
    if results:
        print(f"[predict] {_rank_label(rank)}resuming: {len(results)} of {len(videos)} videos already done "
              f"(from {args.output}.progress*.jsonl)", file=sys.stderr)
    started = time.perf_counter()
    with progress.ProgressWriter(progress.progress_file(args.output, rank.rank, rank.world), key) as progress_writer:
        for result in predict_videos(to_score, models, config, keep_images=args.save_crops is not None,
                                     progress=rank.is_main):
            if args.save_crops is not None and result.crop_images is not None:
                save_thumbnails(result, args.save_crops)
                result.crop_images = None
            progress_writer.append(result)  # after the thumbnails: a recorded video is complete
            results.append(result)
    results = runtime.gather_to_main(rank, results)
    scored_now = runtime.gather_to_main(rank, [len(to_score)])
    if rank.is_main:
        write_outputs(results, args.output, args.save_crops)
        print_summary(results, args.output)
        print(f"[predict] {sum(scored_now)} of {len(results)} videos processed in this run, "
              f"{time.perf_counter() - started:.1f} s on {device} ({rank.world} rank(s))", file=sys.stderr)
    runtime.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
