"""Experiment grids for ``tools/sweep.py``: grid files and their points (:mod:`.grid`),
executors (local subprocesses, submitit locally or on SLURM; :mod:`.executors`), the
sweep record ``sweep.json`` (:mod:`.state`) and the loop that drives them (:mod:`.runner`)."""

from .executors import EXECUTORS, TrainPoint, job_parameters, make_executor
from .grid import Grid, Point, check_points, expand_grid, load_grid
from .runner import run_sweep
from .state import SWEEP_FILE, SweepState, run_finished

__all__ = [
    "EXECUTORS",
    "SWEEP_FILE",
    "Grid",
    "Point",
    "SweepState",
    "TrainPoint",
    "check_points",
    "expand_grid",
    "job_parameters",
    "load_grid",
    "make_executor",
    "run_finished",
    "run_sweep",
]
