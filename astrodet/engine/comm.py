"""Process-group helpers: rank, world size, barriers and gathers that also work unlaunched."""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "all_gather_object",
    "get_local_rank",
    "get_local_size",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "reduce_scalars",
    "synchronize",
]


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    """Number of processes in the default group (1 when not distributed)."""
    return dist.get_world_size() if _initialized() else 1


def get_rank() -> int:
    """This process's global rank (0 when not distributed)."""
    return dist.get_rank() if _initialized() else 0


def get_local_rank() -> int:
    """This process's rank on its machine (``$LOCAL_RANK``, set by torchrun and ``launch``)."""
    return int(os.environ.get("LOCAL_RANK", 0)) if _initialized() else 0


def get_local_size() -> int:
    """Number of processes on this machine (``$LOCAL_WORLD_SIZE``; 1 when not distributed)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", 1)) if _initialized() else 1


def is_main_process() -> bool:
    """True on global rank 0: the only process that writes files."""
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes (no-op when not distributed)."""
    if get_world_size() > 1:
        dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` when not distributed)."""
    if get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def reduce_scalars(
    values: dict[str, float], device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Mean of each scalar over all ranks (the same keys on every rank)."""
    if get_world_size() == 1 or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= get_world_size()
    return dict(zip(keys, t.tolist()))
