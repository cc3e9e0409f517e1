"""What every training script shares: the command line, run setup (output folder, logging,
seed, resolved config) and the train / test procedures over a LazyConfig.

A config has the roots ``model``, ``dataloader`` (``train``, ``test``, optional ``evaluator``),
``optimizer`` (whose ``params`` receives the built model, as in Detectron2), optional
``lr_multiplier`` (a callable of the training progress in ``[0, 1)``, e.g. an fvcore
param scheduler) and ``train``: ``output_dir``, ``max_iter`` (or ``epochs``), ``eval_period``,
``checkpoint_period``, ``log_period``, ``seed``, ``device``, ``amp``, ``init_checkpoint``
(and optionally ``checkpoint_max_keep``, ``grad_clip``, ``ddp``, ``num_threads``,
``precision``, ``compile``, ``batch_size_per_gpu``).

Importing this module needs no omegaconf (it is imported where a config is handled), so the
training loop runs where only torch and the project are installed.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from astrodet.utils import atomic_write_json, prepare_output_dir, seed_everything
from astrodet.utils.precision import resolve_precision

from . import comm, hooks
from .checkpoint import (
    Checkpointer,
    last_checkpoint,
    mismatch_error,
    read_model_state,
    state_mismatch,
    unwrap_model,
)
from .evaluator import inference_on_dataset
from .events import JSONWriter, TensorboardWriter
from .train_loop import SimpleTrainer

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = [
    "METRICS_FILE",
    "TRAIN_METRICS_FILE",
    "build_evaluator",
    "build_model",
    "build_trainer",
    "check_output_dir",
    "configure_cpu_threads",
    "default_argument_parser",
    "default_setup",
    "do_test",
    "do_train",
    "load_for_eval",
    "resolve_device",
    "resolve_train_precision",
    "scale_batch_to_gpus",
    "setup_logging",
]

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
TRAIN_METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.yaml"


# --------------------------------------------------------------------------- command line
def default_argument_parser(description: str | None = None) -> argparse.ArgumentParser:
    """Detectron2's training command line: ``--config-file``, ``--eval-only``, ``--resume``,
    ``--overwrite``, ``--num-gpus``, ``--num-machines``, ``--machine-rank``, ``--dist-url`` and
    ``KEY=VALUE`` config overrides (parse with ``parse_intermixed_args`` so flags may follow
    the overrides)."""
    parser = argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Examples:\n"
            "  train_net.py --config-file configs/synthetic_vitdet.py train.max_iter=100\n"
            "  train_net.py --config-file CFG --resume            # continue the last checkpoint\n"
            "  train_net.py --config-file CFG --eval-only         # evaluate the last checkpoint\n"
            "  train_net.py --config-file CFG --num-gpus 2        # DDP on this machine\n"
            "  torchrun --nproc_per_node 2 train_net.py --config-file CFG\n"
        ),
    )
    parser.add_argument(
        "--config-file", required=True, metavar="FILE", help="a LazyConfig .py or .yaml"
    )
    parser.add_argument("--eval-only", action="store_true", help="only evaluate a checkpoint")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint in train.output_dir",
    )
    group.add_argument(
        "--overwrite", action="store_true", help="delete an existing train.output_dir first"
    )
    parser.add_argument(
        "--num-gpus",
        type=int,
        default=1,
        help="processes per machine (GPUs; CPU processes with gloo)",
    )
    parser.add_argument("--num-machines", type=int, default=1, help="machines in the job")
    parser.add_argument("--machine-rank", type=int, default=0, help="this machine's index")
    parser.add_argument(
        "--dist-url",
        default="auto",
        help="rendezvous URL for multi-machine jobs, e.g. tcp://host:port (default: a free local port)",
    )
    parser.add_argument(
        "opts",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, e.g. train.max_iter=100 model.backbone.freeze=none",
    )
    return parser


# --------------------------------------------------------------------------- setup
def setup_logging(output_dir: str | os.PathLike | None = None) -> None:
    """INFO to stderr (and ``output_dir/log.txt``) on the main process, warnings elsewhere."""
    root = logging.getLogger()
    main = comm.is_main_process()
    level = logging.INFO if main else logging.WARNING
    fmt = logging.Formatter(
        f"[%(asctime)s %(name)s{'' if main else f' rank{comm.get_rank()}'}] %(levelname)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for h in list(root.handlers):
        if getattr(h, "_astrodet", False):
            root.removeHandler(h)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if main and output_dir is not None:
        handlers.append(logging.FileHandler(Path(output_dir) / "log.txt"))
    for h in handlers:
        h.setFormatter(fmt)
        h._astrodet = True
        root.addHandler(h)
    root.setLevel(level)


# What the weights were trained on that a user of them needs: a source finder resamples a
# field so its beam spans as many pixels as the training images' and cuts it into tiles of
# their size, overlapping by as much as the training set's largest sources need
# (``astrodet.sky.finders.detector``).
TRAINING_META_KEYS = ("beam_pixels", "tile_size", "tile_overlap")


def training_meta(cfg: Any) -> dict[str, Any]:
    """The ``dataloader`` facts in :data:`TRAINING_META_KEYS` a config sets, for checkpoints.

    Args:
        cfg: the run's config.
    """
    dataloader = _cfg_get(cfg, "dataloader") or {}
    meta = {k: _cfg_get(dataloader, k) for k in TRAINING_META_KEYS}
    return {k: v for k, v in meta.items() if v is not None}


def _cfg_get(node: Any, key: str, default: Any = None) -> Any:
    if node is None:
        return default
    if isinstance(node, Mapping):  # a DictConfig is a Mapping too
        return node.get(key, default) if key in node else default
    return getattr(node, key, default)


def _environment() -> str:
    import torchvision

    lines = [
        f"python {platform.python_version()} on {platform.platform()} ({socket.gethostname()})",
        f"torch {torch.__version__}, torchvision {torchvision.__version__}",
        f"CUDA available: {torch.cuda.is_available()}"
        + (
            f", {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
            if torch.cuda.is_available()
            else ""
        ),
        f"processes: {comm.get_world_size()}, CPU threads per process: {torch.get_num_threads()}",
    ]
    return "\n  ".join(lines)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _busy_cores(interval: float = 0.2) -> float:
    """Cores busy with other work right now: sampled from ``/proc/stat`` over ``interval``
    seconds on Linux (the load average lags by a minute), else the 1-minute load average."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
        if total1 > total0:
            return _usable_cpus() * (1.0 - (idle1 - idle0) / (total1 - total0))
    except (OSError, ValueError, IndexError):
        pass
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def configure_cpu_threads(cfg: DictConfig) -> int:
    """Set this process's torch CPU threads from ``train.num_threads`` and warn when they
    would compete for cores.

    A multi-threaded op waits for its slowest thread; when another process (a data worker,
    another job) holds a core, every op stalls for a scheduler time slice, and a step can
    take several times longer than with fewer threads.

    Args:
        cfg: the config; ``train.num_threads`` (a positive int) sets the threads, None keeps
            torch's choice (its default or ``OMP_NUM_THREADS``, or what :func:`launch` set
            for CPU processes).

    Returns:
        the number of threads in use.

    Raises:
        ValueError: ``train.num_threads`` is not a positive integer.
    """
    wanted = _cfg_get(cfg.train, "num_threads")
    if wanted is not None:
        if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 1:
            raise ValueError(f"train.num_threads must be a positive integer, got {wanted!r}")
        torch.set_num_threads(wanted)
    threads = torch.get_num_threads()
    if threads > 1 and resolve_device(_cfg_get(cfg.train, "device")).type == "cpu":
        cpus = _usable_cpus()
        loader = _cfg_get(cfg.get("dataloader"), "train")
        workers = int(_cfg_get(loader, "num_workers", 0) or 0)
        busy = _busy_cores()
        wanted_cores = threads * comm.get_local_size() + workers
        if wanted_cores + busy > cpus + 0.5:
            logger.warning(
                "%d compute thread(s) x %d process(es) + %d data worker(s) on %d cores with "
                "%.1f of them busy already: threads will wait for each other; "
                "train.num_threads=1 (or fewer data workers) is likely faster",
                threads,
                comm.get_local_size(),
                workers,
                cpus,
                busy,
            )
    return threads


