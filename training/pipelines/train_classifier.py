"""Train DeepFakeClassifier on face crops: one process, or one per GPU/CPU slot under torchrun.

    torchrun --nproc_per_node 4 training/pipelines/train_classifier.py --config configs/b7.json \\
        --data-dir DATA_ROOT --fold 0 --seed 111 --prefix b7_111_

Every epoch draws a balanced crop set and runs `batches_per_epoch` steps per process; rank 0 validates on
fold `--fold` (per-video mean probability, class-balanced log loss) and writes the checkpoints
{prefix}{network}_{encoder}_{fold}_{epoch|last|best} into --output-dir.
"""
from __future__ import annotations

from core.allocator import use_steady_allocator

use_steady_allocator(__name__)  # first: glibc reads its malloc settings only when a process starts

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from core import runtime
from core.card import CardError, card_from_config
from core.checkpoints import save_checkpoint, snapshot_name
from core.cli import HelpFormatter, deprecated_alias
from core.layout import LANDMARKS68_DIR, is_variant
from core.models import PretrainedWeightsUnavailable, build_network
from core.runtime import Context
from training.datasets.classifier_dataset import (DataError, DatasetOptions, DeepFakeClassifierDataset, read_folds,
                                                  reseed_worker, select_rows)
from training.datasets.pair_mixup import PairMixupError, check_pairs
from training.datasets.sbi import SBIOptions
from training.datasets.sbi_dataset import SelfBlendedPairs, SelfBlendedValidation, collate_pairs, real_rows
from training.datasets.unchanged_tracks import TracksMissing, apply_unchanged_tracks, check_folds_have_tracks
from training.losses import WeightedLosses, balanced_loss
from training.pipelines.run_log import RunLog
from training.pipelines.train_state import ResumeError, TrainState, capture_rng
from training.pipelines.validation import validate
from training.tools.config import ConfigError, load_config
from training.tools.freezing import encoder_stem_and_stages, freeze, freeze_unused_encoder_head, set_train_mode
from training.tools.optim import create_optimizer, create_scheduler
from training.transforms.albu import create_train_transforms, create_val_transforms

log = logging.getLogger("training")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    arg = parser.add_argument
    arg("--config", required=True, help="JSON config, e.g. configs/b7.json")
    arg("--workers", type=int, default=6, help="DataLoader worker processes per training process")
    arg("--output-dir", default="weights/", help="checkpoint folder")
    arg("--resume", default="", help="checkpoint to continue from (model, optimizer, schedule, epoch, random "
                                     "states), or 'last': this run's own _last checkpoint if it exists")
    arg("--fold", type=int, default=0, help="validation fold (the other folds train)")
    arg("--prefix", default="classifier_", help="checkpoint name prefix")
    arg("--data-dir", required=True, help="DATA_ROOT with crops/, folds.csv, ... (from preprocess_data.sh)")
    arg("--folds-csv", default="folds.csv", help="relative to --data-dir unless absolute")
    arg("--crops-dir", default="crops", help="crop folder under --data-dir")
    arg("--label-smoothing", type=float, default=0.01, help="train labels clipped to [s, 1 - s]")
    arg("--logdir", default="logs", help="TensorBoard events and metrics.csv go to LOGDIR/<snapshot name>/")
    arg("--freeze-epochs", type=int, default=0, help="train only the head for this many first epochs")
    arg("--seed", type=int, default=777)
    arg("--test-every", type=int, default=1, help="validate every N epochs (and after the last)")
    arg("--test_every", type=int, dest="test_every", action=deprecated_alias("--test-every"), help=argparse.SUPPRESS)
    arg("--no-oversample", action="store_true", help="use all fakes instead of as many fakes as reals")
    arg("--no-hardcore", action="store_true", help="no landmark / hull / bit-mask cut-outs")
    arg("--only-changed-frames", action="store_true",
        help="leave out of the loss fake crops whose SSIM diff shows no change")
    arg("--pretrained-file", default=None, help="local ImageNet weights for the encoder (overrides the config)")
    arg("--no-pretrained", action="store_true", help="start the encoder from random weights")
    arg("--device", default="auto", help="auto, cpu or cuda (under torchrun each rank takes GPU LOCAL_RANK)")
    arg("--epochs", type=int, default=None, help="override schedule.epochs")
    arg("--batches-per-epoch", type=int, default=None, help="override batches_per_epoch")
    arg("--override", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. optimizer.batch_size=8 (repeatable)")
    arg("--print-checkpoint", action="store_true",
        help="print the path of this run's _last checkpoint (from the config, --prefix, --fold, --output-dir) and exit")
    return parser.parse_args(argv)


# Options that change what a run computes; a resume must use the checkpoint's values, as for the config keys.
# (--workers is not one of them, although each worker draws its own augmentations: see docs/training.md, "Resume".)
RUN_OPTIONS = ("seed", "fold", "folds_csv", "crops_dir", "label_smoothing", "freeze_epochs", "test_every",
               "no_oversample", "no_hardcore", "only_changed_frames")


def run_settings(config: dict, args: argparse.Namespace) -> dict:
    """What a checkpoint records and a resume must match: the config, and the options in RUN_OPTIONS."""
    return {**config, "options": {name: getattr(args, name) for name in RUN_OPTIONS}}


def config_overrides(args: argparse.Namespace) -> list[str]:
    overrides = list(args.override)
    if args.epochs is not None:
        overrides.append(f"schedule.epochs={args.epochs}")
    if args.batches_per_epoch is not None:
        overrides.append(f"batches_per_epoch={args.batches_per_epoch}")
    return overrides


def setup_process_logging(context: Context) -> None:
    level = logging.INFO if context.is_main else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stdout,
                        format=f"%(asctime)s %(levelname)s [rank {context.rank}] %(name)s: %(message)s")


