"""Run a model over a test loader and feed an evaluator (Detectron2's
``inference_on_dataset``)."""

from __future__ import annotations

import logging
import time

import torch
from torch import nn

from astrodet.utils.precision import autocast, resolve_precision

from . import comm
from .checkpoint import unwrap_model

__all__ = ["inference_on_dataset"]

logger = logging.getLogger(__name__)


def _to_cpu(output: dict) -> dict:
    return {
        k: (v.detach().float().cpu() if v.is_floating_point() else v.detach().cpu())
        if torch.is_tensor(v)
        else v
        for k, v in output.items()
    }


def inference_on_dataset(
    model: nn.Module,
    data_loader,
    evaluator,
    *,
    device: torch.device | str | None = None,
    amp: bool = False,
    precision: str | None = None,
) -> dict:
    """Predict every batch of ``data_loader`` in eval mode and return ``evaluator.evaluate()``.

    The model's training mode is restored afterwards; a DDP wrapper is bypassed (each rank
    predicts its own shard and the evaluator gathers).

    Args:
        model: a torchvision-style detector (eval mode returns per-image dicts).
        data_loader: yields ``(images, targets, dicts)`` batches.
        evaluator: an object with ``reset``, ``process(dicts, outputs)``, ``evaluate``.
        device: where the images go (default: the model's device).
        amp: mixed precision (bfloat16 where the device supports it, else float16).
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"`` or ``"auto"``; overrides ``amp``.
    """
    model = unwrap_model(model)
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    precision = resolve_precision(precision, device=device, amp=amp)
    from tqdm.auto import tqdm

    evaluator.reset()
    was_training = model.training
    model.eval()
    start, n = time.perf_counter(), 0
    try:
        with torch.no_grad():
            bar = tqdm(
                data_loader,
                desc="eval",
                unit="batch",
                disable=not comm.is_main_process(),
                leave=False,
            )
            for images, _, dicts in bar:
                images = [im.to(device, non_blocking=True) for im in images]
                with autocast(precision, device):
                    outputs = model(images)
                evaluator.process(dicts, [_to_cpu(o) for o in outputs])
                n += len(images)
    finally:
        model.train(was_training)
    logger.info("inference on %d images took %.1f s", n, time.perf_counter() - start)
    return evaluator.evaluate()
