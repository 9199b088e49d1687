"""Train DeepFakeClassifier on face crops: one process, or one per GPU/CPU slot under torchrun.

    torchrun --nproc_per_node 4 training/pipelines/train_classifier.py --config configs/b7.json \
        --data-dir DATA_ROOT --fold 0 --seed 111 --prefix b7_111_

Every epoch draws a balanced crop set and runs `batches_per_epoch` steps per process; rank 0 validates on
fold `--fold` (per-video mean probability, class-balanced log loss) and writes the checkpoints
{prefix}{network}_{encoder}_{fold}_{epoch|last|best} into --output-dir.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from training.datasets.classifier_dataset import (DataError, DatasetOptions, DeepFakeClassifierDataset, read_folds,
                                                  reseed_worker, select_rows)
from training.losses import WeightedLosses, balanced_loss
from training.pipelines.run_log import RunLog
from training.pipelines.validation import validate
from training.tools.checkpoint import (load_checkpoint, prefixed_state_dict, save_checkpoint, snapshot_name,
                                       strip_module_prefix)
from training.tools.config import ConfigError, load_config
from training.tools.distributed import DistributedContext, barrier, cleanup, init_distributed
from training.tools.freezing import encoder_stem_and_stages, freeze, freeze_unused_encoder_head, set_train_mode
from training.tools.optim import create_optimizer, create_scheduler
from training.transforms.albu import create_train_transforms, create_val_transforms
from training.zoo.classifiers import PretrainedWeightsUnavailable, build_network

log = logging.getLogger("training")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    arg = parser.add_argument
    arg("--config", required=True, help="JSON config, e.g. configs/b7.json")
    arg("--workers", type=int, default=6, help="DataLoader worker processes per training process")
    arg("--output-dir", default="weights/", help="checkpoint folder")
    arg("--resume", default="", help="checkpoint to continue from (model, optimizer, schedule, epoch)")
    arg("--fold", type=int, default=0, help="validation fold (the other folds train)")
    arg("--prefix", default="classifier_", help="checkpoint name prefix")
    arg("--data-dir", default="/mnt/sota/datasets/deepfake", help="DATA_ROOT with crops/, folds.csv, ...")
    arg("--folds-csv", default="folds.csv", help="relative to --data-dir unless absolute")
    arg("--crops-dir", default="crops", help="crop folder under --data-dir")
    arg("--label-smoothing", type=float, default=0.01, help="train labels clipped to [s, 1 - s]")
    arg("--logdir", default="logs", help="TensorBoard events and metrics.csv go to LOGDIR/<snapshot name>/")
    arg("--freeze-epochs", type=int, default=0, help="train only the head for this many first epochs")
    arg("--seed", type=int, default=777)
    arg("--test_every", type=int, default=1, help="validate every N epochs (and after the last)")
    arg("--no-oversample", action="store_true", help="use all fakes instead of as many fakes as reals")
    arg("--no-hardcore", action="store_true", help="no landmark / hull / bit-mask cut-outs")
    arg("--only-changed-frames", action="store_true",
        help="leave out of the loss fake crops whose SSIM diff shows no change")
    arg("--pretrained-file", default=None, help="local ImageNet weights for the encoder (overrides the config)")
    arg("--no-pretrained", action="store_true", help="start the encoder from random weights")
    arg("--device", default="auto", choices=("auto", "cpu", "cuda"))
    arg("--epochs", type=int, default=None, help="override schedule.epochs")
    arg("--batches-per-epoch", type=int, default=None, help="override batches_per_epoch")
    arg("--override", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. optimizer.batch_size=8 (repeatable)")
    return parser.parse_args(argv)


def config_overrides(args: argparse.Namespace) -> list[str]:
    overrides = list(args.override)
    if args.epochs is not None:
        overrides.append(f"schedule.epochs={args.epochs}")
    if args.batches_per_epoch is not None:
        overrides.append(f"batches_per_epoch={args.batches_per_epoch}")
    return overrides


def setup_process_logging(context: DistributedContext) -> None:
    level = logging.INFO if context.is_main else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stdout,
                        format=f"%(asctime)s %(levelname)s [rank {context.rank}] %(name)s: %(message)s")


def limit_cpu_threads() -> None:
    """Without OMP_NUM_THREADS, share the cores between the local processes instead of oversubscribing."""
    if "OMP_NUM_THREADS" not in os.environ:
        local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_processes))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ---------------------------------------------------------------- precision

@dataclass(frozen=True)
class Precision:
    """bf16 autocast where the GPU has it, else fp16 autocast + GradScaler; fp32 on CPU or with fp16: false."""

    dtype: torch.dtype | None

    @classmethod
    def choose(cls, device: torch.device, mixed: bool) -> "Precision":
        if device.type != "cuda" or not mixed:
            return cls(None)
        # Native bf16 only (compute capability >= 8): torch otherwise reports emulated bf16 as supported, which
        # is far slower than fp16 on e.g. the original's Titan V / V100.
        return cls(torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16)

    @property
    def uses_scaler(self) -> bool:
        return self.dtype == torch.float16

    def autocast(self, device: torch.device):
        return torch.autocast(device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def __str__(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast + GradScaler"}[self.dtype]


# ---------------------------------------------------------------- setup

def build_model(config: dict, args: argparse.Namespace) -> tuple[nn.Module, list[nn.Module]]:
    """(the config's network, its frozen modules): ImageNet weights unless --no-pretrained or resuming (the
    checkpoint has them); the unused ImageNet head and the config's `freeze` stages frozen."""
    model = create_network(config, args)
    freeze_unused_encoder_head(model)
    frozen = encoder_stem_and_stages(model, config["freeze"])
    freeze(frozen)
    return model, frozen


