"""Optimizer parameter groups (weight decay, layer-wise lr decay) and the lr schedule.

The schedules are built from fvcore's schedulers, imported only when one is made, so the
package imports where fvcore is not installed (e.g. for the probes or inference alone).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

from torch import nn

logger = logging.getLogger(__name__)

# WarmupParamScheduler is made on first use (module __getattr__ below)
__all__ = ["WarmupParamScheduler", "WarmupSchedule", "get_optimizer_params"]  # noqa: F822

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


def _fvcore_schedulers():
    """fvcore's ``param_scheduler`` module, with an error that says what needs it."""
    try:
        from fvcore.common import param_scheduler
    except ImportError as e:
        raise ImportError(
            "the lr schedules (WarmupParamScheduler, WarmupSchedule) are built from fvcore's "
            "schedulers: pip install 'fvcore>=0.1.5'"
        ) from e
    return param_scheduler


def _build_warmup_param_scheduler() -> type:
    """The ``WarmupParamScheduler`` class, a subclass of fvcore's
    ``CompositeParamScheduler`` (made once, on first use)."""
    ps = _fvcore_schedulers()
    CompositeParamScheduler, ParamScheduler = ps.CompositeParamScheduler, ps.ParamScheduler
    LinearParamScheduler, ConstantParamScheduler = (
        ps.LinearParamScheduler,
        ps.ConstantParamScheduler,
    )

    class WarmupParamScheduler(CompositeParamScheduler):
        """Detectron2's ``WarmupParamScheduler`` (same name and arguments): ``scheduler`` with a
        warmup over its first ``warmup_length`` of training, built from fvcore's schedulers.

        During warmup the multiplier goes from ``warmup_factor * scheduler(0)`` to
        ``scheduler(warmup_length)``, linearly (``"linear"``) or held at the start value
        (``"constant"``); afterwards it is ``scheduler(where)``.

        Args:
            scheduler: the fvcore ``ParamScheduler`` after warmup, a function of ``where`` in
                [0, 1] (the fraction of training done).
            warmup_factor: multiplier of ``scheduler(0)`` at the start of warmup.
            warmup_length: warmup as a fraction of training, in [0, 1).
            warmup_method: ``"linear"`` or ``"constant"``.
            rescale_interval: run ``scheduler`` over what remains after warmup instead of over
                the whole of training.
        """

        def __init__(
            self,
            scheduler: ParamScheduler,
            warmup_factor: float,
            warmup_length: float,
            warmup_method: str = "linear",
            rescale_interval: bool = False,
        ) -> None:
            if not 0.0 <= warmup_length < 1.0:
                raise ValueError(
                    f"warmup_length must be a fraction of training in [0, 1), got {warmup_length}"
                )
            start = warmup_factor * scheduler(0.0)
            if warmup_method == "linear":
                warmup = LinearParamScheduler(start, scheduler(warmup_length))
            elif warmup_method == "constant":
                warmup = ConstantParamScheduler(start)
            else:
                raise ValueError(
                    f"warmup_method={warmup_method!r} is not valid; use 'linear' or 'constant'"
                )
            super().__init__(
                [warmup, scheduler],
                lengths=[warmup_length, 1.0 - warmup_length],
                interval_scaling=["rescaled", "rescaled" if rescale_interval else "fixed"],
            )

    WarmupParamScheduler.__module__ = __name__
    WarmupParamScheduler.__qualname__ = "WarmupParamScheduler"
    return WarmupParamScheduler


def _warmup_param_scheduler() -> type:
    """``WarmupParamScheduler``, made on the first call and kept in the module."""
    cls = globals().get("WarmupParamScheduler")
    if cls is None:
        cls = globals()["WarmupParamScheduler"] = _build_warmup_param_scheduler()
    return cls


def __getattr__(name: str) -> Any:
    # WarmupParamScheduler subclasses an fvcore class, so it is made when first asked for
    # (``from astrodet.modeling.optim import WarmupParamScheduler``, a config's _target_)
    if name == "WarmupParamScheduler":
        return _warmup_param_scheduler()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "WarmupParamScheduler"})


# Milestones of the deprecated WarmupSchedule, fractions of training, in millionths.
_STEPS = 1_000_000


class WarmupSchedule:
    """Deprecated: the configs now use fvcore's schedulers inside
    :class:`WarmupParamScheduler`, as Detectron2 does (``configs/common/schedule.py``).
    Kept for configs that name it; built from the same pieces (a callable of the fraction
    of training done, as fvcore's schedulers are).

    Linear warmup from ``warmup_factor`` over the first ``warmup_fraction`` of training,
    then ``"step"`` (times ``gamma`` at each fraction in ``milestones``), ``"cosine"`` (down
    to ``min_factor``) or ``"constant"``.
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
        warnings.warn(
            "WarmupSchedule is deprecated; use WarmupParamScheduler around an fvcore "
            "scheduler (see configs/common/schedule.py)",
            DeprecationWarning,
            stacklevel=2,
        )
        ps = _fvcore_schedulers()
        if any(not 0.0 < m <= 1.0 for m in milestones):
            raise ValueError(f"milestones are fractions of training in (0, 1], got {milestones}")
        if decay == "step":
            # a milestone at 1.0 would only act after the last iteration
            steps = sorted({round(m * _STEPS) for m in milestones if m < 1.0})
            base = ps.MultiStepParamScheduler(
                values=[gamma**i for i in range(len(steps) + 1)],
                num_updates=_STEPS,
                milestones=steps,
            )
        elif decay == "cosine":
            base = ps.CosineParamScheduler(1.0, min_factor)
        elif decay == "constant":
            base = ps.ConstantParamScheduler(1.0)
        else:
            raise ValueError(f"decay={decay!r} is not valid; use 'step', 'cosine' or 'constant'")
        self._scheduler = (
            _warmup_param_scheduler()(base, warmup_factor, warmup_fraction)
            if warmup_fraction > 0
            else base
        )

    def __call__(self, where: float) -> float:
        return self._scheduler(min(max(float(where), 0.0), 1.0))
