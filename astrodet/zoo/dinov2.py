"""DINOv2 ViT-B/14 (Oquab et al. 2023), probed on its CLS token.

The zoo keeps patch 14 and builds the position-embedding grid for 224 px (16x16); the
official weights, trained at 518 px (37x37 grid), are resampled to it on loading.

Checkpoint layouts accepted:

* the official ``dinov2_vitb14_pretrain.pth`` (plain state dict): ``mask_token`` (unused by
  the trunk), LayerScale ``blocks.N.ls1.gamma`` / ``ls2.gamma`` (the names timm uses too),
  blocks optionally grouped in chunks (``blocks.C.N.*``), a 37x37 ``pos_embed``;
* timm's own layout (the hub weights ``vit_base_patch14_dinov2.lvd142m``, also at 518 px).
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

from .registry import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, ZooEntry, register_model
from .vit import adapt_pos_embed, create_vit, strip_prefix, unwrap

INFO = ModelInfo(
    name="dinov2",
    family="vit",
    arch="vit_base_patch14_dinov2",
    input_size=224,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    patch_size=14,
    feature_dim=768,
    feature="cls",
    checkpoint="dinov2_vitb14_pretrain.pth",
    url="https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth",
    hub="timm:vit_base_patch14_dinov2.lvd142m",
)

IGNORED = ("mask_token",)

_CHUNKED = re.compile(r"^blocks\.\d+\.(\d+)\.")
# Older LayerScale names (``gamma_1`` on the block) -> timm's LayerScale modules.
_GAMMA = re.compile(r"^(blocks\.\d+)\.gamma_([12])$")


def build_dinov2(**kwargs: Any) -> nn.Module:
    """A random DINOv2 ViT trunk (224 px grid unless ``img_size`` is given)."""
    return create_vit(INFO.arch, **kwargs)


def convert_dinov2(obj: Any, model: nn.Module, *, source: str) -> tuple[dict, tuple[str, ...]]:
    """Official DINOv2 / timm weights -> the trunk's state dict (pos_embed resampled)."""
    state_dict = strip_prefix(unwrap(obj, ("model",), source=source), "module.")
    out = {}
    for key, value in state_dict.items():
        key = _CHUNKED.sub(r"blocks.\1.", key)
        key = _GAMMA.sub(r"\1.ls\2.gamma", key)
        out[key] = value
    return adapt_pos_embed(out, model), IGNORED


ENTRY = register_model(
    ZooEntry(info=INFO, build=build_dinov2, convert=convert_dinov2, features=("cls", "mean"))
)