def create_network(config: dict, args: argparse.Namespace) -> nn.Module:
    pretrained = not (args.no_pretrained or args.resume)
    try:
        return build_network(config["network"], encoder=config["encoder"], pretrained=pretrained,
                             pretrained_file=args.pretrained_file or config["pretrained_file"],
                             head_init_std=config["head_init_std"], **config["model_params"])
    except (ValueError, TypeError) as err:  # unknown network/encoder, bad model_params, wrong shipped weights
        raise ConfigError(f"{args.config}: {err}") from err


def make_datasets(config: dict, args: argparse.Namespace, context: DistributedContext):
    """(train dataset, val dataset or None on ranks other than 0)."""
    data_dir = Path(args.data_dir)
    folds_csv = Path(args.folds_csv) if Path(args.folds_csv).is_absolute() else data_dir / args.folds_csv
    folds = read_folds(folds_csv)
    options = DatasetOptions(data_root=data_dir, crops_dir=args.crops_dir, label_smoothing=args.label_smoothing,
                             hardcore=not args.no_hardcore, oversample_real=not args.no_oversample,
                             normalize_mean=config["normalize"]["mean"], normalize_std=config["normalize"]["std"])
    splits = {mode: select_rows(folds, args.fold, mode) for mode in ("train", "val")}
    for mode, rows in splits.items():
        if rows.empty:
            raise DataError(f"{folds_csv}: no {mode} rows for --fold {args.fold} "
                             f"(folds present: {sorted(folds['fold'].unique().tolist())})")
    train = DeepFakeClassifierDataset(splits["train"], "train", options, create_train_transforms(config["size"]),
                                      seed=args.seed)
    val = (DeepFakeClassifierDataset(splits["val"], "val", options, create_val_transforms(config["size"]))
           if context.is_main else None)
    return train, val


def train_loader(dataset, batch_size: int, args: argparse.Namespace, context: DistributedContext,
                 epoch: int) -> DataLoader:
    sampler = None
    if context.distributed:
        sampler = DistributedSampler(dataset, num_replicas=context.world_size, rank=context.rank, shuffle=True,
                                     seed=args.seed, drop_last=True)
        sampler.set_epoch(epoch)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=sampler is None, drop_last=True,
                      num_workers=args.workers, worker_init_fn=reseed_worker,
                      pin_memory=context.device.type == "cuda")


