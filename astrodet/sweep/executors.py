"""Where grid points run: ``local`` (subprocesses of ``tools/train_net.py``), ``submitit-local``
(submitit jobs on this machine) and ``slurm`` (submitit jobs on a SLURM cluster).

Every point runs ``tools/train_net.py --resume`` into its own folder, so a point that was
interrupted (a killed sweep, a preempted or timed-out job) continues from its last checkpoint.
Inside a submitit job, a point with several tasks (GPUs) forms a DDP group from submitit's
environment: :class:`TrainPoint` exports ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``... and the
engine's ``launch`` joins that group as it would a ``torchrun`` one.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from .grid import Point, quote
from .state import pid_alive

__all__ = [
    "EXECUTORS",
    "LocalExecutor",
    "SubmititExecutor",
    "TrainPoint",
    "job_parameters",
    "make_executor",
    "tail",
    "train_argv",
]

EXECUTORS = ("local", "submitit-local", "slurm")
TRAIN_NET = Path(__file__).resolve().parents[2] / "tools" / "train_net.py"
CONSOLE_FILE = "console.txt"

# job parameters in submitit's AutoExecutor names; None: submitit's (or the cluster's) default
_DEFAULT_PARAMS = dict(
    nodes=1,
    gpus_per_node=1,
    cpus_per_task=8,
    timeout_min=24 * 60,
    mem_gb=None,
    slurm_partition=None,
    slurm_account=None,
    slurm_qos=None,
    slurm_constraint=None,
)
# the tools/sweep.py option (underscored) for each parameter
OPTION_NAMES = {
    "partition": "slurm_partition",
    "account": "slurm_account",
    "qos": "slurm_qos",
    "constraint": "slurm_constraint",
    "nodes": "nodes",
    "gpus_per_node": "gpus_per_node",
    "cpus_per_task": "cpus_per_task",
    "timeout_min": "timeout_min",
    "mem_gb": "mem_gb",
}


def job_parameters(*, grid_defaults: dict | None = None, **options: Any) -> dict:
    """Job parameters of every point: the built-in defaults, then the grid file's ``slurm``
    dict, then the command-line options that were given (not None). One task per GPU.

    Args:
        grid_defaults: the grid's ``slurm`` dict, in option names (``partition``, ...).
        options: option values by option name; None means not given.

    Raises:
        ValueError: an unknown parameter name in the grid file.
    """
    params = dict(_DEFAULT_PARAMS)
    for source in (grid_defaults or {}), {k: v for k, v in options.items() if v is not None}:
        for name, value in source.items():
            if name not in OPTION_NAMES:
                raise ValueError(
                    f"unknown job parameter {name!r}; known: {', '.join(sorted(OPTION_NAMES))}"
                )
            params[OPTION_NAMES[name]] = value
    params["tasks_per_node"] = max(1, int(params["gpus_per_node"] or 1))
    return params


def train_argv(point: Point, run_dir: Path) -> list[str]:
    """``tools/train_net.py`` arguments of a point (always ``--resume``: a new folder starts
    from scratch, an interrupted one continues)."""
    return ["--config-file", str(point.config), "--resume", *point.overrides,
            f"train.output_dir={quote(run_dir)}"]  # fmt: skip


def tail(text: str, lines: int = 15) -> str:
    """The last ``lines`` lines of a log, progress-bar redraws (``\\r``) folded."""
    rows = [row.rsplit("\r", 1)[-1] for row in text.replace("\r\n", "\n").split("\n")]
    return "\n".join([r for r in rows if r.strip()][-lines:])


def _read_tail(path: Path, lines: int = 15, max_bytes: int = 65536) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - max_bytes))
            return tail(f.read().decode("utf-8", "replace"), lines)
    except OSError:
        return ""


# --------------------------------------------------------------------------- local
def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # a killed sweep must not leave its training processes running unseen (Linux only)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LocalJob:
    """A ``tools/train_net.py`` subprocess; its output goes to ``<run>/console.txt``."""

    def __init__(self, proc: subprocess.Popen, run_dir: Path):
        self.proc, self.run_dir = proc, run_dir
        self.job_id = str(proc.pid)

    def state(self) -> str:
        return "running"

    def poll(self) -> bool | None:
        """None while running, else whether the process exited 0."""
        rc = self.proc.poll()
        return None if rc is None else rc == 0

    def error_tail(self) -> str:
        return f"exit {self.proc.returncode}\n" + _read_tail(self.run_dir / CONSOLE_FILE)

    def cancel(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class LocalExecutor:
    """Points as subprocesses of this machine's python.

    Args:
        num_gpus: ``--num-gpus`` of each point (processes; DDP when more than one).
    """

    name = "local"

    def __init__(self, *, num_gpus: int = 1):
        self.num_gpus = int(num_gpus)

    def submit(self, point: Point, run_dir: Path) -> LocalJob:
        run_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, str(TRAIN_NET), *train_argv(point, run_dir)]
        if self.num_gpus > 1:
            argv[2:2] = ["--num-gpus", str(self.num_gpus)]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(run_dir / CONSOLE_FILE, "ab") as console:
            proc = subprocess.Popen(
                argv,
                stdout=console,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        return LocalJob(proc, run_dir)

    def attach(self, job_id: str) -> None:
        """Local points are never re-attached: an unfinished one is run again (resumed)."""
        return None


# --------------------------------------------------------------------------- submitit
def _load_train_net_cli(path: Path):
    spec = importlib.util.spec_from_file_location("astrodet_train_net", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cli


class TrainPoint:
    """The submitit job of one point: ``tools/train_net.py`` in the job's processes.

    With several tasks (one per GPU, on one or more nodes), submitit's environment is
    exported as ``torchrun``'s and the engine's ``launch`` joins that DDP group. On
    preemption or timeout, :meth:`checkpoint` requeues the same call, which resumes from
    the run's last checkpoint (``--resume``).

    Args:
        argv: ``tools/train_net.py`` arguments (see :func:`train_argv`).
        train_net: path of ``tools/train_net.py``.
    """

    def __init__(self, argv: list[str], train_net: str | os.PathLike = TRAIN_NET):
        self.argv = list(argv)
        self.train_net = str(train_net)

    def __call__(self) -> int:
        import submitit

        if submitit.JobEnvironment().num_tasks > 1:
            # every task sees every GPU of its node: the engine picks cuda:LOCAL_RANK
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        try:
            code = _load_train_net_cli(Path(self.train_net))(self.argv)
        except SystemExit as e:  # argparse's error exit: a failed job, with its message
            code = e.code
        if code:
            raise RuntimeError(f"tools/train_net.py exited with status {code}")
        return 0

    def checkpoint(self, *args: Any, **kwargs: Any):
        """Requeue the same call: ``--resume`` continues from the run's last checkpoint."""
        import submitit

        return submitit.helpers.DelayedSubmission(TrainPoint(self.argv, self.train_net))


