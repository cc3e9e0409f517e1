"""``DIR/sweep.json``: the points of a sweep and where each stands, so that a second
``tools/sweep.py`` on the same folder reports and continues; and what "finished" means."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from astrodet.utils import atomic_write_json

from .grid import Point

__all__ = ["STATES", "SWEEP_FILE", "SweepState", "pid_alive", "run_finished", "sweep_lock"]

SWEEP_FILE = "sweep.json"
LOCK_FILE = ".sweep.lock"
STATES = ("queued", "running", "done", "failed")
# what the engine writes (astrodet.engine.defaults): final metrics, final checkpoint
_METRICS, _FINAL, _LOG = "metrics.json", "model_final.pth", "metrics.jsonl"


def _final_eval_logged(run_dir: Path) -> bool:
    """True when ``metrics.jsonl`` holds an evaluation at the run's last iteration."""
    last, last_eval = -1, -1
    try:
        with open(run_dir / _LOG) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill
                it = int(record.get("iteration", -1))
                last = max(last, it)
                if any(str(k).startswith("bbox/") for k in record):
                    last_eval = max(last_eval, it)
    except OSError:
        return False
    return last_eval >= last >= 0


def run_finished(run_dir: str | os.PathLike) -> bool:
    """True when a run folder holds its final evaluation and its final checkpoint.

    A periodic evaluation also writes ``metrics.json``, so the file alone does not mean the
    run ended: with ``model_final.pth``, its evaluation must be the last one, i.e. logged at
    the last iteration in ``metrics.jsonl`` (the engine evaluates, then saves) or written
    after ``model_final.pth`` (an evaluation of the final checkpoint).
    """
    run_dir = Path(run_dir)
    try:
        metrics = (run_dir / _METRICS).stat().st_mtime
        final = (run_dir / _FINAL).stat().st_mtime
    except OSError:
        return False
    return metrics >= final or _final_eval_logged(run_dir)


class SweepState:
    """The record of a sweep folder.

    Args:
        output: the sweep folder (``sweep.json`` inside).
    """

    def __init__(self, output: str | os.PathLike):
        self.path = Path(output) / SWEEP_FILE
        self.data: dict = {"version": 1, "points": {}}
        if self.path.exists():
            try:
                self.data = json.loads(self.path.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{self.path} is not valid json ({e}); move it away") from None

    @property
    def options(self) -> dict:
        """The job options (``tools/sweep.py`` names) given to the sweep so far."""
        return dict(self.data.get("options", {}))

    @property
    def points(self) -> dict[str, dict]:
        return self.data["points"]

    def register(
        self, points: Sequence[Point], *, grid: Path, executor: str, options: dict | None = None
    ) -> None:
        """Record the grid's points (and the job options given); a point already recorded
        must have the same config and overrides (its run folder would otherwise continue a
        different experiment).

        Raises:
            ValueError: naming the point whose config or overrides changed.
        """
        for p in points:
            old = self.points.get(p.name)
            if old is not None and (old["config"], old["overrides"]) != (
                str(p.config),
                p.overrides,
            ):
                raise ValueError(
                    f"point {p.name} in {self.path.parent} was started as {old['config']} "
                    f"{' '.join(old['overrides'])}; it is now {p.config} {' '.join(p.overrides)}. "
                    "Use another --output folder for a changed grid"
                )
            record = old or {"state": "queued", "attempts": 0}
            record.update(p.to_json())
            self.points[p.name] = record
        self.data.update(grid=str(grid), executor=executor)
        if options is not None:
            self.data["options"] = options
        self.save()

    def update(self, name: str, **fields) -> None:
        self.points[name].update(fields, updated=time.strftime("%Y-%m-%dT%H:%M:%S"))
        self.save()

    def save(self) -> None:
        atomic_write_json(self.path, self.data)

    def counts(self, names: Sequence[str] | None = None) -> dict[str, int]:
        names = self.points if names is None else names
        out = dict.fromkeys(STATES, 0)
        for n in names:
            out[self.points[n]["state"]] += 1
        return out


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def sweep_lock(output: str | os.PathLike) -> Iterator[None]:
    """Hold ``DIR/.sweep.lock`` while this process drives the sweep.

    Raises:
        RuntimeError: another live ``tools/sweep.py`` on this host holds the folder.
    """
    path = Path(output) / LOCK_FILE
    host = socket.gethostname()
    try:
        other = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        other = None
    if other and other.get("host") == host and other.get("pid") != os.getpid():
        if pid_alive(int(other["pid"])):
            raise RuntimeError(
                f"another tools/sweep.py (pid {other['pid']}) is running on {path.parent}; "
                "wait for it or stop it first"
            )
    atomic_write_json(path, {"host": host, "pid": os.getpid()})
    try:
        yield
    finally:
        try:
            path.unlink()
        except OSError:
            pass