# ---------------------------------------------------------------- precision

@dataclass(frozen=True)
class Precision:
    """bf16 autocast where the GPU has it, else fp16 autocast + GradScaler; fp32 on the CPU or with
    "mixed_precision": false."""

    dtype: torch.dtype | None

    @classmethod
    def choose(cls, device: torch.device, mixed: bool) -> Precision:
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

def build_model(config: dict, args: argparse.Namespace, pretrained: bool) -> tuple[nn.Module, list[nn.Module]]:
    """(the config's network, its frozen modules): ImageNet weights when `pretrained` (not with --no-pretrained,
    nor when a checkpoint will be resumed: it has the weights); the unused ImageNet head and the config's
    `freeze` stages frozen."""
    model = create_network(config, args, pretrained)
    freeze_unused_encoder_head(model)
    frozen = encoder_stem_and_stages(model, config["freeze"])
    freeze(frozen)
    return model, frozen


def create_network(config: dict, args: argparse.Namespace, pretrained: bool) -> nn.Module:
    try:
        return build_network(config["network"], encoder=config["encoder"], pretrained=pretrained,
                             pretrained_file=args.pretrained_file or config["pretrained_file"],
                             head_init_std=config["head_init_std"], **config["model_params"])
    except (ValueError, TypeError) as err:  # unknown network/encoder, bad model_params, wrong shipped weights
        raise ConfigError(f"{args.config}: {err}") from err


def folds_path(args: argparse.Namespace) -> Path:
    return Path(args.folds_csv) if Path(args.folds_csv).is_absolute() else Path(args.data_dir) / args.folds_csv


def check_option_inputs(config: dict, args: argparse.Namespace) -> None:
    """Refuse before any work "pair_mixup" where no fake has its original's crop, and "reencode_variants" where
    folds.csv has no re-encoded copy."""
    if config["pair_mixup"] is None and not config["reencode_variants"]:
        return
    rows = with_variants(select_rows(read_folds(folds_path(args)), args.fold, "train"), config["reencode_variants"])
    if config["reencode_variants"] and not rows["video"].map(is_variant).any():
        raise DataError(f"{folds_path(args)}: \"reencode_variants\": true, but no training row is a re-encoded "
                        f"copy: run python -m preprocessing.reencode_variants --root-dir {args.data_dir}, then "
                        f"preprocess_data.sh {args.data_dir} (finished steps are skipped)")
    if config["pair_mixup"] is not None:
        try:
            check_pairs(rows, folds_path(args))
        except PairMixupError as err:
            raise DataError(str(err)) from None


def with_variants(rows, keep: bool):
    """The rows, without those of re-encoded copies unless `keep` (a root without copies is left as it is)."""
    if keep or rows.empty:
        return rows
    return rows[~rows["video"].map(is_variant).astype(bool)]