class SubmititJob:
    """A submitted point."""

    _QUEUED = {"PENDING", "REQUEUED", "CONFIGURING", "QUEUED", "UNKNOWN", "SUSPENDED"}

    def __init__(self, job):
        self.job = job
        self.job_id = str(job.job_id)

    def state(self) -> str:
        return "queued" if self.job.state.upper() in self._QUEUED else "running"

    def poll(self) -> bool | None:
        if not self.job.done():
            return None
        try:
            return self.job.exception() is None
        except Exception:  # the job died before writing its result (killed, node failure)
            return False

    def error_tail(self) -> str:
        head = f"{self.job.state} (job {self.job_id})"
        try:
            text = self.job.stderr() or ""
        except Exception:
            text = ""
        if not text.strip():
            try:
                text = str(self.job.exception() or "")
            except Exception as e:
                text = str(e)
        return head + "\n" + tail(text)

    def cancel(self) -> None:
        self.job.cancel(check=False)


class SubmititExecutor:
    """Points as submitit jobs (``cluster="slurm"`` or ``"local"``).

    Args:
        folder: submitit's folder (job scripts, pickles, logs).
        cluster: ``"slurm"`` or ``"local"``.
        params: from :func:`job_parameters`.
        max_num_timeout: requeues after a timeout before the job is failed (preemptions
            are always requeued).

    Raises:
        RuntimeError: ``cluster="slurm"`` without SLURM's ``sbatch`` and ``srun``.
    """

    def __init__(self, folder: Path, *, cluster: str, params: dict, max_num_timeout: int = 10):
        import submitit

        missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
        if cluster == "slurm" and missing:
            raise RuntimeError(
                f"--executor slurm needs SLURM's {' and '.join(missing)}, not on PATH here; run "
                "tools/sweep.py on the cluster's login node, or use --executor local "
                "(or submitit-local) on this machine"
            )
        self.name = "slurm" if cluster == "slurm" else "submitit-local"
        self.cluster, self.folder = cluster, Path(folder)
        self.executor = submitit.AutoExecutor(
            folder=self.folder / "%j", cluster=cluster, slurm_max_num_timeout=max_num_timeout
        )
        kwargs = {k: v for k, v in params.items() if v is not None}
        if cluster != "slurm":
            kwargs = {k: v for k, v in kwargs.items() if not k.startswith("slurm_")}
            kwargs.pop("mem_gb", None)
            kwargs.pop("cpus_per_task", None)
            kwargs.pop("nodes", None)
            import torch

            if not torch.cuda.is_available():
                # no GPUs: --gpus-per-node N runs N CPU processes (gloo), as train_net's
                # --num-gpus does
                kwargs["gpus_per_node"] = 0
        self.executor.update_parameters(**kwargs)

    def submit(self, point: Point, run_dir: Path) -> SubmititJob:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.executor.update_parameters(name=point.name)
        return SubmititJob(self.executor.submit(TrainPoint(train_argv(point, run_dir))))

    def attach(self, job_id: str) -> SubmititJob | None:
        """The recorded SLURM job of a point if it is still queued or running, else None."""
        if not job_id:
            return None
        if self.cluster != "slurm":
            if pid_alive(int(job_id)):
                raise RuntimeError(
                    f"the job (pid {job_id}) of an earlier sweep still runs this point; "
                    "wait for it or stop it first"
                )
            return None
        import submitit

        job = SubmititJob(submitit.SlurmJob(folder=self.folder / "%j", job_id=job_id))
        return None if job.job.done() else job


def make_executor(name: str, *, folder: Path, params: dict):
    """The executor called ``name`` (one of :data:`EXECUTORS`)."""
    if name == "local":
        return LocalExecutor(num_gpus=params.get("gpus_per_node") or 1)
    if name in ("submitit-local", "slurm"):
        cluster = "slurm" if name == "slurm" else "local"
        return SubmititExecutor(folder, cluster=cluster, params=params)
    raise ValueError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
