"""Hooks for the training loop: timing, lr schedule, checkpoints, evaluation, metric writers
and a progress bar."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

import torch

from . import comm
from .checkpoint import Checkpointer
from .train_loop import HookBase

__all__ = [
    "EvalHook",
    "IterationTimer",
    "LRMultiplier",
    "LRScheduler",
    "PeriodicCheckpointer",
    "PeriodicWriter",
    "ProgressBar",
]

logger = logging.getLogger(__name__)


class LRMultiplier(torch.optim.lr_scheduler.LRScheduler):
    """Each param group's lr = its initial lr x ``multiplier(iteration / max_iter)``.

    ``multiplier`` is any callable of the training progress in ``[0, 1)``, such as an
    fvcore ``ParamScheduler`` (``CosineParamScheduler``, ``WarmupParamScheduler`` ...).
    Stepped once per iteration.

    Args:
        optimizer: the optimizer.
        multiplier: callable ``where -> factor``.
        max_iter: total iterations.
        last_iter: the last iteration done (-1: none).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        multiplier: Callable[[float], float],
        max_iter: int,
        last_iter: int = -1,
    ):
        self._multiplier = multiplier
        self._max_iter = max_iter
        super().__init__(optimizer, last_epoch=last_iter)

    def state_dict(self) -> dict:
        # the multiplier is rebuilt from the config; only the position is state
        return {"base_lrs": self.base_lrs, "last_epoch": self.last_epoch}

    def load_state_dict(self, state_dict: dict) -> None:
        self.base_lrs = list(state_dict["base_lrs"])
        self.last_epoch = int(state_dict["last_epoch"])
        self._last_lr = self._lrs()

    def _lrs(self) -> list[float]:
        factor = float(self._multiplier(min(self.last_epoch / max(self._max_iter, 1), 1.0)))
        return [base * factor for base in self.base_lrs]

    def get_lr(self) -> list[float]:
        return self._lrs()


class IterationTimer(HookBase):
    """Puts each step's wall time (``time``) into the storage."""

    def before_step(self) -> None:
        self._start = time.perf_counter()

    def after_step(self) -> None:
        self.trainer.storage.put_scalar("time", time.perf_counter() - self._start)


class LRScheduler(HookBase):
    """Steps the scheduler after every iteration and records the lr (of the group with the
    most parameters, as Detectron2 does)."""

    def __init__(self, scheduler: torch.optim.lr_scheduler.LRScheduler, optimizer=None):
        self.scheduler = scheduler
        self.optimizer = optimizer or scheduler.optimizer

    def before_train(self) -> None:
        groups = self.optimizer.param_groups
        self._group = max(range(len(groups)), key=lambda i: len(groups[i]["params"]))

    def after_step(self) -> None:
        self.trainer.storage.put_scalar("lr", self.optimizer.param_groups[self._group]["lr"])
        self.scheduler.step()


class PeriodicCheckpointer(HookBase):
    """Saves ``model_{iteration:07d}.pth`` every ``period`` iterations and
    ``model_final.pth`` at ``max_iter`` (``iteration`` = completed iterations).

    Args:
        checkpointer: the :class:`Checkpointer`.
        period: iterations between checkpoints (<= 0: only the final one).
    """

    def __init__(self, checkpointer: Checkpointer, period: int):
        self.checkpointer = checkpointer
        self.period = int(period or 0)

    def after_step(self) -> None:
        done = self.trainer.iter + 1
        if done >= self.trainer.max_iter:
            self.checkpointer.save("model_final", iteration=done)
        elif self.period > 0 and done % self.period == 0:
            self.checkpointer.save(f"model_{done:07d}", iteration=done)


class EvalHook(HookBase):
    """Runs ``eval_function() -> {name: value}`` every ``period`` iterations and after the
    last one; the results go to the storage (and so to the writers).

    Args:
        period: iterations between evaluations (<= 0: only after the last).
        eval_function: returns flat metrics, e.g. ``{"bbox/AP50": 0.9}`` (``{}`` off rank 0).
    """

    def __init__(self, period: int, eval_function: Callable[[], dict]):
        self.period = int(period or 0)
        self.eval_function = eval_function

    def _do_eval(self) -> None:
        results = self.eval_function() or {}
        scalars = {
            k: float(v)
            for k, v in results.items()
            if isinstance(v, int | float) and math.isfinite(float(v))
        }
        self.trainer.storage.put_scalars(flush=True, **scalars)
        comm.synchronize()

    def after_step(self) -> None:
        done = self.trainer.iter + 1
        if done >= self.trainer.max_iter or (self.period > 0 and done % self.period == 0):
            self._do_eval()


class PeriodicWriter(HookBase):
    """Every ``period`` iterations, after the last one and whenever an evaluation reports,
    writes the means of the scalars since the previous write to the writers and logs a line.

    Args:
        writers: objects with ``write(iteration, scalars)`` and ``close()``.
        period: iterations between writes.
    """

    def __init__(self, writers: Sequence, period: int = 20):
        self.writers = list(writers)
        self.period = max(1, int(period or 1))

    def before_train(self) -> None:
        self._last = self.trainer.start_iter

    def _write(self) -> None:
        storage = self.trainer.storage
        done = storage.iter
        scalars = storage.mean_since(self._last)
        self._last = done
        if not scalars:
            return
        for w in self.writers:
            w.write(done, scalars)
        if "total_loss" in scalars:
            losses = "  ".join(
                f"{k}: {v:.4g}" for k, v in sorted(scalars.items()) if k.startswith("loss")
            )
            logger.info(
                "iter %d/%d  total_loss: %.4g  %s  lr: %.3g",
                done,
                self.trainer.max_iter,
                scalars["total_loss"],
                losses,
                scalars.get("lr", float("nan")),
            )

    def after_step(self) -> None:
        done = self.trainer.iter + 1
        flush = self.trainer.storage.pop_flush()
        if flush or done % self.period == 0 or done >= self.trainer.max_iter:
            self._write()

    def after_train(self) -> None:
        for w in self.writers:
            w.close()


class ProgressBar(HookBase):
    """A tqdm bar over the iterations with the running loss; tqdm shows the ETA."""

    def __init__(self, smoothing_window: int = 20):
        self.window = smoothing_window

    def before_train(self) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=self.trainer.max_iter,
            initial=self.trainer.start_iter,
            desc="train",
            unit="it",
            dynamic_ncols=True,
        )

    def after_step(self) -> None:
        hist = self.trainer.storage.history("total_loss")[-self.window :]
        if hist:
            self._bar.set_postfix(loss=f"{sum(v for v, _ in hist) / len(hist):.4f}", refresh=False)
        self._bar.update(1)

    def after_train(self) -> None:
        self._bar.close()