def check_output_dir(cfg: DictConfig, args: argparse.Namespace) -> Path:
    """``train.output_dir``, checked: an existing non-empty folder is refused unless
    ``--resume``, ``--overwrite`` or ``--eval-only``. Changes nothing on disk.

    Raises:
        KeyError: ``train.output_dir`` is not set.
        FileExistsError: the folder exists, is not empty, and no flag allows it.
    """
    output_dir = _cfg_get(cfg.train, "output_dir")
    if not output_dir:
        raise KeyError("train.output_dir is not set; give train.output_dir=DIR")
    output_dir = Path(output_dir)
    allowed = any(getattr(args, k, False) for k in ("resume", "overwrite", "eval_only"))
    if not allowed and output_dir.exists() and any(output_dir.iterdir()):
        prepare_output_dir(output_dir, overwrite=False, resume=False)  # raises FileExistsError
    return output_dir


def default_setup(cfg: DictConfig, args: argparse.Namespace) -> Path:
    """Prepare a run: output folder, logging, environment report, seed, resolved config.

    The output folder (``train.output_dir``) is refused when it exists and is not empty,
    unless ``--resume`` or ``--overwrite`` (``--eval-only`` writes next to the checkpoints it
    evaluates). The seed ``train.seed`` (negative or None: drawn at random) is applied
    (+ rank) and recorded; the config goes to ``config.yaml``.

    Args:
        cfg: the loaded and overridden config (``train.seed`` may be filled in).
        args: parsed :func:`default_argument_parser` arguments.

    Returns:
        the output folder.
    """
    # every rank checks before the barrier, so a refusal stops all of them
    output_dir = check_output_dir(cfg, args)
    resume = bool(getattr(args, "resume", False) or getattr(args, "eval_only", False))
    overwrite = bool(getattr(args, "overwrite", False))
    comm.synchronize()
    if comm.is_main_process():
        prepare_output_dir(output_dir, overwrite=overwrite, resume=resume)
    comm.synchronize()
    setup_logging(output_dir)

    seed = _cfg_get(cfg.train, "seed")
    if seed is None or int(seed) < 0:
        seed = int.from_bytes(os.urandom(4), "little") >> 1
        seed = comm.all_gather_object(seed)[0]
        cfg.train.seed = seed
    seed_everything(int(seed) + comm.get_rank())

    scale_batch_to_gpus(cfg)  # before config.yaml: it records the batch and lr trained with
    configure_cpu_threads(cfg)
    logger.info("environment:\n  %s", _environment())
    logger.info("command line: %s", " ".join(sys.argv))
    logger.info("seed %d (+ rank), output folder %s", int(seed), output_dir)
    if comm.is_main_process():
        from astrodet.config import LazyConfig

        config_path = output_dir / CONFIG_FILE
        if getattr(args, "eval_only", False) and config_path.exists():
            config_path = output_dir / "config_eval.yaml"
        LazyConfig.save(cfg, config_path)
        logger.info("resolved config written to %s", config_path)
    return output_dir


