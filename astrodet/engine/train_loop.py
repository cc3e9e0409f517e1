"""The training loop: a ``SimpleTrainer`` whose ``run_step`` does one optimizer step, and
hooks called around it (Detectron2's design)."""

from __future__ import annotations

import logging
import math
import time
import weakref
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from astrodet.utils.precision import autocast, grad_scaler, resolve_precision

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

    The losses stay on the device until ``log_period`` (or one of ``sync_periods``, or the
    last iteration) comes round: then every pending iteration's losses reach the host in one
    copy, are checked for NaN/inf and recorded under their own iteration. So a GPU is never
    made to wait for the host in between, and the writers see the same means as if each
    iteration had been recorded at once.

    Args:
        model: a torchvision-style detector (train mode returns a dict of losses).
        data_loader: an iterable of ``(images, targets, dicts)`` batches (the train loader;
            its ``state_dict`` is checkpointed with the trainer's).
        optimizer: the optimizer.
        device: where images and targets go.
        amp: mixed precision: bfloat16 autocast where the device supports it (no loss
            scaling), else float16 with a ``GradScaler``. Read when ``precision`` is None.
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"`` or ``"auto"``
            (:func:`astrodet.utils.precision.resolve_precision`); overrides ``amp``.
        grad_clip: clip the gradient norm to this value (None: no clipping).
        log_period: iterations between transfers of the losses to the host (1: every one).
        sync_periods: further periods at which they are transferred (evaluation,
            checkpoints), so a write or checkpoint there sees every loss up to it and a
            NaN loss stops the run before a checkpoint holds its weights.
    """

    def __init__(
        self,
        model: nn.Module,
        data_loader: Iterable,
        optimizer: torch.optim.Optimizer,
        *,
        device: torch.device | str = "cpu",
        amp: bool = False,
        precision: str | None = None,
        grad_clip: float | None = None,
        log_period: int = 1,
        sync_periods: Sequence[int] = (),
    ):
        super().__init__()
        model.train()
        self.model = model
        self.data_loader = data_loader
        self.optimizer = optimizer
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, device=self.device, amp=amp)
        self.amp = self.precision != "fp32"
        self.grad_scaler = grad_scaler(self.precision, self.device)
        self.grad_clip = grad_clip
        self.log_period = max(1, int(log_period or 1))
        self.sync_periods = tuple(int(p) for p in sync_periods if p and int(p) > 0)
        # optional ``phase(name)`` context manager around forward, backward and the
        # optimizer step (the benchmark's step timers); None times nothing
        self.step_timer = None
        self._pending: list[tuple[int, dict[str, torch.Tensor], float]] = []
        self._data_loader_iter_obj = None
        if self.precision != "fp32":
            logger.info(
                "training in %s autocast%s",
                self.precision,
                " with loss scaling" if self.grad_scaler is not None else "",
            )

    @property
    def _data_loader_iter(self):
        # created on first use, after a resume has set the loader's position
        if self._data_loader_iter_obj is None:
            self._data_loader_iter_obj = iter(self.data_loader)
        return self._data_loader_iter_obj

    def _autocast(self):
        return autocast(self.precision, self.device)

    def _phase(self, name: str):
        return nullcontext() if self.step_timer is None else self.step_timer.phase(name)

    def run_step(self) -> None:
        assert self.model.training, "SimpleTrainer: the model was switched to eval mode"
        start = time.perf_counter()
        images, targets, _ = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        images = [im.to(self.device, non_blocking=True) for im in images]
        targets = _to_device(targets, self.device)
        with self._phase("forward"):
            with self._autocast():
                loss_dict = self.model(images, targets)
            losses = sum(v.float() for v in loss_dict.values())
        self.optimizer.zero_grad(set_to_none=True)
        scaler = self.grad_scaler
        with self._phase("backward"):
            (losses if scaler is None else scaler.scale(losses)).backward()
        with self._phase("step"):
            if self.grad_clip:
                if scaler is not None:
                    scaler.unscale_(self.optimizer)  # clip the true gradients
                params = [p for g in self.optimizer.param_groups for p in g["params"]]
                torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
            if scaler is None:
                self.optimizer.step()
            else:
                scaler.step(self.optimizer)
                scaler.update()
        done = self.iter + 1
        self._pending.append((done, {k: v.detach() for k, v in loss_dict.items()}, data_time))
        if self._sync_due(done):
            self.flush_metrics()

    def _sync_due(self, done: int) -> bool:
        return (
            done % self.log_period == 0
            or done >= self.max_iter
            or any(done % p == 0 for p in self.sync_periods)
        )

    def flush_metrics(self) -> None:
        """Bring the pending losses to the host (one copy, one reduction over ranks), stop
        on a NaN/inf one, and record them with the data time under their own iterations.

        Raises:
            FloatingPointError: a loss of a pending iteration is NaN or infinite (on every
                rank alike: the check reads the values averaged over ranks).
        """
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        values = [v.float().reshape(()) for _, losses, _ in pending for v in losses.values()]
        flat = iter(torch.stack(values).cpu().tolist() if values else [])
        records = []
        for done, losses, data_time in pending:
            rec = {k: next(flat) for k in losses}
            rec["data_time"] = data_time
            records.append((done, rec))
        if comm.get_world_size() > 1:
            keyed = {f"{i}|{k}": v for i, (_, rec) in enumerate(records) for k, v in rec.items()}
            keyed = comm.reduce_scalars(keyed, device=self.device)
            records = [
                (done, {k: keyed[f"{i}|{k}"] for k in rec}) for i, (done, rec) in enumerate(records)
            ]
        for done, rec in records:
            losses = {k: v for k, v in rec.items() if k != "data_time"}
            if not all(math.isfinite(v) for v in losses.values()):
                raise FloatingPointError(
                    f"loss became infinite or NaN at iteration {done}: "
                    + ", ".join(f"{k}={v:.4g}" for k, v in losses.items())
                )
        storage, current = self.storage, self.storage.iter
        try:
            for done, rec in records:
                storage.iter = done  # each value under the iteration it belongs to
                rec["total_loss"] = sum(v for k, v in rec.items() if k != "data_time")
                storage.put_scalars(**rec)
        finally:
            storage.iter = current

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if hasattr(self.data_loader, "state_dict"):
            state["data_loader"] = self.data_loader.state_dict()
        if self.grad_scaler is not None:
            state["grad_scaler"] = self.grad_scaler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "data_loader" in state and hasattr(self.data_loader, "load_state_dict"):
            self.data_loader.load_state_dict(state["data_loader"])
        if "grad_scaler" in state and self.grad_scaler is not None:
            self.grad_scaler.load_state_dict(state["grad_scaler"])
