"""Where and how the code runs: device choice, the torchrun process group, rank slices, seeds, threads, pools.

Every entry point (preprocessing steps, the trainer, the predictor, the benchmarks) starts through `init`, so
there is one rule for devices (`auto` = this rank's GPU when CUDA is present, else the CPU), one backend rule
(NCCL on CUDA, gloo on the CPU) and one timeout.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist


T = TypeVar("T")
PRECISIONS = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
# Non-zero ranks wait while rank 0 validates a full B7 epoch, and prediction ranks wait for the slowest at
# the final gather: both must stay below this.
COLLECTIVE_TIMEOUT = timedelta(hours=12)


def pick_device(choice: str | None = "auto", local_rank: int = 0) -> torch.device:
    """`auto`: CUDA when available, else the CPU. A bare `cuda` becomes this rank's GPU (cuda:LOCAL_RANK)."""
    if not choice or choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(choice)
    except RuntimeError as err:
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, not {choice!r}") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"--device {choice} requested but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    elif device.type != "cpu":
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, not {choice!r}")
    return device


def pick_dtype(device: torch.device, precision: str) -> torch.dtype:
    """Inference precision: fp16 on CUDA (as the original's .half()), float32 on the CPU, unless told otherwise."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return PRECISIONS[precision]


@dataclass(frozen=True)
class Context:
    """This process's place in a torchrun job (a single process is rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def slice(self, items: Sequence[T]) -> list[T]:
        """This rank's share: the sorted items [rank::world_size]."""
        return sorted(items)[self.rank::self.world_size]


def init(device_choice: str | None = "auto") -> Context:
    """Pick this rank's device and join the torchrun process group when WORLD_SIZE > 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_choice, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method="env://", timeout=COLLECTIVE_TIMEOUT,
                                **({"device_id": device} if device.type == "cuda" else {}))
    return Context(rank, local_rank, world_size, device)


def barrier(context: Context) -> None:
    if context.distributed:
        dist.barrier()


def gather_to_main(context: Context, items: list) -> list | None:
    """All ranks' items concatenated on rank 0 (None elsewhere)."""
    if not context.distributed:
        return items
    gathered = [None] * context.world_size if context.is_main else None
    dist.gather_object(items, gathered, dst=0)
    return [item for part in gathered for item in part] if context.is_main else None


def finish() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def share_cpu_threads() -> None:
    """Without OMP_NUM_THREADS, share the cores between this machine's torchrun processes instead of
    oversubscribing them."""
    if "OMP_NUM_THREADS" not in os.environ:
        local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_processes))