# --------------------------------------------------------------------------- building
def resolve_device(name: str | None = None) -> torch.device:
    """``train.device`` as a device for this process: ``"cuda"`` becomes ``cuda:<local rank>``;
    None or ``"auto"`` picks CUDA where available.

    Raises:
        RuntimeError: CUDA asked for but not available.
    """
    name = (name or "auto").lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"train.device={name} but no CUDA device is available; use train.device=cpu"
            )
        if name == "cuda":
            return torch.device("cuda", comm.get_local_rank())
    return torch.device(name)


def _amp_enabled(cfg: DictConfig) -> bool:
    amp = _cfg_get(cfg.train, "amp", False)
    return bool(_cfg_get(amp, "enabled", False) if isinstance(amp, Mapping) else amp)


def resolve_train_precision(cfg: DictConfig, device: torch.device | str) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"`` for a run on ``device``: ``train.precision``
    when given (``auto``: bf16 on a GPU that computes it in hardware, else fp32), else
    ``train.amp`` (True: bf16 where supported, fp16 with loss scaling elsewhere).

    Raises:
        ValueError: an unknown ``train.precision`` (named), or bf16 on a GPU without it.
    """
    precision = _cfg_get(cfg.train, "precision")
    try:
        return resolve_precision(precision, device=device, amp=_amp_enabled(cfg))
    except ValueError as e:
        raise ValueError(f"train.precision: {e}") from None


def scale_batch_to_gpus(cfg: DictConfig) -> float:
    """Apply ``train.batch_size_per_gpu``: the total batch becomes that many images per
    process, and the run is rescaled as Detectron2 rescales a config for another number of
    GPUs: learning rate times ``new / configured total batch`` (the linear scaling rule),
    ``max_iter`` and the evaluation and checkpoint periods divided by it (the same epochs).
    ``train.epochs`` runs need no iteration change: their length follows the batch.

    Applying it twice changes nothing the second time (the total already matches).

    Args:
        cfg: the config; changed in place.

    Returns:
        the factor applied (1.0 when the option is unset or the total already matches).

    Raises:
        ValueError: ``train.batch_size_per_gpu`` is not a positive integer, or the config
            has no ``dataloader.train.total_batch_size`` or ``optimizer.lr`` to scale.
    """
    per_gpu = _cfg_get(cfg.train, "batch_size_per_gpu")
    if per_gpu is None:
        return 1.0
    if isinstance(per_gpu, bool) or not isinstance(per_gpu, int) or per_gpu < 1:
        raise ValueError(f"train.batch_size_per_gpu must be a positive integer, got {per_gpu!r}")
    loader = cfg.dataloader.train
    reference = _cfg_get(loader, "total_batch_size")
    lr = _cfg_get(cfg.get("optimizer"), "lr")
    if reference is None or lr is None:
        missing = "dataloader.train.total_batch_size" if reference is None else "optimizer.lr"
        raise ValueError(f"train.batch_size_per_gpu needs {missing} in the config to scale from")
    total = per_gpu * comm.get_world_size()
    if total == int(reference):
        return 1.0
    scale = total / int(reference)
    loader.total_batch_size = total
    cfg.optimizer.lr = float(lr) * scale
    t = cfg.train
    changed = []
    for key in ("max_iter", "eval_period", "checkpoint_period"):
        value = _cfg_get(t, key)
        if value:  # None (epochs, a tenth of the run) and 0 (off) stay as they are
            t[key] = max(1, round(int(value) / scale))
            changed.append(f"{key} {value} -> {t[key]}")
    logger.info(
        "train.batch_size_per_gpu=%d x %d process(es): total batch %d -> %d, lr %.4g -> %.4g%s",
        per_gpu,
        comm.get_world_size(),
        int(reference),
        total,
        float(lr),
        cfg.optimizer.lr,
        "".join(f", {c}" for c in changed),
    )
    return scale


def maybe_compile_backbone(cfg: DictConfig, model: torch.nn.Module) -> bool:
    """``train.compile``: compile the model's backbone in place with ``torch.compile``
    (True, or a mode name such as ``"max-autotune"``). The parameter names stay, so
    checkpoints load with or without it.

    Returns:
        whether it was compiled.

    Raises:
        ValueError: the model has no ``backbone`` module.
    """
    option = _cfg_get(cfg.train, "compile", False)
    if not option:
        return False
    backbone = getattr(unwrap_model(model), "backbone", None)
    if not isinstance(backbone, torch.nn.Module):
        raise ValueError(f"train.compile={option!r}: {type(model).__name__} has no backbone module")
    kwargs = {} if option is True else {"mode": str(option)}
    backbone.compile(**kwargs)
    logger.info("backbone compiled with torch.compile%s", f" (mode {option})" if kwargs else "")
    return True


def _instantiate_with(node: Any, **overrides: Any) -> Any:
    """Instantiate a ``_target_`` node with some arguments given as built objects (so large
    lists such as dataset dicts never go through omegaconf)."""
    from astrodet.config import instantiate, locate

    target = node["_target_"]
    if isinstance(target, str):
        target = locate(target)
    kwargs = {
        k: instantiate(node[k]) for k in node.keys() if k != "_target_" and k not in overrides
    }
    kwargs.update(overrides)
    return target(**kwargs)


def _thing_classes(dataset_cfg: Any) -> list[str] | None:
    """Class names from the json file the test dataset node reads (ordered by category id)."""
    json_file = _cfg_get(dataset_cfg, "json_file")
    if not json_file or not Path(json_file).is_file():
        return None
    import json

    with open(json_file) as f:
        cats = json.load(f).get("categories", [])
    return [c["name"] for c in sorted(cats, key=lambda c: c["id"])] or None


def build_evaluator(cfg: DictConfig, dataset: list[dict], output_dir: str | os.PathLike):
    """The evaluator for ``dataset`` (the test dicts): ``dataloader.evaluator`` when the
    config has one (its ``output_dir`` set to the run's, and the dicts given unless it names
    a dataset), else a :class:`~astrodet.evaluation.COCOEvaluator`."""
    from astrodet.evaluation import COCOEvaluator

    dl = cfg.dataloader
    ev_cfg = dl.get("evaluator") if "evaluator" in dl else None
    overrides: dict[str, Any] = {"output_dir": str(output_dir)}
    if ev_cfg is None:
        return COCOEvaluator(
            dataset=dataset,
            thing_classes=_thing_classes(dl.test.get("dataset")),
            output_dir=output_dir,
        )
    from omegaconf import OmegaConf

    # the test dicts are already loaded: hand them over instead of loading the json again
    # (configs point the evaluator's dataset at the test loader's with an interpolation)
    has_name = _cfg_get(ev_cfg, "dataset_name") is not None
    if "dataset" in ev_cfg:
        if OmegaConf.is_interpolation(ev_cfg, "dataset") or ev_cfg.get("dataset") is None:
            overrides["dataset"] = dataset
    elif not has_name:
        overrides["dataset"] = dataset
    if not has_name and _cfg_get(ev_cfg, "thing_classes") is None:
        overrides["thing_classes"] = _thing_classes(dl.test.get("dataset"))
    return _instantiate_with(ev_cfg, **overrides)


def do_test(cfg: DictConfig, model: torch.nn.Module) -> dict[str, float]:
    """Evaluate ``model`` on ``dataloader.test``; writes ``metrics.json`` (flat
    ``bbox/AP``, ``bbox/AP50``, ``bbox/AP75``, per-category ``bbox/AP50-<class>``...) and the
    evaluator's ``coco_instances_results.json`` into ``train.output_dir``.

    Returns:
        the flat metrics on the main process (``{}`` elsewhere).
    """
    from astrodet.config import instantiate
    from astrodet.evaluation import flatten_metrics, metrics_to_json

    output_dir = Path(cfg.train.output_dir)
    loader = instantiate(cfg.dataloader.test)
    dicts = getattr(loader.dataset, "dicts", None)
    if dicts is None:
        raise TypeError("dataloader.test must build a loader over a DetectionDataset")
    evaluator = build_evaluator(cfg, dicts, output_dir)
    device = next(unwrap_model(model).parameters()).device
    results = inference_on_dataset(
        model, loader, evaluator, device=device, precision=resolve_train_precision(cfg, device)
    )
    flat = flatten_metrics(results) if results else {}
    if comm.is_main_process() and flat:
        atomic_write_json(output_dir / METRICS_FILE, metrics_to_json(flat))
        logger.info("wrote %s", output_dir / METRICS_FILE)
    return flat


def build_model(cfg: DictConfig, device: torch.device | str = "cpu") -> torch.nn.Module:
    """Instantiate ``cfg.model`` on ``device`` and log its trainable/frozen parameter counts."""
    from astrodet.config import instantiate
    from astrodet.modeling import count_parameters

    model = instantiate(cfg.model)
    model.to(device)
    counts = count_parameters(model)
    logger.info(
        "model %s: %s trainable, %s frozen parameters",
        type(model).__name__,
        f"{counts['trainable']:,}",
        f"{counts['frozen']:,}",
    )
    return model


def _build_optimizer(cfg: DictConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    # Detectron2's convention: optimizer.params is a lazy call that receives the model
    params = _cfg_get(cfg.optimizer, "params")
    if isinstance(params, Mapping) and "_target_" in params:
        built = _instantiate_with(params, model=model)
    else:
        built = [p for p in model.parameters() if p.requires_grad]
    return _instantiate_with(cfg.optimizer, params=built)


def _build_scheduler(cfg: DictConfig, optimizer, max_iter: int) -> hooks.LRMultiplier:
    from astrodet.config import instantiate

    multiplier = instantiate(cfg.lr_multiplier) if cfg.get("lr_multiplier") is not None else None
    if multiplier is None:
        multiplier = _constant_one
    if not callable(multiplier):
        raise TypeError(f"lr_multiplier must build a callable of the progress, got {multiplier!r}")
    return hooks.LRMultiplier(optimizer, multiplier, max_iter)


def _constant_one(where: float) -> float:
    return 1.0


def _create_ddp_model(model: torch.nn.Module, cfg: DictConfig, device: torch.device):
    if comm.get_world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ddp = _cfg_get(cfg.train, "ddp", {}) or {}
    kwargs = {
        "find_unused_parameters": bool(_cfg_get(ddp, "find_unused_parameters", False)),
        "broadcast_buffers": bool(_cfg_get(ddp, "broadcast_buffers", False)),
    }
    if device.type == "cuda":
        kwargs["device_ids"] = [device.index]
    return DistributedDataParallel(model, **kwargs)


def load_for_eval(cfg: DictConfig, model: torch.nn.Module) -> Path:
    """Load the weights ``--eval-only`` evaluates: ``train.init_checkpoint`` if set, else the
    last checkpoint in ``train.output_dir``.

    Raises:
        FileNotFoundError: neither exists (never evaluates untrained weights silently).
    """
    ckpt = Checkpointer(model, cfg.train.output_dir)
    path = _cfg_get(cfg.train, "init_checkpoint") or ckpt.get_checkpoint_file()
    if not path:
        raise FileNotFoundError(
            f"--eval-only: train.init_checkpoint is not set and {cfg.train.output_dir} holds "
            "no checkpoint (no 'last_checkpoint' file)"
        )
    ckpt.load(path, checkpointables=False)
    return Path(path)


def checkpoint_to_load(cfg: DictConfig, args: argparse.Namespace) -> Path | None:
    """The checkpoint a run will load: with ``--eval-only`` ``train.init_checkpoint`` or else
    the last one in ``train.output_dir``; with ``--resume`` the last one there or else
    ``train.init_checkpoint``; otherwise ``train.init_checkpoint``. None when there is none."""
    init = _cfg_get(cfg.train, "init_checkpoint")
    output_dir = _cfg_get(cfg.train, "output_dir")
    last = None
    if getattr(args, "eval_only", False) or getattr(args, "resume", False):
        last = last_checkpoint(output_dir) if output_dir else None
    if getattr(args, "eval_only", False):
        path = init or last
    else:
        path = (last if getattr(args, "resume", False) else None) or init
    return Path(path) if path else None


def check_checkpoint(cfg: DictConfig, args: argparse.Namespace) -> Path | None:
    """Check, before anything is written or started, that the checkpoint the run will load
    (:func:`checkpoint_to_load`) fits ``cfg.model``: names and shapes of its tensors against
    the model built on the ``meta`` device (no memory, no pretrained weights read).

    Returns:
        the checkpoint, or None when the run loads none.

    Raises:
        FileNotFoundError: the checkpoint does not exist.
        CheckpointMismatchError: it holds another architecture; the message names the
            config it was trained with when its run folder has one.
    """
    import copy

    from omegaconf import OmegaConf

    from astrodet.config import instantiate

    path = checkpoint_to_load(cfg, args)
    if path is None:
        return None
    state = read_model_state(path, mmap=True)
    model_cfg = copy.deepcopy(cfg.model)
    if OmegaConf.select(model_cfg, "backbone.weights", default=None) is not None:
        model_cfg.backbone.weights = "none"  # the checkpoint replaces them
    quiet = logging.root.manager.disable
    logging.disable(logging.INFO)  # the real build logs what it builds; this one is silent
    try:
        with torch.device("meta"):
            model = instantiate(model_cfg)
    except Exception as e:  # a builder that needs real tensors: the load itself checks later
        logger.debug("checkpoint check skipped, model not built on meta: %s", e)
        return path
    finally:
        logging.disable(quiet)
    problem = state_mismatch(model, state)
    if problem:
        raise mismatch_error(path, problem)
    return path


def resolve_schedule(train_cfg: Any, train_loader: Any) -> tuple[int, int, int]:
    """Iterations and periods of a run: ``(max_iter, eval_period, checkpoint_period)``.

    ``train.max_iter`` when set; otherwise ``ceil(train.epochs x training images / total
    batch size)``, counted on the training set as loaded (after a label fraction and empty
    images are dropped), so that "100 epochs" stays 100 epochs on any set. A period of
    None is a tenth of the run.

    Args:
        train_cfg: the ``train`` node.
        train_loader: the training loader (``dataset`` and ``total_batch_size``).

    Raises:
        ValueError: neither ``train.max_iter`` nor ``train.epochs``, or one not positive.
    """
    max_iter = _cfg_get(train_cfg, "max_iter")
    epochs = _cfg_get(train_cfg, "epochs")
    if max_iter is None:
        if epochs is None or float(epochs) <= 0:
            raise ValueError(
                f"train.max_iter is None and train.epochs is {epochs!r}: set one of them"
            )
        images = len(train_loader.dataset)
        batch = int(train_loader.total_batch_size)
        max_iter = max(1, math.ceil(float(epochs) * images / batch))
        logger.info(
            "train.epochs=%g over %d training images at batch %d: %d iterations",
            float(epochs),
            images,
            batch,
            max_iter,
        )
    elif epochs is not None:
        logger.info("train.max_iter=%s is set: train.epochs=%s is not used", max_iter, epochs)
    max_iter = int(max_iter)
    if max_iter <= 0:
        raise ValueError(f"train.max_iter must be positive, got {max_iter}")
    periods = []
    for key in ("eval_period", "checkpoint_period"):
        value = _cfg_get(train_cfg, key, 0)
        periods.append(max(1, max_iter // 10) if value is None else int(value))
    return max_iter, periods[0], periods[1]


def build_trainer(cfg: DictConfig, *, resume: bool = False) -> tuple[SimpleTrainer, int, int]:
    """Everything :func:`do_train` runs: the data, model, optimizer, schedule, checkpoint
    (loaded or resumed) and the trainer with its hooks, not yet started.

    The trainer's ``evaluate()`` runs the test evaluation into ``final_metrics``.

    Returns:
        ``(trainer, start_iter, max_iter)``.
    """
    from astrodet.config import instantiate

    t = cfg.train
    device = resolve_device(_cfg_get(t, "device"))
    precision = resolve_train_precision(cfg, device)
    scale_batch_to_gpus(cfg)  # a no-op when default_setup applied it already
    output_dir = Path(t.output_dir)
    # data first: a missing json or image fails before any model is built
    train_loader = instantiate(cfg.dataloader.train)
    if _cfg_get(cfg.dataloader.train, "pin_memory") is None and hasattr(train_loader, "pin_memory"):
        # page-locked batches copy to a GPU without blocking; pointless for a CPU run
        train_loader.pin_memory = device.type == "cuda"
    max_iter, eval_period, checkpoint_period = resolve_schedule(t, train_loader)
    model = build_model(cfg, device)
    maybe_compile_backbone(cfg, model)
    optimizer = _build_optimizer(cfg, model)
    ddp_model = _create_ddp_model(model, cfg, device)
    log_period = _cfg_get(t, "log_period", 20)
    trainer = SimpleTrainer(
        ddp_model,
        train_loader,
        optimizer,
        device=device,
        precision=precision,
        grad_clip=_cfg_get(t, "grad_clip"),
        log_period=log_period,
        sync_periods=(eval_period, checkpoint_period),
    )
    scheduler = _build_scheduler(cfg, optimizer, max_iter)
    checkpointer = Checkpointer(
        model,
        output_dir,
        max_to_keep=_cfg_get(t, "checkpoint_max_keep"),
        meta=training_meta(cfg),
        optimizer=optimizer,
        scheduler=scheduler,
        trainer=trainer,
    )
    start_iter = checkpointer.resume_or_load(_cfg_get(t, "init_checkpoint"), resume=resume)
    final: dict[str, float] = {}

    def evaluate() -> dict[str, float]:
        # evaluation must not shift the training run's random stream
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            final.clear()
            final.update(do_test(cfg, ddp_model))
        return final

    main = comm.is_main_process()
    writers = []
    if main:
        writers = [JSONWriter(output_dir / TRAIN_METRICS_FILE)]
        writers[0].truncate_after(start_iter)
        writers.append(
            TensorboardWriter(output_dir, purge_step=start_iter + 1 if start_iter else None)
        )
    trainer.evaluate = evaluate
    trainer.final_metrics = final
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            hooks.LRScheduler(scheduler, optimizer),
            hooks.EvalHook(eval_period, evaluate),
            hooks.PeriodicWriter(writers, period=log_period) if main else None,
            # last: a checkpoint of iteration N is written once N's evaluation and metrics
            # line are, so a run killed at any moment resumes without a gap in metrics.jsonl
            hooks.PeriodicCheckpointer(checkpointer, checkpoint_period),
            hooks.ProgressBar() if main else None,
        ]
    )
    return trainer, start_iter, max_iter


def do_train(cfg: DictConfig, *, resume: bool = False) -> dict[str, float]:
    """Train ``cfg.model`` on ``dataloader.train`` for ``train.max_iter`` iterations with
    periodic checkpoints and evaluations, then a final evaluation.

    With ``resume`` and a checkpoint in ``train.output_dir``, continues from it: the same
    iteration, weights, optimizer, lr schedule, data position and RNG states. Otherwise
    starts from ``train.init_checkpoint`` weights when set.

    Returns:
        the final flat metrics (main process; ``{}`` elsewhere).
    """
    trainer, start_iter, max_iter = build_trainer(cfg, resume=resume)
    if start_iter >= max_iter:
        # e.g. --resume of a finished run: evaluate what was trained
        logger.info(
            "checkpoint is at iteration %d >= train.max_iter=%d: evaluating only",
            start_iter,
            max_iter,
        )
        return trainer.evaluate()
    trainer.train(start_iter, max_iter)
    return trainer.final_metrics
