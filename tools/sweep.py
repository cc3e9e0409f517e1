#!/usr/bin/env python
"""Run an experiment grid: every point a ``tools/train_net.py`` run in its own folder.

Points run here one at a time (``--executor local``, ``--max-parallel N``), as submitit jobs
on this machine (``submitit-local``) or on a SLURM cluster (``slurm``: one job per point,
DDP over its GPUs; preempted and timed-out jobs are requeued and resume). Finished points
are skipped and interrupted ones resume, so the same command continues a sweep; the
state is in ``OUTPUT/sweep.json``. ``tools/report.py OUTPUT`` tabulates the runs.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from astrodet.sweep import (
    EXECUTORS,
    SWEEP_FILE,
    SweepState,
    check_points,
    expand_grid,
    job_parameters,
    load_grid,
    make_executor,
    run_finished,
    run_sweep,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Examples:\n"
            "  sweep.py --grid configs/grids/synthetic_small.py --output output/sweeps/small\n"
            "  sweep.py --grid configs/grids/mgcls_paper.py --output output/sweeps/mgcls \\\n"
            "      --executor slurm --partition gpu --gpus-per-node 1 --timeout-min 720 --dry-run\n"
            "  sweep.py --grid GRID --output DIR train.amp=true     # an override for every point\n"
        ),
    )
    parser.add_argument(
        "--grid", required=True, metavar="FILE", help="a grid file (configs/grids/)"
    )
    parser.add_argument("--output", required=True, metavar="DIR", help="the sweep folder")
    parser.add_argument(
        "--executor", choices=EXECUTORS, default="local", help="default: %(default)s"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the points and job parameters, run nothing"
    )
    parser.add_argument(
        "--max-parallel",
        type=int,
        default=None,
        metavar="N",
        help="points running at once (default: 1 here, all on SLURM)",
    )
    parser.add_argument(
        "--poll-s",
        type=float,
        default=None,
        help="seconds between looks at the jobs (default: 1, SLURM 30)",
    )
    job = parser.add_argument_group(
        "job parameters (SLURM; defaults: those given to this sweep before, then the grid's "
        "'slurm' dict)"
    )
    job.add_argument("--partition", default=None)
    job.add_argument("--account", default=None)
    job.add_argument("--qos", default=None)
    job.add_argument("--constraint", default=None)
    job.add_argument("--nodes", type=int, default=None, help="nodes per point (default 1)")
    job.add_argument(
        "--gpus-per-node", type=int, default=None, help="GPUs (one task each) per node (default 1)"
    )
    job.add_argument("--cpus-per-task", type=int, default=None, help="default 8")
    job.add_argument("--timeout-min", type=int, default=None, help="default 1440")
    job.add_argument("--mem-gb", type=int, default=None, help="default: the partition's")
    parser.add_argument(
        "opts", nargs="*", metavar="KEY=VALUE", help="config overrides applied to every point"
    )
    return parser


def _print_plan(points, output: Path, executor: str, params: dict) -> None:
    print(f"{len(points)} points in {output} ({executor} executor)")
    for i, p in enumerate(points, 1):
        done = " (done)" if run_finished(output / p.name) else ""
        print(f"[{i}/{len(points)}] {p.name}{done}: {p.config.name} {' '.join(p.overrides)}")
    print("job parameters: " + json.dumps(params, sort_keys=True))


def _summary(result: dict, output: Path, n: int) -> None:
    failed = result["failed"]
    print(
        f"sweep {output}: {n} points, {len(result['done']) + len(result['skipped'])} done "
        f"({len(result['skipped'])} finished earlier, {len(result['done'])} now), "
        f"{len(failed)} failed"
    )
    for name, why in failed.items():
        print(f"failed: {name} ({output / name})")
        print("\n".join("    " + line for line in why.splitlines()))


def _recorded_options(output: Path) -> dict:
    return SweepState(output).options if (output / SWEEP_FILE).exists() else {}


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)
    output = Path(args.output)
    try:
        grid = load_grid(args.grid)
        points = expand_grid(grid, args.opts)
        check_points(points)  # a wrong key fails here, before anything is submitted
        options = {name: getattr(args, name) for name in (
            "partition", "account", "qos", "constraint", "nodes", "gpus_per_node",
            "cpus_per_task", "timeout_min", "mem_gb")}  # fmt: skip
        # a rerun keeps the job options the sweep was given; options given now win
        options = {
            **_recorded_options(output),
            **{k: v for k, v in options.items() if v is not None},
        }
        params = job_parameters(grid_defaults=grid.slurm, **options)
        if args.dry_run:
            _print_plan(points, output, args.executor, params)
            return 0
        executor = make_executor(args.executor, folder=output / ".submitit", params=params)
    except (FileNotFoundError, KeyError, ValueError, RuntimeError, SyntaxError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        parser.exit(2, f"{parser.prog}: error: {message}\n")
    slurm = args.executor == "slurm"
    max_parallel = args.max_parallel if args.max_parallel is not None else (None if slurm else 1)
    poll_s = args.poll_s if args.poll_s is not None else (30.0 if slurm else 1.0)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # stop the points, keep the record
    try:
        result = run_sweep(points, output=output, executor=executor, grid_path=grid.path,
                           max_parallel=max_parallel, poll_s=poll_s, options=options,
                           echo=lambda line: print(line, flush=True))  # fmt: skip
    except (ValueError, RuntimeError) as e:
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    _summary(result, output, len(points))
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
