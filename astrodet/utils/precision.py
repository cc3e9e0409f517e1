"""Numeric precision of a forward pass: names, how ``auto`` resolves on a device, the
autocast context and the loss scaler each needs.

Shared by training (``train.precision``, ``train.amp``) and probe features
(``--precision``), so one name means one thing everywhere: ``fp32`` is float32 throughout,
``bf16`` / ``fp16`` autocast the forward pass to bfloat16 / float16 (weights and optimizer
state stay float32). Only ``fp16`` needs loss scaling: its 5-bit exponent underflows small
gradients, while bfloat16 has float32's range.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = [
    "PRECISIONS",
    "autocast",
    "bf16_supported",
    "grad_scaler",
    "resolve_precision",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def bf16_supported(device: torch.device | str) -> bool:
    """Whether ``device`` computes bfloat16 in hardware: CUDA GPUs from Ampere on (older
    ones only emulate it, slower than float32). A CPU autocasts to bfloat16 everywhere, so
    this is True there; whether that is faster depends on the CPU.

    Args:
        device: a torch device or its name.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return True
    if not torch.cuda.is_available():
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch without the emulation flag answers for the hardware
        return bool(torch.cuda.is_bf16_supported())


def resolve_precision(
    precision: str | None = None, *, device: torch.device | str, amp: bool = False
) -> str:
    """The precision a run uses: ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    Args:
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"``, ``"auto"`` (bf16 on a CUDA device that
            computes it in hardware, else fp32: a CPU is left in float32) or None (follow
            ``amp``). A given precision overrides ``amp``.
        device: where the forward pass runs.
        amp: mixed precision (``train.amp``): bf16 where the device supports it, else fp16
            with loss scaling; False is fp32. Only read when ``precision`` is None.

    Raises:
        ValueError: an unknown name, or bf16 asked of a CUDA device without it.
    """
    device = torch.device(device)
    if precision is None:
        if not amp:
            return "fp32"
        return "bf16" if bf16_supported(device) else "fp16"
    precision = str(precision).lower()
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" and bf16_supported(device) else "fp32"
    if precision == "bf16" and not bf16_supported(device):
        raise ValueError(
            f"precision 'bf16': {device} does not compute bfloat16 in hardware; use 'fp16' "
            "(with loss scaling) or 'fp32'"
        )
    return precision


def autocast(precision: str, device: torch.device | str):
    """The autocast context of a resolved ``precision`` on ``device`` (none for fp32).

    Args:
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (see :func:`resolve_precision`).
        device: where the forward pass runs.
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in _DTYPES:
        raise ValueError(f"precision {precision!r} is not resolved; use resolve_precision first")
    return torch.autocast(device_type=torch.device(device).type, dtype=_DTYPES[precision])


def grad_scaler(precision: str, device: torch.device | str) -> torch.amp.GradScaler | None:
    """A ``torch.amp.GradScaler`` for fp16 training on ``device``; None for fp32 and bf16,
    which need no loss scaling.

    Args:
        precision: a resolved precision.
        device: where the backward pass runs.
    """
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(torch.device(device).type)
