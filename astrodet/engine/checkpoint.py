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

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "Checkpointer",
    "get_rng_state",
    "last_checkpoint",
    "read_model_state",
    "set_rng_state",
    "state_mismatch",
    "unwrap_model",
]

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


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unreadable, or not fitting the model."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's weights do not fit the model (another architecture or size)."""


def _torch_load(path: Path, *, mmap: bool = False) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError...
        if mmap:  # files in torch's legacy format cannot be mapped
            return _torch_load(path)
        raise CheckpointError(f"checkpoint {path} cannot be read: {e}") from e


def last_checkpoint(save_dir: str | os.PathLike) -> Path | None:
    """The file ``save_dir/last_checkpoint`` names, or None when there is no such marker.

    Raises:
        FileNotFoundError: the marker names a file that does not exist.
    """
    marker = Path(save_dir) / LAST_CHECKPOINT
    if not marker.is_file():
        return None
    path = marker.parent / marker.read_text().strip()
    if not path.is_file():
        raise FileNotFoundError(f"{marker} names {path.name}, which does not exist")
    return path


def read_model_state(path: str | os.PathLike, *, mmap: bool = False) -> dict[str, Any]:
    """The model weights of a checkpoint file (a ``model`` entry or a bare state dict),
    without a DDP ``module.`` prefix.

    Args:
        path: the checkpoint.
        mmap: map the file instead of reading it (cheap when only names and shapes are
            looked at).

    Raises:
        FileNotFoundError: naming ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    data = _torch_load(path, mmap=mmap)
    state = data.get("model", data) if isinstance(data, dict) else data
    return _strip_prefix(state)


def _listed(keys: list[str]) -> str:
    return f"{keys[:5]}{'...' if len(keys) > 5 else ''}"


def state_mismatch(model: nn.Module, state: dict[str, Any]) -> str | None:
    """How ``state`` fails to fit ``model`` (missing, unexpected and reshaped tensors), or
    None when it fits. Works on a model built on the ``meta`` device."""
    own = unwrap_model(model).state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [
        f"{k}: {tuple(state[k].shape)} in the checkpoint, {tuple(own[k].shape)} in the model"
        for k in own
        if k in state
        and hasattr(state[k], "shape")
        and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if not (missing or unexpected or reshaped):
        return None
    parts = [
        f"{name} {_listed(keys)}"
        for name, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shapes differ:", reshaped),
        )
        if keys
    ]
    return ", ".join(parts)


def _trained_with(path: Path) -> str:
    """Where the config a checkpoint was trained with is (``config.yaml`` beside it, as
    ``train_net.py`` writes it) and its backbone, for error messages; '' when there is none."""
    config = path.parent / "config.yaml"
    if not config.is_file():
        return ""
    try:
        from omegaconf import OmegaConf

        backbone = OmegaConf.select(OmegaConf.load(config), "model.backbone", default=None)
        what = [str(backbone.get("_target_", "")).rsplit(".", 1)[-1]]
        what += [
            f"{k}={backbone.get(k)}" for k in ("trunk", "depth") if backbone.get(k) is not None
        ]
        if backbone.get("trunk_kwargs") is not None:
            kwargs = OmegaConf.to_container(backbone.get("trunk_kwargs"), resolve=False)
            what.append(f"trunk_kwargs={kwargs}")
        detail = f" (model.backbone: {', '.join(w for w in what if w)})"
    except Exception:  # a damaged or foreign yaml: name the file, nothing more
        detail = ""
    return f"; it was trained with {config}{detail}: give that file as --config-file"


def mismatch_error(path: str | os.PathLike, problem: str) -> CheckpointMismatchError:
    """The error for checkpoint ``path`` not fitting the model, naming the config it was
    trained with when its run folder has one."""
    path = Path(path)
    return CheckpointMismatchError(
        f"checkpoint {path} does not match the model of this config: {problem}{_trained_with(path)}"
    )


class Checkpointer:
    """Save and load training state.

    Every process calls :meth:`save` (the RNG states of all ranks are gathered); only the
    main process writes.

    Args:
        model: the model (a DDP wrapper is unwrapped).
        save_dir: the folder for ``model_XXXXXXX.pth``, ``model_final.pth``, ``last_checkpoint``.
        max_to_keep: keep at most this many periodic checkpoints (None: all).
        meta: facts about the training a user of the weights needs (e.g. the beam size in
            pixels of the training images), saved as the ``meta`` entry of every file.
        **checkpointables: objects with ``state_dict``/``load_state_dict`` saved under their
            keyword (``optimizer``, ``scheduler``, ``trainer``...).
    """

    def __init__(
        self,
        model: nn.Module,
        save_dir: str | os.PathLike | None = None,
        *,
        max_to_keep: int | None = None,
        meta: dict[str, Any] | None = None,
        **checkpointables: Any,
    ):
        self.model = unwrap_model(model)
        self.save_dir = Path(save_dir) if save_dir is not None else None
        self.max_to_keep = max_to_keep
        self.meta = dict(meta) if meta else None
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
            **({"meta": self.meta} if self.meta else {}),
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
        return last_checkpoint(self.save_dir) if self.save_dir is not None else None

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
            CheckpointError: the file cannot be read, naming it.
            CheckpointMismatchError: naming ``path``, the mismatching keys and the config
                it was trained with (``config.yaml`` beside it) where there is one.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} not found")
        data = _torch_load(path)
        state = _strip_prefix(data.get("model", data) if isinstance(data, dict) else data)
        problem = state_mismatch(self.model, state)
        if problem:
            raise mismatch_error(path, problem)
        self.model.load_state_dict(state)
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
