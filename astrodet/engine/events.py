"""Training metrics: an ``EventStorage`` the trainer and hooks put scalars into, and writers
for json lines (``metrics.jsonl``) and TensorBoard."""

from __future__ import annotations

import json
import logging
import math
import os
from collections import defaultdict, deque
from pathlib import Path

from astrodet.utils import atomic_write_text

__all__ = ["EventStorage", "JSONWriter", "TensorboardWriter"]

logger = logging.getLogger(__name__)


class EventStorage:
    """Scalars by name, each value tagged with the iteration it belongs to.

    ``iter`` is the number of completed iterations once the current one finishes, so the
    scalars of the first step carry iteration 1 and the last ones ``max_iter``.

    Args:
        start_iter: the iteration to start counting from.
        window: how many recent values of each scalar are kept.
    """

    def __init__(self, start_iter: int = 0, window: int = 10000):
        self.iter = start_iter
        self._history: dict[str, deque] = defaultdict(lambda: deque(maxlen=window))
        self._flush = False

    def put_scalar(self, name: str, value: float, *, flush: bool = False) -> None:
        """Record ``value`` for the current iteration; ``flush`` asks the writers to write
        at this iteration even off their period (evaluation results)."""
        self._history[name].append((float(value), self.iter))
        self._flush = self._flush or flush

    def put_scalars(self, *, flush: bool = False, **values: float) -> None:
        """Record several scalars (see :meth:`put_scalar`)."""
        for k, v in values.items():
            self.put_scalar(k, v, flush=flush)

    def history(self, name: str) -> list[tuple[float, int]]:
        """The kept ``(value, iteration)`` pairs of ``name``."""
        return list(self._history.get(name, ()))

    def latest(self) -> dict[str, tuple[float, int]]:
        """The newest ``(value, iteration)`` of every scalar."""
        return {k: h[-1] for k, h in self._history.items() if h}

    def mean_since(self, after_iter: int) -> dict[str, float]:
        """Mean of every scalar over the iterations ``> after_iter``."""
        out = {}
        for k, h in self._history.items():
            vals = [v for v, it in h if it > after_iter]
            if vals:
                out[k] = sum(vals) / len(vals)
        return out

    def pop_flush(self) -> bool:
        """Whether a flush was asked for since the last call."""
        flush, self._flush = self._flush, False
        return flush


class JSONWriter:
    """Appends one json object per write to ``path``: ``{"iteration": n, name: value, ...}``.

    Args:
        path: the ``metrics.jsonl`` file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def truncate_after(self, iteration: int) -> None:
        """Drop records past ``iteration`` (a resumed run rewrites what the interrupted run
        wrote after its last checkpoint), and any torn last line."""
        if not self.path.exists():
            return
        kept, dropped = [], 0
        for line in self.path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                dropped += 1
                continue
            if rec.get("iteration", 0) <= iteration:
                kept.append(line)
            else:
                dropped += 1
        if dropped:
            logger.info("%s: dropped %d records after iteration %d", self.path, dropped, iteration)
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def write(self, iteration: int, scalars: dict[str, float]) -> None:
        """Append one record."""
        rec = {"iteration": iteration}
        rec.update({k: (v if math.isfinite(v) else None) for k, v in sorted(scalars.items())})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
            f.flush()

    def close(self) -> None:
        pass


class TensorboardWriter:
    """TensorBoard event files in ``log_dir``.

    Args:
        log_dir: the folder.
        purge_step: on resume, events at and after this step from an earlier run are hidden.
    """

    def __init__(self, log_dir: str | os.PathLike, *, purge_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def write(self, iteration: int, scalars: dict[str, float]) -> None:
        for k, v in scalars.items():
            self._writer.add_scalar(k, v, iteration)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
