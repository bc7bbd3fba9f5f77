"""Multi-process training under ``torchrun``: the process group, the per-rank batch and the few collectives the
training loop needs.

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; with ``WORLD_SIZE`` > 1
:func:`start` joins the group from them (``init_method="env://"``): gloo on CPU, nccl on CUDA, one GPU per process
(``cuda:LOCAL_RANK``). Without torchrun, or with one process, nothing here touches ``torch.distributed``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..errors import UNUSABLE, RunError

__all__ = [
    "Distributed",
    "all_gather",
    "all_sum",
    "any_rank",
    "broadcast",
    "per_rank_batch",
    "requested",
    "start",
    "stop",
    "wait",
]


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that prints, writes files and evaluates."""
        return self.rank == 0


def requested() -> Distributed:
    """What the torchrun environment asks for (one process when its variables are absent); starts nothing."""
    try:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise RunError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)", UNUSABLE) from None
    return Distributed(rank, world_size, local_rank)


def start(device: torch.device) -> tuple[Distributed, torch.device]:
    """Join torchrun's process group (if WORLD_SIZE > 1); returns this process's place and its device."""
    place = requested()
    if not place.enabled:
        return place, device
    if not dist.is_available():
        raise RunError("this torch build has no torch.distributed: run npc train without torchrun", UNUSABLE)
    if device.type == "cuda":
        if place.local_rank >= torch.cuda.device_count():
            raise RunError(
                f"LOCAL_RANK {place.local_rank}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                "start at most that many processes per node (or pass --device cpu)",
                UNUSABLE,
            )
        device = torch.device("cuda", place.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://", **kwargs)
    return place, device


def wait(place: Distributed) -> None:
    """Every process reaches this point before any goes on (rank 0 may still be writing files)."""
    if place.enabled:
        dist.barrier()


def stop(place: Distributed) -> None:
    if place.enabled and dist.is_initialized():
        dist.destroy_process_group()


def per_rank_batch(batch_size: int, place: Distributed) -> int:
    """training.batch_size is the global batch: each of the world_size processes takes an equal share."""
    if batch_size % place.world_size:
        raise RunError(
            f"training.batch_size {batch_size} is the global batch and must divide evenly over the "
            f"{place.world_size} processes (use a multiple of {place.world_size})",
            UNUSABLE,
        )
    return batch_size // place.world_size


def all_sum(values: list[float], place: Distributed, device: torch.device) -> list[float]:
    """Each value summed over the processes (float64, so the sums do not depend on the order of ranks much)."""
    if not place.enabled:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def any_rank(flags: list[bool], place: Distributed, device: torch.device) -> list[bool]:
    """Each flag true on some process, so that every process takes the same decision (stop, skip a step)."""
    if not place.enabled:
        return flags
    tensor = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return [bool(v) for v in tensor.tolist()]


def all_gather(value: Any, place: Distributed) -> list[Any]:
    """Every process's ``value`` (any picklable object), in rank order, on every process."""
    if not place.enabled:
        return [value]
    gathered: list[Any] = [None] * place.world_size
    dist.all_gather_object(gathered, value)
    return gathered


def broadcast(value: Any, place: Distributed) -> Any:
    """Rank 0's ``value`` (any picklable object) on every process."""
    if not place.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
