"""Where a training step's time goes: forward, backward and the optimizer step, timed inside
``SimpleTrainer.run_step`` (its ``step_timer``), against the wall clock of whole iterations.

On a CPU the phases are wall-clock spans; on a GPU they are CUDA events on the stream, read
once at the end, so the timing itself makes the host wait for nothing. What is left of the
wall clock is the loop's overhead: data loading, host-to-device copies, logging and hooks
(and, on a GPU, time the GPU waits for the host).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from astrodet.engine import HookBase

PHASES = ("forward", "backward", "step")
REPO = Path(__file__).resolve().parents[2]
STEP_CONFIG = REPO / "configs" / "synthetic_vit_small.py"

logger = logging.getLogger("benchmark")


class WallPhaseTimer:
    """``phase(name)``: wall-clock seconds of each phase, summed since the last ``reset``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._seconds = dict.fromkeys(PHASES, 0.0)

    @contextlib.contextmanager
    def phase(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self._seconds[name] = self._seconds.get(name, 0.0) + time.perf_counter() - start

    def seconds(self) -> dict[str, float]:
        return dict(self._seconds)


class CudaPhaseTimer:
    """``phase(name)``: CUDA events around each phase on the current stream; their spans are
    summed when :meth:`seconds` is read (one synchronisation). A span covers the GPU's work
    of the phase and any wait for the host inside it, so their sum is an upper bound of the
    time the GPU is busy."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        self._events: list[tuple[str, Any, Any]] = []

    @contextlib.contextmanager
    def phase(self, name: str):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        try:
            yield
        finally:
            end.record()
            self._events.append((name, start, end))

    def seconds(self) -> dict[str, float]:
        torch.cuda.synchronize(self.device)
        out = dict.fromkeys(PHASES, 0.0)
        for name, start, end in self._events:
            out[name] = out.get(name, 0.0) + start.elapsed_time(end) / 1000.0
        return out


def phase_timer(device: torch.device):
    """The timer for ``device``: CUDA events on a GPU, wall clock elsewhere."""
    return CudaPhaseTimer(device) if device.type == "cuda" else WallPhaseTimer()


class _IterationClock(HookBase):
    """A hook (registered last) that notes the wall clock at the end of every iteration and
    resets the phase timer after the warm-up, so both cover the same iterations."""

    def __init__(self, timer, warmup: int) -> None:
        self.timer, self.warmup = timer, warmup
        self.marks: list[float] = []

    def after_step(self) -> None:
        self.marks.append(time.perf_counter())
        if len(self.marks) == self.warmup:
            self.timer.reset()


def bench_step_overhead(
    *,
    config: str | Path = STEP_CONFIG,
    iters: int = 10,
    warmup: int = 2,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """The fraction of a training iteration spent outside forward, backward and the
    optimizer step, on the config's own device, threads and data, with the real trainer
    and its per-step hooks (timer, lr schedule, metric writer, progress bar); the periodic
    evaluation and checkpoints are left out: they are not per-step costs.

    Args:
        config: a training config (default ``configs/synthetic_vit_small.py``).
        iters: timed iterations, after ``warmup`` untimed ones.
        warmup: iterations before the timing starts (the first ones allocate memory).
        overrides: further ``KEY=VALUE`` config overrides.

    Returns:
        ``overhead_fraction`` in [0, 1], the seconds per iteration and per phase.
    """
    from astrodet.config import LazyConfig
    from astrodet.engine import EvalHook, PeriodicCheckpointer, configure_cpu_threads, defaults

    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="astrodet-bench-step-") as out:
        cfg = LazyConfig.load(str(config))
        cfg = LazyConfig.apply_overrides(
            cfg,
            [
                f"train.output_dir={out}",
                f"train.max_iter={warmup + iters}",
                "train.epochs=null",
                "train.init_checkpoint=null",
                *(overrides or []),
            ],
        )
        try:
            # the config's threads, as a training run has them
            used_threads = configure_cpu_threads(cfg)
            trainer, _, _ = defaults.build_trainer(cfg)
            timer = phase_timer(trainer.device)
            trainer.step_timer = timer
            trainer._hooks = [
                h for h in trainer._hooks if not isinstance(h, EvalHook | PeriodicCheckpointer)
            ]
            clock = _IterationClock(timer, warmup)
            trainer.register_hooks([clock])
            trainer.train(0, warmup + iters)
            phases = timer.seconds()
        finally:
            torch.set_num_threads(threads)
    marks = clock.marks[warmup - 1 :] if warmup > 0 else clock.marks
    wall = marks[-1] - marks[0] if len(marks) > 1 else float("nan")
    n = len(marks) - 1
    inside = sum(phases.get(p, 0.0) for p in PHASES)
    fraction = min(1.0, max(0.0, 1.0 - inside / wall)) if wall > 0 else float("nan")
    return {
        "config": str(Path(config).resolve().relative_to(REPO))
        if Path(config).resolve().is_relative_to(REPO)
        else str(config),
        "device": str(trainer.device),
        "precision": trainer.precision,
        "threads": used_threads,
        "iterations": n,
        "warmup": warmup,
        "seconds_per_iteration": wall / n if n > 0 else float("nan"),
        "phase_seconds_per_iteration": {p: phases.get(p, 0.0) / n for p in PHASES} if n else {},
        "overhead_fraction": fraction,
    }


def rows(results: dict[str, Any]) -> list[str]:
    """The CPU row of the Markdown table (in the gpu part of ``benchmark.json``)."""
    from .common import fmt

    r = (results.get("gpu") or {}).get("step_overhead")
    if not r:
        return []
    if "skipped" in r:
        return [f"| gpu | training step overhead (CPU) | skipped | {r['skipped']} |"]
    ph = r["phase_seconds_per_iteration"]
    return [
        f"| gpu | training step outside forward/backward/step ({r['device']}) | "
        f"{fmt(100 * r['overhead_fraction'], '.1f')} % | {r['config']}, {r['iterations']} "
        f"iterations, {fmt(r['seconds_per_iteration'])} s each (forward {fmt(ph['forward'])}, "
        f"backward {fmt(ph['backward'])}, step {fmt(ph['step'])} s); {r['threads']} thread(s); "
        "periodic evaluation and checkpoints not counted |"
    ]