@dataclass
class TrainState:
    model: nn.Module  # the bare model (unwrapped)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    start_epoch: int = 0
    best_metric: float = math.inf

    def checkpoint(self, epoch: int, metric: float | None, config: dict) -> dict:
        return {
            "epoch": epoch + 1,  # the next epoch to run, as the original
            "step": int(self.scheduler.last_epoch),
            "state_dict": prefixed_state_dict(self.model),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "bce_best": float(self.best_metric),
            "metric": None if metric is None else float(metric),
            "config": config,
        }

    def restore(self, path: str) -> None:
        checkpoint = load_checkpoint(Path(path))
        self.model.load_state_dict(strip_module_prefix(checkpoint["state_dict"]), strict=True)
        for key in ("optimizer", "scheduler", "epoch", "bce_best"):
            if key not in checkpoint:
                raise DataError(f"{path}: no '{key}' entry; only checkpoints written by this trainer can be resumed "
                                 f"(a released model can be loaded as --pretrained-file)")
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint.get("scaler") and self.scaler.is_enabled():
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.start_epoch = int(checkpoint["epoch"])
        self.best_metric = float(checkpoint["bce_best"])


# ---------------------------------------------------------------- one epoch

def memory_format(device: torch.device) -> torch.memory_format:
    """channels-last on CUDA, where convolutions in autocast run faster in it; the default layout on CPU."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def training_step(model: nn.Module, state: TrainState, batch: dict, criterion: nn.Module, precision: Precision,
                  device: torch.device, clip: float, only_changed_frames: bool = False,
                  frozen_encoder: nn.Module | None = None) -> torch.Tensor:
    """Forward, balanced loss, (scaled) backward, clipping after unscaling, SGD and scheduler step; returns the loss.

    `frozen_encoder` (during --freeze-epochs) has its gradients dropped after the backward, which every DDP rank
    still runs in full.
    """
    images = batch["image"].to(device, non_blocking=True, memory_format=memory_format(device))
    labels = batch["labels"].to(device, non_blocking=True).view(-1)
    keep = batch["valid"].to(device) if only_changed_frames else None
    with precision.autocast(device):
        logits = model(images)
    loss = balanced_loss(criterion, logits.float(), labels, keep).loss
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    if frozen_encoder is not None:
        for parameter in frozen_encoder.parameters():
            parameter.grad = None
    state.scaler.unscale_(state.optimizer)
    nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], clip)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.scheduler.step()
    return loss.detach()


def train_epoch(model: nn.Module, state: TrainState, loader: DataLoader, criterion: nn.Module, precision: Precision,
                config: dict, args: argparse.Namespace, context: DistributedContext, epoch: int,
                frozen: list[nn.Module], bare: nn.Module) -> dict:
    steps = min(config["batches_per_epoch"], len(loader))
    if steps < config["batches_per_epoch"] and epoch == state.start_epoch:
        log.info("an epoch has only %d batches per process, fewer than batches_per_epoch %d: epochs end early",
                 steps, config["batches_per_epoch"])
    encoder_frozen = epoch < args.freeze_epochs
    set_train_mode(model, frozen + ([bare.encoder] if encoder_frozen else []))
    loss_sum, replaced = 0.0, 0
    progress = tqdm(total=steps, desc=f"epoch {epoch}", disable=not context.is_main, dynamic_ncols=True)
    for step, batch in enumerate(loader):
        if step == steps:
            break
        loss = training_step(model, state, batch, criterion, precision, context.device, config["optimizer"]["clip"],
                             args.only_changed_frames, bare.encoder if encoder_frozen else None)
        loss_sum += loss.item()
        replaced += int(batch["replaced"].sum())
        progress.update()
        progress.set_postfix(loss=f"{loss_sum / (step + 1):.4f}", lr=f"{state.scheduler.get_last_lr()[0]:.2e}")
    progress.close()
    if replaced:
        log.warning("epoch %d: %d unreadable crops were replaced by the next sample (paths logged above)",
                    epoch, replaced)
    return {"train_loss": loss_sum / max(steps, 1), "lr": state.scheduler.get_last_lr()[0],
            "replaced_crops": replaced}


# ---------------------------------------------------------------- main

def run(args: argparse.Namespace, context: DistributedContext) -> None:
    config = load_config(args.config, config_overrides(args))
    seed_everything(args.seed + context.rank)
    if context.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    precision = Precision.choose(context.device, config["fp16"])

    bare, frozen = build_model(config, args)
    if context.distributed and context.device.type == "cuda":
        bare = nn.SyncBatchNorm.convert_sync_batchnorm(bare)
        frozen = encoder_stem_and_stages(bare, config["freeze"])  # the converted modules
    bare.to(context.device, memory_format=memory_format(context.device))
    optimizer = create_optimizer(config["optimizer"], bare)
    state = TrainState(bare, optimizer, create_scheduler(config["schedule"], optimizer),
                       torch.amp.GradScaler(context.device.type, enabled=precision.uses_scaler))
    if args.resume:
        state.restore(args.resume)
        log.info("resumed from %s: epoch %d, step %d, best %.5f", args.resume, state.start_epoch,
                 state.scheduler.last_epoch, state.best_metric)
    model = bare
    if context.distributed:
        model = DistributedDataParallel(bare, device_ids=[context.local_rank] if context.device.type == "cuda" else None)

    train_set, val_set = make_datasets(config, args, context)
    name = snapshot_name(args.prefix, config["network"], config["encoder"], args.fold)
    run_log = RunLog(Path(args.logdir) / name, start_epoch=state.start_epoch) if context.is_main else None
    epochs = config["schedule"]["epochs"]
    log.info("%s: %d process(es) on %s, %s, SyncBN %s; %d train / %d val crops; epochs %d..%d; frozen: stem+%d "
             "stages", name, context.world_size, context.device, precision,
             "on" if context.distributed and context.device.type == "cuda" else "off", len(train_set.all_rows),
             len(val_set) if val_set else -1, state.start_epoch, epochs - 1, config["freeze"])
    criterion = WeightedLosses(config["losses"]).to(context.device)
    batch_size = config["optimizer"]["batch_size"]
    for epoch in range(state.start_epoch, epochs):
        train_set.reset(epoch, args.seed)
        loader = train_loader(train_set, batch_size, args, context, epoch)
        record = {"epoch": epoch, **train_epoch(model, state, loader, criterion, precision, config, args, context,
                                                epoch, frozen, bare)}
        if context.is_main:
            metric = None
            if epoch % args.test_every == 0 or epoch == epochs - 1:
                result = validate(bare, val_set, batch_size * 2, args.workers, precision, context.device)
                metric = result.balanced_loss
                print(f"[val] epoch {epoch}\nfake_loss {result.fake_loss:.6f}\nreal_loss {result.real_loss:.6f}\n"
                      f"balanced_loss {metric:.6f} auc {result.auc:.4f}", flush=True)
                record.update(result.metrics())
            improved = metric is not None and metric < state.best_metric
            if improved:
                state.best_metric = metric
                run_log.write_predictions(result.video_predictions)
            save_epoch_checkpoints(state, Path(args.output_dir), name, epoch, metric, improved, config)
            run_log.append(record)
        barrier(context)
    if run_log:
        run_log.close()


def save_epoch_checkpoints(state: TrainState, output_dir: Path, name: str, epoch: int, metric: float | None,
                           improved: bool, config: dict) -> None:
    checkpoint = state.checkpoint(epoch, metric, config)
    save_checkpoint(output_dir / f"{name}_{epoch}", checkpoint)
    save_checkpoint(output_dir / f"{name}_last", checkpoint)
    if improved:
        save_checkpoint(output_dir / f"{name}_best", checkpoint)
        log.info("epoch %d: new best balanced log loss %.5f -> %s", epoch, metric, output_dir / f"{name}_best")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limit_cpu_threads()
    context = init_distributed(args.device)
    setup_process_logging(context)
    try:
        run(args, context)
    except (ConfigError, DataError, PretrainedWeightsUnavailable, FileNotFoundError) as err:
        print(f"train_classifier: error: {err}", file=sys.stderr, flush=True)
        return 2
    finally:
        cleanup(context)
    return 0


if __name__ == "__main__":
    sys.exit(main())
