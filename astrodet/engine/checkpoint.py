"""Checkpoints: model, optimizer, scheduler, trainer position and every RNG, written
atomically; ``last_checkpoint`` names the newest so ``--resume`` finds it."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from astrodet.utils import atomic_save_torch, atomic_write_text

from . import comm

__all__ = ["Checkpointer", "get_rng_state", "set_rng_state", "unwrap_model"]

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last_checkpoint"


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a (Distributed)DataParallel wrapper, or ``model`` itself."""
    return (
        model.module
        if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel)
        else model
    )


def get_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) RNG states, in plain types and tensors so the
    checkpoint loads with ``torch.load(weights_only=True)``."""
    version, pystate, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(pystate), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    version, pystate, gauss = state["python"]
    random.setstate((version, tuple(pystate), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        if len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        else:
            logger.warning("checkpoint has CUDA RNG states for a different number of devices")


def _strip_prefix(state: dict[str, Any], prefix: str = "module.") -> dict[str, Any]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


class Checkpointer:
    """Save and load training state.

    Every process calls :meth:`save` (the RNG states of all ranks are gathered); only the
    main process writes.

    Args:
        model: the model (a DDP wrapper is unwrapped).
        save_dir: the folder for ``model_XXXXXXX.pth``, ``model_final.pth``, ``last_checkpoint``.
        max_to_keep: keep at most this many periodic checkpoints (None: all).
        **checkpointables: objects with ``state_dict``/``load_state_dict`` saved under their
            keyword (``optimizer``, ``scheduler``, ``trainer``...).
    """

    def __init__(
        self,
        model: nn.Module,
        save_dir: str | os.PathLike | None = None,
        *,
        max_to_keep: int | None = None,
        **checkpointables: Any,
    ):
        self.model = unwrap_model(model)
        self.save_dir = Path(save_dir) if save_dir is not None else None
        self.max_to_keep = max_to_keep
        self.checkpointables = checkpointables
        self._saved: list[Path] = []

    # ------------------------------------------------------------------ saving
    def save(self, name: str, *, iteration: int, **extra: Any) -> Path | None:
        """Write ``save_dir/<name>.pth`` and point ``last_checkpoint`` at it.

        Args:
            name: file stem, e.g. ``model_0000100`` or ``model_final``.
            iteration: completed iterations (a resumed run starts there).
            **extra: more entries for the file.
        """
        rng = comm.all_gather_object(get_rng_state())
        if not comm.is_main_process() or self.save_dir is None:
            return None
        data = {
            "model": self.model.state_dict(),
            "iteration": int(iteration),
            "rng": rng,
            **{k: obj.state_dict() for k, obj in self.checkpointables.items()},
            **extra,
        }
        path = self.save_dir / f"{name}.pth"
        atomic_save_torch(data, path)
        atomic_write_text(self.save_dir / LAST_CHECKPOINT, path.name + "\n")
        logger.info("saved checkpoint %s (iteration %d)", path, iteration)
        if name != "model_final":
            self._saved.append(path)
            while self.max_to_keep and len(self._saved) > self.max_to_keep:
                old = self._saved.pop(0)
                if old.exists() and old != path:
                    old.unlink()
        return path

    # ------------------------------------------------------------------ loading
    def get_checkpoint_file(self) -> Path | None:
        """The file ``last_checkpoint`` names, or None."""
        if self.save_dir is None:
            return None
        marker = self.save_dir / LAST_CHECKPOINT
        if not marker.is_file():
            return None
        path = self.save_dir / marker.read_text().strip()
        if not path.is_file():
            raise FileNotFoundError(f"{marker} names {path.name}, which does not exist")
        return path

    def has_checkpoint(self) -> bool:
        """Whether ``save_dir`` holds a checkpoint to resume from."""
        return self.get_checkpoint_file() is not None

    def load(self, path: str | os.PathLike, *, checkpointables: bool = True) -> dict[str, Any]:
        """Load a checkpoint; the model strictly, then (if ``checkpointables``) the optimizer,
        scheduler, trainer state and RNG states.

        Returns:
            the entries of the file not consumed (e.g. ``iteration``).

        Raises:
            FileNotFoundError: naming ``path``.
            RuntimeError: naming ``path`` and the mismatching keys.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} not found")
        data = torch.load(path, map_location="cpu", weights_only=True)
        state = data.get("model", data) if isinstance(data, dict) else data
        state = _strip_prefix(state)
        try:
            result = self.model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shape mismatches
            raise RuntimeError(f"checkpoint {path} does not match the model: {e}") from None
        if result.missing_keys or result.unexpected_keys:
            raise RuntimeError(
                f"checkpoint {path} does not match the model: "
                f"missing {result.missing_keys[:5]}{'...' if len(result.missing_keys) > 5 else ''}, "
                f"unexpected {result.unexpected_keys[:5]}"
                f"{'...' if len(result.unexpected_keys) > 5 else ''}"
            )
        logger.info("loaded model weights from %s", path)
        if not checkpointables:
            return {k: v for k, v in data.items() if k != "model"}
        for key, obj in self.checkpointables.items():
            if key in data:
                obj.load_state_dict(data[key])
            else:
                logger.warning("checkpoint %s has no %r state; it starts afresh", path, key)
        rng = data.get("rng")
        if rng:
            rank, world = comm.get_rank(), comm.get_world_size()
            if len(rng) != world:
                logger.warning(
                    "checkpoint has RNG states of %d processes, this run has %d", len(rng), world
                )
            set_rng_state(rng[rank] if rank < len(rng) else rng[0])
        return {k: v for k, v in data.items() if k not in ("model", "rng", *self.checkpointables)}

    def resume_or_load(self, path: str | os.PathLike | None, *, resume: bool = True) -> int:
        """With ``resume`` and a checkpoint in ``save_dir``: load everything and return its
        iteration. Otherwise load only model weights from ``path`` (if given) and return 0."""
        if resume:
            last = self.get_checkpoint_file()
            if last is not None:
                return int(self.load(last).get("iteration", 0))
            logger.warning("--resume: no checkpoint in %s; starting from scratch", self.save_dir)
        if path:
            self.load(path, checkpointables=False)
        return 0