def make_datasets(config: dict, args: argparse.Namespace, context: Context):
    """(train dataset, val dataset or None on ranks other than 0); with "fakes": "sbi", real crops and their
    self-blends only."""
    data_dir = Path(args.data_dir)
    folds_csv = folds_path(args)
    folds = apply_unchanged_tracks(read_folds(folds_csv), config["unchanged_tracks"])
    options = DatasetOptions(data_root=data_dir, crops_dir=args.crops_dir, label_smoothing=args.label_smoothing,
                             hardcore=not args.no_hardcore, oversample_real=not args.no_oversample,
                             normalize_mean=config["normalize"]["mean"], normalize_std=config["normalize"]["std"],
                             pair_mixup=config["pair_mixup"])
    sbi = config["fakes"] == "sbi"
    if sbi:
        if config["unchanged_tracks"] != "fake":
            raise DataError(f"{args.config}: \"unchanged_tracks\" relabels the dataset's fake crops, and "
                            f"\"fakes\": \"sbi\" trains on real crops only; leave it at \"fake\"")
        check_sbi_inputs(data_dir, args)
        folds = real_rows(folds)
    splits = {"train": with_variants(select_rows(folds, args.fold, "train"), config["reencode_variants"]),
              "val": with_variants(select_rows(folds, args.fold, "val"), False)}
    for mode, rows in splits.items():
        if rows.empty:
            raise DataError(f"{folds_csv}: no {'real ' if sbi else ''}{mode} rows for --fold {args.fold} "
                            f"(folds present: {sorted(folds['fold'].unique().tolist())})")
    train_transforms, val_transforms = create_train_transforms(config["size"]), create_val_transforms(config["size"])
    if sbi:
        blend = SBIOptions.from_config(config["sbi"])
        train = SelfBlendedPairs(splits["train"], options, train_transforms, seed=args.seed, blend=blend)
        val = SelfBlendedValidation(splits["val"], options, val_transforms, seed=args.seed,
                                    blend=blend) if context.is_main else None
        return train, val
    train = DeepFakeClassifierDataset(splits["train"], "train", options, train_transforms, seed=args.seed)
    val = DeepFakeClassifierDataset(splits["val"], "val", options, val_transforms) if context.is_main else None
    return train, val


def check_sbi_inputs(data_dir: Path, args: argparse.Namespace) -> None:
    """Refuse, before any work, what "fakes": "sbi" cannot use or does not do."""
    if not (data_dir / LANDMARKS68_DIR).is_dir():
        raise DataError(f"{data_dir}: \"fakes\": \"sbi\" needs the 68-point landmarks of the real crops, and "
                        f"generate_landmarks68 has not run there: run preprocess_data.sh {data_dir} (finished "
                        f"steps are skipped)")
    without_effect = {"--only-changed-frames": (args.only_changed_frames, "selects fakes by their SSIM diff; "
                                                 "self-blended fakes have none"),
                      "--no-hardcore": (args.no_hardcore, "turns off the cut-outs of real crops and their "
                                        "dataset fakes; self-blended pairs never get them"),
                      "--no-oversample": (args.no_oversample, "turns off sampling as many dataset fakes as "
                                          "reals; self-blending makes exactly one fake per real")}
    for option, (given, why) in without_effect.items():
        if given:
            raise DataError(f"{option} {why}: drop the option with \"fakes\": \"sbi\"")


