"""The training loop: a ``SimpleTrainer`` whose ``run_step`` does one optimizer step, and
hooks called around it (Detectron2's design)."""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from . import comm
from .events import EventStorage

__all__ = ["HookBase", "SimpleTrainer", "TrainerBase"]

logger = logging.getLogger(__name__)


class HookBase:
    """Called by the trainer: ``before_train``, ``before_step``, ``after_step``,
    ``after_train``. ``self.trainer`` is set on registration. During a step
    ``trainer.iter`` is its 0-based index; ``trainer.iter + 1`` steps are done after it."""

    trainer: TrainerBase

    def before_train(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def before_step(self) -> None:
        pass

    def after_step(self) -> None:
        pass


class TrainerBase:
    """Runs ``run_step`` from ``start_iter`` to ``max_iter`` with hooks around it."""

    def __init__(self) -> None:
        self._hooks: list[HookBase] = []
        self.iter = 0
        self.start_iter = 0
        self.max_iter = 0
        self.storage = EventStorage()

    def register_hooks(self, hooks: Iterable[HookBase | None]) -> None:
        """Append hooks (None entries are skipped); they run in registration order."""
        for h in hooks:
            if h is None:
                continue
            # a weak reference: the trainer owns its hooks, not the other way round
            h.trainer = weakref.proxy(self)
            self._hooks.append(h)

    def train(self, start_iter: int, max_iter: int) -> None:
        """Run iterations ``start_iter .. max_iter - 1``."""
        logger.info("training from iteration %d to %d", start_iter, max_iter)
        self.iter = self.start_iter = start_iter
        self.max_iter = max_iter
        self.storage = EventStorage(start_iter)
        try:
            for h in self._hooks:
                h.before_train()
            for self.iter in range(start_iter, max_iter):
                self.storage.iter = self.iter + 1
                for h in self._hooks:
                    h.before_step()
                self.run_step()
                for h in self._hooks:
                    h.after_step()
            self.iter = max_iter
        finally:
            for h in self._hooks:
                h.after_train()

    def run_step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """State a resumed run needs besides the model, optimizer and scheduler."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def _to_device(targets: Sequence[dict], device) -> list[dict]:
    return [
        {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in t.items()}
        for t in targets
    ]


class SimpleTrainer(TrainerBase):
    """One step: next batch, ``loss_dict = model(images, targets)``, backward on their sum,
    optimizer step; losses and data time go to the event storage.

    Args:
        model: a torchvision-style detector (train mode returns a dict of losses).
        data_loader: an iterable of ``(images, targets, dicts)`` batches (the train loader;
            its ``state_dict`` is checkpointed with the trainer's).
        optimizer: the optimizer.
        device: where images and targets go.
        amp: autocast the forward pass (bfloat16, which needs no loss scaling).
        grad_clip: clip the gradient norm to this value (None: no clipping).
    """

    def __init__(
        self,
        model: nn.Module,
        data_loader: Iterable,
        optimizer: torch.optim.Optimizer,
        *,
        device: torch.device | str = "cpu",
        amp: bool = False,
        grad_clip: float | None = None,
    ):
        super().__init__()
        model.train()
        self.model = model
        self.data_loader = data_loader
        self.optimizer = optimizer
        self.device = torch.device(device)
        self.amp = amp
        self.grad_clip = grad_clip
        self._data_loader_iter_obj = None

    @property
    def _data_loader_iter(self):
        # created on first use, after a resume has set the loader's position
        if self._data_loader_iter_obj is None:
            self._data_loader_iter_obj = iter(self.data_loader)
        return self._data_loader_iter_obj

    def _autocast(self):
        if not self.amp:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def run_step(self) -> None:
        assert self.model.training, "SimpleTrainer: the model was switched to eval mode"
        start = time.perf_counter()
        images, targets, _ = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        images = [im.to(self.device, non_blocking=True) for im in images]
        targets = _to_device(targets, self.device)
        with self._autocast():
            loss_dict = self.model(images, targets)
        losses = sum(v.float() for v in loss_dict.values())
        if not torch.isfinite(losses):
            raise FloatingPointError(
                f"loss became infinite or NaN at iteration {self.iter + 1}: "
                + ", ".join(f"{k}={v.item():.4g}" for k, v in loss_dict.items())
            )
        self.optimizer.zero_grad(set_to_none=True)
        losses.backward()
        if self.grad_clip:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.optimizer.step()
        self._write_metrics(loss_dict, data_time)

    def _write_metrics(self, loss_dict: dict[str, torch.Tensor], data_time: float) -> None:
        values = {k: v.detach().float().item() for k, v in loss_dict.items()}
        values["data_time"] = data_time
        values = comm.reduce_scalars(values, device=self.device)
        values["total_loss"] = sum(v for k, v in values.items() if k != "data_time")
        self.storage.put_scalars(**values)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if hasattr(self.data_loader, "state_dict"):
            state["data_loader"] = self.data_loader.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "data_loader" in state and hasattr(self.data_loader, "load_state_dict"):
            self.data_loader.load_state_dict(state["data_loader"])
