"""Drive a sweep: skip finished points, (re)start the rest through an executor, print a
progress line per point and record every change in ``DIR/sweep.json``."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .grid import Point
from .state import SweepState, run_finished, sweep_lock

__all__ = ["run_sweep"]


def _ap50(run_dir: Path) -> str:
    try:
        value = json.loads((run_dir / "metrics.json").read_text()).get("bbox/AP50")
    except (OSError, json.JSONDecodeError):
        return ""
    return "" if value is None else f", bbox/AP50 {value:.3f}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def run_sweep(
    points: Sequence[Point],
    *,
    output: str | os.PathLike,
    executor,
    grid_path: str | os.PathLike,
    max_parallel: int | None = 1,
    poll_s: float = 1.0,
    options: dict | None = None,
    echo: Callable[[str], None] = print,
) -> dict:
    """Run every unfinished point of a sweep and wait for them.

    A point whose folder holds its final ``metrics.json`` is skipped; one with a checkpoint
    resumes from it; a failed one is reported with the tail of its log and the others go on.
    A SLURM job recorded by an earlier sweep and still queued or running is waited for, not
    submitted again.

    Args:
        points: from :func:`~astrodet.sweep.grid.expand_grid`.
        output: the sweep folder; point ``p`` runs in ``output/p.name``.
        executor: from :func:`~astrodet.sweep.executors.make_executor`.
        grid_path: the grid file (recorded).
        max_parallel: points running (or queued on the cluster) at once; None: all.
        poll_s: seconds between looks at the running points.
        options: job options to record in ``sweep.json`` (a rerun starts from them).
        echo: where progress lines go.

    Returns:
        ``{"done": [...], "skipped": [...], "failed": {name: log tail}}``; ``done`` counts
        the points finished by this call, ``skipped`` those finished before it.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    n = len(points)
    number = {p.name: i + 1 for i, p in enumerate(points)}

    def say(p: Point, what: str) -> None:
        echo(f"[{number[p.name]}/{n}] {p.name}: {what}")

    result: dict = {"done": [], "skipped": [], "failed": {}}
    with sweep_lock(output):
        state = SweepState(output)
        state.register(points, grid=Path(grid_path), executor=executor.name, options=options)
        pending: list[Point] = []
        active: dict[str, list] = {}
        for p in points:
            run_dir, record = output / p.name, state.points[p.name]
            if run_finished(run_dir):
                if record["state"] != "done":
                    state.update(p.name, state="done")
                result["skipped"].append(p.name)
                say(p, f"done (finished earlier, skipped{_ap50(run_dir)})")
                continue
            job = None
            if record["state"] in ("queued", "running") and record.get("executor") == executor.name:
                job = executor.attach(record.get("job_id"))
            if job is not None:
                active[p.name] = [p, job, time.time(), job.state()]
                state.update(p.name, state=job.state())
                say(p, f"{job.state()} (job {job.job_id} of an earlier sweep)")
                continue
            state.update(p.name, state="queued", job_id=None)
            pending.append(p)
            resumes = (run_dir / "last_checkpoint").exists()
            say(p, "queued" + (" (resumes from its last checkpoint)" if resumes else ""))

        limit = max_parallel or n
        try:
            while pending or active:
                while pending and len(active) < limit:
                    p = pending.pop(0)
                    try:
                        job = executor.submit(p, output / p.name)
                    except Exception as e:  # e.g. sbatch refused the job: the others go on
                        why = f"not submitted: {type(e).__name__}: {e}"
                        state.update(p.name, state="failed", finished=_now(), error=why)
                        result["failed"][p.name] = why
                        say(p, "failed (not submitted)")
                        continue
                    s = job.state()
                    attempts = state.points[p.name].get("attempts", 0) + 1
                    state.update(p.name, state=s, job_id=job.job_id, executor=executor.name,
                                 attempts=attempts, started=_now())  # fmt: skip
                    active[p.name] = [p, job, time.time(), s]
                    say(p, f"{s} ({executor.name} job {job.job_id})")
                time.sleep(poll_s)
                for name in list(active):
                    p, job, started, last = active[name]
                    ok = job.poll()
                    if ok is None:
                        s = job.state()
                        if s != last:
                            active[name][3] = s
                            state.update(name, state=s)
                            say(p, s)
                        continue
                    del active[name]
                    run_dir = output / name
                    seconds = time.time() - started
                    if ok and run_finished(run_dir):
                        state.update(name, state="done", finished=_now(), seconds=round(seconds))
                        result["done"].append(name)
                        say(p, f"done in {seconds:.0f} s{_ap50(run_dir)}")
                        continue
                    why = job.error_tail()
                    if ok:
                        why = f"exited without a final {run_dir / 'metrics.json'}\n{why}"
                    state.update(name, state="failed", finished=_now(), error=why)
                    result["failed"][name] = why
                    say(p, f"failed after {seconds:.0f} s (log: {run_dir})")
        except KeyboardInterrupt:
            for name, (_, job, _, _) in active.items():
                if executor.name == "slurm":
                    continue  # queued and running jobs go on; a rerun waits for them
                job.cancel()
                state.update(name, state="queued")
            echo(f"interrupted: rerun the same command to continue {output}")
            raise
    return result