def train_loader(dataset, batch_size: int, args: argparse.Namespace, context: Context,
                 epoch: int) -> DataLoader:
    """batch_size images per step: with real/blend pair items, batch_size / 2 items."""
    sampler = None
    if context.distributed:
        sampler = DistributedSampler(dataset, num_replicas=context.world_size, rank=context.rank, shuffle=True,
                                     seed=args.seed, drop_last=True)
        sampler.set_epoch(epoch)
    pairs = isinstance(dataset, SelfBlendedPairs)
    return DataLoader(dataset, batch_size=batch_size // 2 if pairs else batch_size, sampler=sampler,
                      shuffle=sampler is None, drop_last=True, num_workers=args.workers, worker_init_fn=reseed_worker,
                      collate_fn=collate_pairs if pairs else None, pin_memory=context.device.type == "cuda")


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
                config: dict, args: argparse.Namespace, context: Context, epoch: int,
                frozen: list[nn.Module], bare: nn.Module) -> dict:
    steps = min(config["batches_per_epoch"], len(loader))
    if steps < config["batches_per_epoch"] and epoch == state.start_epoch:
        log.info("an epoch has only %d batches per process, fewer than batches_per_epoch %d: epochs end early",
                 steps, config["batches_per_epoch"])
    encoder_frozen = epoch < args.freeze_epochs
    set_train_mode(model, frozen + ([bare.encoder] if encoder_frozen else []))
    loss_sum, replaced = 0.0, 0
    clock = StepClock()
    progress = tqdm(total=steps, desc=f"epoch {epoch}", disable=not context.is_main, dynamic_ncols=True)
    for step, batch in enumerate(loader):
        if step == steps:
            break
        clock.batch_arrived()
        loss = training_step(model, state, batch, criterion, precision, context.device, config["optimizer"]["clip"],
                             args.only_changed_frames, bare.encoder if encoder_frozen else None)
        loss_sum += loss.item()  # waits for the device: the clock below sees the step's real end
        clock.step_done()
        replaced += int(batch["replaced"].sum())
        progress.update()
        progress.set_postfix(loss=f"{loss_sum / (step + 1):.4f}", lr=f"{state.scheduler.get_last_lr()[0]:.2e}")
    progress.close()
    if replaced:
        log.warning("epoch %d: %d unreadable crops were replaced by the next sample (paths logged above)",
                    epoch, replaced)
    return {"train_loss": loss_sum / max(steps, 1), "lr": state.scheduler.get_last_lr()[0],
            "replaced_crops": replaced,
            "images_per_s": clock.images_per_second(config["optimizer"]["batch_size"] * context.world_size),
            "data_wait": clock.waiting_share()}


class StepClock:
    """This rank's step rate and the share of its time spent waiting for the DataLoader, from the second step on
    (the first includes worker start-up and, on CUDA, cuDNN autotuning)."""

    def __init__(self):
        self.steps, self.waited, self.started, self.last = 0, 0.0, None, None

    def batch_arrived(self) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.waited += now - self.last

    def step_done(self) -> None:
        self.last = time.perf_counter()
        if self.started is None:
            self.started = self.last
        else:
            self.steps += 1

    def images_per_second(self, images_per_step: int) -> float | None:
        return self.steps * images_per_step / (self.last - self.started) if self.steps else None

    def waiting_share(self) -> float | None:
        return self.waited / (self.last - self.started) if self.steps else None


# ---------------------------------------------------------------- main

def checkpoint_base(config: dict, args: argparse.Namespace) -> Path:
    """<output-dir>/<prefix><network>_<encoder>_<fold>: the checkpoints add _<epoch>, _last and _best."""
    return Path(args.output_dir) / snapshot_name(args.prefix, config["network"], config["encoder"], args.fold)


def resume_path(args: argparse.Namespace, base: Path) -> Path | None:
    """--resume PATH, or with 'last' this run's own _last checkpoint when it exists (else a fresh start)."""
    if args.resume == "last":
        last = Path(f"{base}_last")
        return last if last.is_file() else None
    return Path(args.resume) if args.resume else None


