"""``timm:<name>``: any timm model as a trunk, with timm's own preprocessing settings.

A timm ``VisionTransformer`` becomes a ``"vit"`` trunk (CLS feature, or mean of patch tokens
when it has no class token, any input size that is a multiple of its patch size); any other
timm model is a ``"timm"`` trunk whose feature is timm's own pooled output.
"""

from __future__ import annotations

import functools
from typing import Any

import timm
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from .registry import TIMM_PREFIX, ModelInfo, ZooEntry
from .vit import create_vit, finish_vit_state, strip_prefix, unwrap


def _classifier_prefixes(cfg: dict) -> tuple[str, ...]:
    names = cfg.get("classifier") or "head"
    names = (names,) if isinstance(names, str) else tuple(names)
    return tuple(f"{name}." for name in names)


@functools.cache
def timm_entry(model_name: str) -> ZooEntry:
    """The zoo entry for the timm model ``model_name`` (a pretrained tag is allowed).

    Raises:
        ValueError: timm does not know the name.
    """
    if not timm.is_model(model_name):
        raise ValueError(
            f"unknown timm model {model_name!r} (in {TIMM_PREFIX}{model_name}); "
            f"timm.list_models() lists the valid names"
        )
    # Built on the meta device: the architecture is read without allocating weights.
    with torch.device("meta"):
        probe = timm.create_model(model_name, pretrained=False, num_classes=0)
    cfg = dict(probe.pretrained_cfg or {})
    input_size = int(cfg.get("input_size", (3, 224, 224))[-1])
    is_vit = isinstance(probe, VisionTransformer)
    if is_vit:
        family, patch = "vit", int(probe.patch_embed.patch_size[0])
        feature = "cls" if probe.cls_token is not None else "mean"
        features = ("cls", "mean") if probe.cls_token is not None else ("mean",)
        dim = int(probe.num_features)
    else:
        family, patch, feature, features = "timm", None, "pool", ("pool",)
        with torch.no_grad():
            dim = int(probe(torch.empty(1, 3, input_size, input_size, device="meta")).shape[-1])
    has_hub = bool(cfg.get("hf_hub_id") or cfg.get("url"))
    info = ModelInfo(
        name=f"{TIMM_PREFIX}{model_name}",
        family=family,
        arch=model_name,
        input_size=input_size,
        mean=tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225))),
        patch_size=patch,
        feature_dim=dim,
        feature=feature,
        checkpoint=None,
        url=None,
        hub=f"timm:{model_name}" if has_hub else None,
    )
    ignored = _classifier_prefixes(cfg)

    def build(**kwargs: Any) -> nn.Module:
        if is_vit:
            kwargs.setdefault("img_size", input_size)
            return create_vit(model_name, **kwargs)
        kwargs.setdefault("num_classes", 0)
        return timm.create_model(model_name, pretrained=False, **kwargs)

    def convert(obj: Any, model: nn.Module, *, source: str) -> tuple[dict, tuple[str, ...]]:
        state_dict = unwrap(obj, ("state_dict", "model"), source=source)
        if is_vit:
            return finish_vit_state(state_dict, model, source=source), ignored
        return strip_prefix(state_dict, "module."), ignored

    return ZooEntry(info=info, build=build, convert=convert, features=features)
