"""Training throughput: images/s of the data pipeline alone and of full training steps, for one config.

    python bench/train_throughput.py configs/demo_cpu.json [--data-dir DATA_ROOT] [--steps 20] [--workers 1]

Without --data-dir a synthetic dataset (random 200x200 crops, diffs and landmarks) is written to a temporary
folder, so the numbers cover decoding, cut-outs, albumentations and the model, not the disk. Runs on one
process and the device the trainer would pick (--device to force).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from core.allocator import use_steady_allocator

use_steady_allocator(__name__)  # first: glibc reads its malloc settings only when a process starts

from training.losses import WeightedLosses
from training.pipelines import train_classifier as trainer
from core import runtime
from core.cli import HelpFormatter
from training.tools.optim import create_optimizer, create_scheduler

LANDMARKS = np.array([[70, 80], [130, 80], [100, 110], [75, 145], [125, 145]], dtype=np.int16)


def write_synthetic_dataset(root: Path, videos: int = 12, frames: int = 8, crop_size: int = 200) -> None:
    """Half real, half fake videos in folds 0..3 with random crops; fakes get a diff, originals landmarks."""
    rng = np.random.default_rng(0)
    rows = []
    for v in range(videos):
        original = f"real{v // 2:03d}"
        video, label = (original, 0) if v % 2 == 0 else (f"fake{v // 2:03d}", 1)
        for frame in range(0, frames * 10, 10):
            name = f"{frame}_0"
            crop = root / "crops" / video / f"{name}.png"
            crop.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(crop), rng.integers(0, 255, (crop_size, crop_size, 3), dtype=np.uint8))
            if label:
                (root / "diffs" / video).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / "diffs" / video / f"{name}_diff.png"),
                            rng.integers(0, 255, (crop_size, crop_size), dtype=np.uint8))
            else:
                (root / "landmarks" / video).mkdir(parents=True, exist_ok=True)
                np.save(root / "landmarks" / video / f"{name}.npy", LANDMARKS)
            rows.append((video, f"{name}.png", label, original, frame, (v // 2) % 4))
    pd.DataFrame(rows, columns=["video", "file", "label", "original", "frame", "fold"]).to_csv(
        root / "folds.csv", index=False)


def batches(loader, count: int):
    """`count` batches, cycling the loader when it is shorter."""
    produced = 0
    while produced < count:
        for batch in loader:
            yield batch
            produced += 1
            if produced == count:
                return


def measure_loading(loader, steps: int, batch_size: int) -> float:
    iterator = batches(loader, steps + 1)
    next(iterator)  # worker start-up is not throughput
    started = time.perf_counter()
    for _ in iterator:
        pass
    return steps * batch_size / (time.perf_counter() - started)


def measure_training(model, loader, config: dict, context, precision, steps: int, batch_size: int) -> float:
    optimizer = create_optimizer(config["optimizer"], model)
    state = trainer.TrainState(model, optimizer, create_scheduler(config["schedule"], optimizer),
                               torch.amp.GradScaler(context.device.type, enabled=precision.uses_scaler))
    criterion = WeightedLosses(config["losses"]).to(context.device)
    model.train()
    warmup = 2
    started = None
    for index, batch in enumerate(batches(loader, steps + warmup)):
        if index == warmup:
            synchronize(context.device)
            started = time.perf_counter()
        trainer.training_step(model, state, batch, criterion, precision, context.device, config["optimizer"]["clip"])
    synchronize(context.device)
    return steps * batch_size / (time.perf_counter() - started)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--data-dir", default=None, help="a preprocessed DATA_ROOT (default: synthetic data)")
    parser.add_argument("--steps", type=int, default=20, help="timed batches per measurement")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=None, help="override optimizer.batch_size")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--no-pretrained", action="store_true")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        data_dir = options.data_dir
        if data_dir is None:
            data_dir = scratch
            write_synthetic_dataset(Path(scratch))
        argv = ["--config", options.config, "--data-dir", data_dir, "--workers", str(options.workers),
                "--device", options.device, "--fold", "0"]
        if options.batch_size:
            argv += ["--override", f"optimizer.batch_size={options.batch_size}"]
        if options.no_pretrained:
            argv.append("--no-pretrained")
        args = trainer.parse_args(argv)
        runtime.share_cpu_threads()
        context = runtime.init(args.device)
        config = trainer.load_config(args.config, trainer.config_overrides(args))
        batch_size = config["optimizer"]["batch_size"]
        precision = trainer.Precision.choose(context.device, config["mixed_precision"])
        train_set, _ = trainer.make_datasets(config, args, context)
        train_set.reset(0, args.seed)
        loader = trainer.train_loader(train_set, batch_size, args, context, 0)

        loading = measure_loading(loader, options.steps, batch_size)
        model, _ = trainer.build_model(config, args, pretrained=not args.no_pretrained)
        model.to(context.device, memory_format=trainer.memory_format(context.device))
        training = measure_training(model, loader, config, context, precision, options.steps, batch_size)

    print(f"config {options.config}: encoder {config['encoder']}, size {config['size']}, batch {batch_size}, "
          f"frozen stem+{config['freeze']} stages, device {context.device}, {precision}, "
          f"torch threads {torch.get_num_threads()}, workers {options.workers}, "
          f"data {'synthetic' if options.data_dir is None else options.data_dir}")
    print(f"data loading alone: {loading:.1f} images/s")
    print(f"training steps (loading + forward + backward + SGD): {training:.1f} images/s "
          f"= {batch_size / training:.2f} s/step")


if __name__ == "__main__":
    main()