def run(args: argparse.Namespace, context: Context) -> None:
    config = load_config(args.config, config_overrides(args))
    check_option_inputs(config, args)
    try:
        card = card_from_config(config)
    except CardError as err:
        raise ConfigError(f"{args.config}: {err}") from err
    try:
        check_folds_have_tracks(folds_path(args), config["unchanged_tracks"])
    except TracksMissing as err:
        raise DataError(str(err)) from None
    runtime.seed_everything(args.seed + context.rank)
    if context.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    precision = Precision.choose(context.device, config["mixed_precision"])
    base = checkpoint_base(config, args)
    resume = resume_path(args, base)  # None for `--resume last` before the first checkpoint: a fresh start

    bare, frozen = build_model(config, args, pretrained=not (args.no_pretrained or resume))
    if context.distributed and context.device.type == "cuda":
        bare = nn.SyncBatchNorm.convert_sync_batchnorm(bare)
        frozen = encoder_stem_and_stages(bare, config["freeze"])  # the converted modules
    bare.to(context.device, memory_format=memory_format(context.device))
    optimizer = create_optimizer(config["optimizer"], bare)
    state = TrainState(bare, optimizer, create_scheduler(config["schedule"], optimizer),
                       torch.amp.GradScaler(context.device.type, enabled=precision.uses_scaler))
    train_set, val_set = make_datasets(config, args, context)
    if resume:
        # last: the random states continue where the checkpoint left them
        state.restore(resume, run_settings(config, args), context)
        log.info("resumed from %s: epoch %d, step %d, best %.5f", resume, state.start_epoch,
                 state.scheduler.last_epoch, state.best_metric)
    model = bare
    if context.distributed:
        device_ids = [context.local_rank] if context.device.type == "cuda" else None
        model = DistributedDataParallel(bare, device_ids=device_ids)

    run_log = RunLog(Path(args.logdir) / base.name, start_epoch=state.start_epoch) if context.is_main else None
    epochs = config["schedule"]["epochs"]
    log.info("%s: %d process(es) on %s, %s, SyncBN %s, %s; %d train / %d val crops; epochs %d..%d; frozen: "
             "stem+%d stages", base.name, context.world_size, context.device, precision,
             "on" if context.distributed and context.device.type == "cuda" else "off",
             "channels-last" if memory_format(context.device) == torch.channels_last else "contiguous",
             len(train_set.all_rows),
             len(val_set) if val_set else -1, state.start_epoch, epochs - 1, config["freeze"])
    if state.start_epoch >= epochs:
        log.info("%s has already run all %d epochs: nothing to do", resume, epochs)
    criterion = WeightedLosses(config["losses"]).to(context.device)
    batch_size = config["optimizer"]["batch_size"]
    for epoch in range(state.start_epoch, epochs):
        train_set.reset(epoch, args.seed)
        loader = train_loader(train_set, batch_size, args, context, epoch)
        record = {"epoch": epoch, **train_epoch(model, state, loader, criterion, precision, config, args, context,
                                                epoch, frozen, bare)}
        metric, result = None, None
        if context.is_main and (epoch % args.test_every == 0 or epoch == epochs - 1):
            result = validate(bare, val_set, batch_size * 2, args.workers, precision, context.device)
            metric = result.balanced_loss
            print(f"[val] epoch {epoch}\nfake_loss {result.fake_loss:.6f}\nreal_loss {result.real_loss:.6f}\n"
                  f"balanced_loss {metric:.6f} auc {result.auc:.4f}", flush=True)
            record.update(result.metrics())
        rng = runtime.gather_to_main(context, [capture_rng()])  # every rank's states, after rank 0 validated
        if context.is_main:
            improved = metric is not None and metric < state.best_metric
            if improved:
                state.best_metric = metric
                run_log.write_predictions(result.video_predictions)
            # The row first: a resume redoes the epochs after its checkpoint and drops their rows, so an
            # interruption between the two writes can cost an epoch's work but never its row.
            run_log.append(record)
            checkpoint = state.checkpoint(epoch, metric, run_settings(config, args), card, rng)
            save_epoch_checkpoints(checkpoint, base, epoch, improved)
        runtime.barrier(context)
    if run_log:
        run_log.close()


def save_epoch_checkpoints(checkpoint: dict, base: Path, epoch: int, improved: bool) -> None:
    save_checkpoint(Path(f"{base}_{epoch}"), checkpoint)
    save_checkpoint(Path(f"{base}_last"), checkpoint)
    if improved:
        save_checkpoint(Path(f"{base}_best"), checkpoint)
        log.info("epoch %d: new best balanced log loss %.5f -> %s_best", epoch, checkpoint["metric"], base)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.print_checkpoint:
        try:
            print(f"{checkpoint_base(load_config(args.config, config_overrides(args)), args)}_last")
        except ConfigError as err:
            print(f"train_classifier: error: {err}", file=sys.stderr)
            return 2
        return 0
    runtime.share_cpu_threads()
    context = runtime.init(args.device)
    setup_process_logging(context)
    try:
        run(args, context)
    except (ConfigError, DataError, PretrainedWeightsUnavailable, FileNotFoundError, ResumeError) as err:
        print(f"train_classifier: error: {err}", file=sys.stderr, flush=True)
        return 2
    finally:
        runtime.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
