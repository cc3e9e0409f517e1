"""Optimizer parameter groups (weight decay, layer-wise lr decay) and the lr schedule."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from fvcore.common.param_scheduler import ParamScheduler
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["WarmupSchedule", "get_optimizer_params"]

_NORMS = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
)
# Embedding-like parameters are not decayed (as in ViTDet / MAE fine-tuning).
_NO_DECAY_NAMES = ("pos_embed", "cls_token", "reg_token", "dist_token", "mask_token")


def _vit_backbones(model: nn.Module) -> list[tuple[str, nn.Module]]:
    from .backbone.vit import ViTBackbone

    return [
        (n + "." if n else "", m) for n, m in model.named_modules() if isinstance(m, ViTBackbone)
    ]


def get_optimizer_params(
    *,
    model: nn.Module,
    base_lr: float,
    weight_decay: float,
    weight_decay_norm: float = 0.0,
    lr_decay_rate: float | None = None,
    num_layers: int | None = None,
) -> list[dict]:
    """Parameter groups for a torch optimizer.

    Norm-layer weights and biases get ``weight_decay_norm``; other biases, position
    embeddings and class/register tokens get no weight decay; everything else
    ``weight_decay``. With ``lr_decay_rate``, parameters of a ViT trunk (a
    :class:`~astrodet.modeling.backbone.ViTBackbone` inside ``model``) get ViTDet's
    layer-wise lr decay: ``base_lr * lr_decay_rate ** (num_layers + 1 - layer_id)``, where
    ``layer_id`` is 0 for the patch/position embeddings and tokens, ``i + 1`` for block
    ``i`` and ``num_layers + 1`` for the trunk's final norm; the pyramid and heads keep
    ``base_lr``. Frozen parameters (``requires_grad=False``) are left out.

    Args:
        model: the detector (or any module).
        base_lr: learning rate of the undecayed parameters.
        weight_decay: weight decay of ordinary weights.
        weight_decay_norm: weight decay of normalisation layers' parameters.
        lr_decay_rate: layer-wise decay factor (ViTDet: 0.7), None for no decay.
        num_layers: number of trunk blocks (default: taken from the trunk).

    Returns:
        A list of ``{"params", "lr", "weight_decay"}`` dicts, one per distinct setting.
    """
    vits = _vit_backbones(model) if lr_decay_rate is not None else []
    if lr_decay_rate is not None and not vits:
        logger.info("lr_decay_rate=%s ignored: the model has no ViT trunk", lr_decay_rate)
    norm_params = {
        id(p) for m in model.modules() if isinstance(m, _NORMS) for p in m.parameters(False)
    }
    norm_params |= {
        id(p)
        for m in model.modules()
        if type(m).__name__.startswith(("LayerNorm", "RMSNorm"))
        for p in m.parameters(False)
    }
    groups: dict[tuple[float, float], list] = {}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        if id(p) in norm_params:
            wd = weight_decay_norm
        elif p.ndim <= 1 or name.rsplit(".", 1)[-1] in _NO_DECAY_NAMES:
            wd = 0.0
        else:
            wd = weight_decay
        lr = base_lr
        for prefix, vit in vits:
            if name.startswith(prefix):
                layer_id = vit.layer_id(name[len(prefix) :])
                if layer_id is not None:
                    n = num_layers if num_layers is not None else vit.num_layers
                    lr = base_lr * lr_decay_rate ** (n + 1 - min(layer_id, n + 1))
                break
        groups.setdefault((lr, wd), []).append(p)
    return [
        {"params": params, "lr": lr, "weight_decay": wd}
        for (lr, wd), params in sorted(groups.items(), key=lambda kv: (-kv[0][0], -kv[0][1]))
    ]


class WarmupSchedule(ParamScheduler):
    """lr multiplier over training progress ``where`` in [0, 1): linear warmup from
    ``warmup_factor`` to 1 over the first ``warmup_fraction``, then ``"step"`` (times
    ``gamma`` at each fraction in ``milestones``) or ``"cosine"`` (down to ``min_factor``).

    An fvcore ``ParamScheduler``: the trainer sets ``lr = lr_of_group * schedule(iter /
    max_iter)``. Being written in fractions of training, it stays right when
    ``train.max_iter`` is overridden.

    Args:
        warmup_fraction: warmup length as a fraction of training.
        warmup_factor: multiplier at the start of warmup.
        decay: ``"step"``, ``"cosine"`` or ``"constant"``.
        milestones: fractions of training at which ``"step"`` multiplies by ``gamma``.
        gamma: step factor.
        min_factor: final multiplier of ``"cosine"``.
    """

    def __init__(
        self,
        *,
        warmup_fraction: float = 0.01,
        warmup_factor: float = 0.001,
        decay: str = "step",
        milestones: Sequence[float] = (0.89, 0.96),
        gamma: float = 0.1,
        min_factor: float = 0.0,
    ) -> None:
        if decay not in ("step", "cosine", "constant"):
            raise ValueError(f"decay={decay!r} is not valid; use 'step', 'cosine' or 'constant'")
        if not 0.0 <= warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
        if any(not 0.0 < m <= 1.0 for m in milestones):
            raise ValueError(f"milestones are fractions of training in (0, 1], got {milestones}")
        self.warmup_fraction = float(warmup_fraction)
        self.warmup_factor = float(warmup_factor)
        self.decay = decay
        self.milestones = sorted(float(m) for m in milestones)
        self.gamma = float(gamma)
        self.min_factor = float(min_factor)

    def __call__(self, where: float) -> float:
        where = min(max(float(where), 0.0), 1.0)
        if self.decay == "step":
            value = self.gamma ** sum(where >= m for m in self.milestones)
        elif self.decay == "cosine":
            value = self.min_factor + 0.5 * (1.0 - self.min_factor) * (
                1 + math.cos(math.pi * where)
            )
        else:
            value = 1.0
        if where < self.warmup_fraction:
            alpha = where / self.warmup_fraction
            value *= self.warmup_factor * (1 - alpha) + alpha
        return value
