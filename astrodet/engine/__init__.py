"""Training engine in Detectron2's shape: ``SimpleTrainer`` + hooks, checkpoints with
exact resume, DDP launch, and the train/test procedures ``tools/train_net.py`` runs."""

from . import comm
from .checkpoint import (
    Checkpointer,
    CheckpointError,
    CheckpointMismatchError,
    get_rng_state,
    set_rng_state,
    unwrap_model,
)
from .defaults import (
    build_evaluator,
    build_model,
    check_checkpoint,
    check_output_dir,
    configure_cpu_threads,
    default_argument_parser,
    default_setup,
    do_test,
    do_train,
    load_for_eval,
    resolve_device,
    setup_logging,
)
from .evaluator import inference_on_dataset
from .events import EventStorage, JSONWriter, TensorboardWriter
from .hooks import (
    EvalHook,
    IterationTimer,
    LRMultiplier,
    LRScheduler,
    PeriodicCheckpointer,
    PeriodicWriter,
    ProgressBar,
)
from .launch import launch, launched_by_torchrun
from .train_loop import HookBase, SimpleTrainer, TrainerBase

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "Checkpointer",
    "EvalHook",
    "EventStorage",
    "HookBase",
    "IterationTimer",
    "JSONWriter",
    "LRMultiplier",
    "LRScheduler",
    "PeriodicCheckpointer",
    "PeriodicWriter",
    "ProgressBar",
    "SimpleTrainer",
    "TensorboardWriter",
    "TrainerBase",
    "build_evaluator",
    "build_model",
    "check_checkpoint",
    "check_output_dir",
    "comm",
    "configure_cpu_threads",
    "default_argument_parser",
    "default_setup",
    "do_test",
    "do_train",
    "get_rng_state",
    "inference_on_dataset",
    "launch",
    "launched_by_torchrun",
    "load_for_eval",
    "resolve_device",
    "set_rng_state",
    "setup_logging",
    "unwrap_model",
]
