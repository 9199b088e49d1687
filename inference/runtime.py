"""Device, precision and torchrun plumbing shared by predict_folder.py and bench/predict.py."""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Sequence, TypeVar

import torch
import torch.distributed as dist

from preprocessing import faces

T = TypeVar("T")
PRECISIONS = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def pick_dtype(device: torch.device, precision: str) -> torch.dtype:
    """fp16 on CUDA (as the original's .half()), float32 on the CPU, unless --precision says otherwise."""
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return PRECISIONS[precision]


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def slice(self, items: Sequence[T]) -> list[T]:
        """This rank's share: the sorted items [rank::world]."""
        return sorted(items)[self.rank::self.world]


def start(device_name: str) -> tuple[Rank, torch.device]:
    """Join the torchrun group if there is one (gloo: it only carries the small result lists) and pick a device.

    Under torchrun each rank takes GPU LOCAL_RANK.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo", timeout=timedelta(hours=12))  # ranks wait for the slowest at the gather
    rank = Rank(dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else Rank()
    device = with_cuda_index(faces.pick_device(device_name), world)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return rank, device


def with_cuda_index(device: torch.device, world: int) -> torch.device:
    """A bare `cuda` becomes cuda:LOCAL_RANK under torchrun, else cuda:0 (`torch.cuda.set_device` rejects a
    device without an index)."""
    if device.type != "cuda" or device.index is not None:
        return device
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else 0)


def gather_to_main(rank: Rank, items: list) -> list | None:
    """All ranks' items concatenated on rank 0 (None elsewhere)."""
    if rank.world == 1:
        return items
    gathered = [None] * rank.world if rank.is_main else None
    dist.gather_object(items, gathered, dst=0)
    return [item for part in gathered for item in part] if rank.is_main else None


def barrier(rank: Rank) -> None:
    """Wait for every rank (nothing to wait for in a single process)."""
    if rank.world > 1:
        dist.barrier()


def finish() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
