"""Start one process per device, or join the group ``torchrun`` set up.

``launch(main, num_gpus_per_machine=N)`` spawns N workers on this machine (gloo on CPU,
NCCL on GPUs) unless the process was started by ``torchrun`` (``RANK``/``WORLD_SIZE`` in the
environment), in which case it joins that group and runs ``main`` once.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

__all__ = ["default_backend", "launch", "launched_by_torchrun"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = timedelta(minutes=30)


def default_backend(num_local_processes: int = 1) -> str:
    """NCCL when every local process can have its own GPU, else gloo."""
    if torch.cuda.is_available() and torch.cuda.device_count() >= num_local_processes:
        return "nccl"
    return "gloo"


def launched_by_torchrun() -> bool:
    """True inside a multi-process ``torchrun`` job."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def _find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _set_device(local_rank: int, backend: str) -> None:
    if backend == "nccl":
        torch.cuda.set_device(local_rank)


def launch(
    main_func: Callable,
    num_gpus_per_machine: int = 1,
    *,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str | None = "auto",
    args: Sequence = (),
    backend: str | None = None,
    timeout: timedelta = DEFAULT_TIMEOUT,
) -> None:
    """Run ``main_func(*args)`` in every process of a (possibly) distributed job.

    Args:
        main_func: a module-level function (it is pickled for the spawned workers).
        num_gpus_per_machine: processes per machine (GPUs, or CPU processes with gloo).
        num_machines: machines in the job.
        machine_rank: this machine's index.
        dist_url: rendezvous URL, e.g. ``tcp://host:port``; ``"auto"`` picks a free local port
            (single machine only).
        args: arguments for ``main_func``.
        backend: ``"nccl"``/``"gloo"``; default NCCL when every local process gets a GPU.
        timeout: collective timeout.
    """
    if launched_by_torchrun():
        backend = backend or default_backend(int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
        _set_device(int(os.environ.get("LOCAL_RANK", 0)), backend)
        dist.init_process_group(backend=backend, init_method="env://", timeout=timeout)
        logger.info(
            "joined torchrun group: rank %d of %d (%s)",
            dist.get_rank(),
            dist.get_world_size(),
            backend,
        )
        try:
            main_func(*args)
        finally:
            dist.destroy_process_group()
        return

    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        main_func(*args)
        return
    if dist_url in (None, "auto"):
        if num_machines != 1:
            raise ValueError("dist_url='auto' works on one machine only; give tcp://host:port")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    backend = backend or default_backend(num_gpus_per_machine)
    mp.start_processes(
        _distributed_worker,
        nprocs=num_gpus_per_machine,
        args=(
            main_func,
            world_size,
            num_gpus_per_machine,
            machine_rank,
            dist_url,
            args,
            backend,
            timeout,
        ),
        daemon=False,
        start_method="spawn",
    )


def _distributed_worker(
    local_rank,
    main_func,
    world_size,
    num_gpus_per_machine,
    machine_rank,
    dist_url,
    args,
    backend,
    timeout,
):
    rank = machine_rank * num_gpus_per_machine + local_rank
    os.environ["LOCAL_RANK"] = str(local_rank)
    os.environ["LOCAL_WORLD_SIZE"] = str(num_gpus_per_machine)
    _set_device(local_rank, backend)
    if backend == "gloo" and "OMP_NUM_THREADS" not in os.environ:
        # CPU processes share the cores; oversubscribed threads slow every one of them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // num_gpus_per_machine))
    dist.init_process_group(
        backend=backend, init_method=dist_url, world_size=world_size, rank=rank, timeout=timeout
    )
    try:
        main_func(*args)
    finally:
        dist.destroy_process_group()
