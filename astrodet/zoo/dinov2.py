"""DINOv2 ViT-B/14 (Oquab et al. 2023), probed on its CLS token.

The zoo keeps patch 14 and builds the position-embedding grid for the input size (16x16 at
224 px unless ``img_size`` says otherwise); the official weights, trained at 518 px (37x37
grid), are resampled to it on loading the way DINOv2 itself resamples them for a smaller
input (:func:`resample_pos_embed_dinov2`), so features at the built size are the official
model's.

Checkpoint layouts accepted:

* the official ``dinov2_vitb14_pretrain.pth`` (plain state dict): ``mask_token`` (unused by
  the trunk), LayerScale ``blocks.N.ls1.gamma`` / ``ls2.gamma`` (the names timm uses too),
  blocks optionally grouped in chunks (``blocks.C.N.*``), a 37x37 ``pos_embed``;
* Hugging Face ``Dinov2Model`` (``facebook/dinov2-base``, the weights the paper loaded):
  ``embeddings.*``, ``encoder.layer.N.*`` with separate query/key/value and
  ``layer_scale{1,2}.lambda1``, ``layernorm.*`` (``dinov2.``-prefixed with a ``classifier``
  in ``Dinov2ForImageClassification``);
* timm's own layout (the hub weights ``vit_base_patch14_dinov2.lvd142m``, also at 518 px).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .registry import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, ZooEntry, register_model
from .vit import adapt_pos_embed, create_vit, hf_vit_to_timm, is_hf_vit, strip_prefix, unwrap

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

# The mask token (official and Hugging Face), unused by the trunk; the head of Hugging Face's
# Dinov2ForImageClassification.
IGNORED = ("mask_token", "classifier.")

_CHUNKED = re.compile(r"^blocks\.\d+\.(\d+)\.")
# Older LayerScale names (``gamma_1`` on the block) -> timm's LayerScale modules.
_GAMMA = re.compile(r"^(blocks\.\d+)\.gamma_([12])$")
# DINOv2 adds this to the target grid before computing the scale factor (a guard against
# rounding the output size down); the sampling positions follow the offset scale.
INTERPOLATE_OFFSET = 0.1


def resample_pos_embed_dinov2(
    pos_embed: torch.Tensor,
    *,
    new_size: Sequence[int],
    old_size: Sequence[int],
    num_prefix_tokens: int = 1,
) -> torch.Tensor:
    """Resample a position embedding as DINOv2's ``interpolate_pos_encoding`` does.

    Bicubic, no antialiasing, in float32, with the scale factor ``(new + 0.1) / old`` per
    axis: the sampling positions differ from a resize to ``new_size`` (what timm does, with
    antialiasing too), by several percent for 37x37 -> 16x16.

    Args:
        pos_embed: 1 x (prefix + H*W) x C.
        new_size: target grid (rows, columns).
        old_size: grid of ``pos_embed`` (rows, columns).
        num_prefix_tokens: leading tokens (CLS) kept as they are.
    """
    new_h, new_w = (int(s) for s in new_size)
    old_h, old_w = (int(s) for s in old_size)
    if (new_h, new_w) == (old_h, old_w):
        return pos_embed
    dtype = pos_embed.dtype
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    dim = grid.shape[-1]
    grid = grid.float().reshape(1, old_h, old_w, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(
        grid,
        scale_factor=(
            (new_h + INTERPOLATE_OFFSET) / old_h,
            (new_w + INTERPOLATE_OFFSET) / old_w,
        ),
        mode="bicubic",
        align_corners=False,
        antialias=False,
    )
    if tuple(grid.shape[-2:]) != (new_h, new_w):  # pragma: no cover - guarded by the offset
        raise RuntimeError(f"DINOv2 resampling gave {tuple(grid.shape[-2:])}, not {new_size}")
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_h * new_w, dim)
    return torch.cat([prefix.float(), grid], dim=1).to(dtype)


def build_dinov2(**kwargs: Any) -> nn.Module:
    """A random DINOv2 ViT trunk (224 px grid unless ``img_size`` is given)."""
    return create_vit(INFO.arch, **kwargs)


def convert_dinov2(obj: Any, model: nn.Module, *, source: str) -> tuple[dict, tuple[str, ...]]:
    """Official DINOv2 / Hugging Face / timm weights -> the trunk's state dict, the position
    embedding resampled to the trunk's grid as DINOv2 does."""
    state_dict = strip_prefix(unwrap(obj, ("model",), source=source), "module.")
    state_dict = strip_prefix(state_dict, "dinov2.")  # Dinov2ForImageClassification
    if is_hf_vit(state_dict):
        state_dict = hf_vit_to_timm(state_dict, source=source)
    out = {}
    for key, value in state_dict.items():
        key = _CHUNKED.sub(r"blocks.\1.", key)
        key = _GAMMA.sub(r"\1.ls\2.gamma", key)
        out[key] = value
    return adapt_pos_embed(out, model, resample=resample_pos_embed_dinov2), IGNORED


ENTRY = register_model(
    ZooEntry(info=INFO, build=build_dinov2, convert=convert_dinov2, features=("cls", "mean"))
)
