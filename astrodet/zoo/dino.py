"""DINO ViT-B/16 (Caron et al. 2021): the teacher backbone, probed on its CLS token.

Checkpoint layouts accepted:

* the official ``dino_vitbase16_pretrain.pth``: the teacher backbone as a plain state dict,
  already in timm's names;
* a full DINO training checkpoint: ``{"teacher": {"backbone.*", "head.*"}, "student": ...}``;
  the teacher backbone is taken (an optional ``module.`` prefix removed), its DINO head
  ignored;
* Hugging Face ViT (``facebook/dino-vitb16``) and timm's own layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from .registry import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, ZooEntry, register_model
from .vit import create_vit, finish_vit_state, strip_prefix, unwrap

INFO = ModelInfo(
    name="dino",
    family="vit",
    arch="vit_base_patch16_224",
    input_size=224,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    patch_size=16,
    feature_dim=768,
    feature="cls",
    checkpoint="dino_vitbase16_pretrain.pth",
    url="https://dl.fbaipublicfiles.com/dino/dino_vitbase16_pretrain/dino_vitbase16_pretrain.pth",
    hub="timm:vit_base_patch16_224.dino",
)

# The DINO projection head of training checkpoints; HF pooler.
IGNORED = ("head.", "pooler.", "mask_token")


def build_dino(**kwargs: Any) -> nn.Module:
    """A random DINO ViT trunk; ``kwargs`` go to timm (embed_dim, depth, img_size, ...)."""
    return create_vit(INFO.arch, **kwargs)


def convert_dino(obj: Any, model: nn.Module, *, source: str) -> tuple[dict, tuple[str, ...]]:
    """Official DINO backbone / DINO training checkpoint / HF / timm -> the trunk's state dict."""
    if isinstance(obj, Mapping) and isinstance(obj.get("teacher"), Mapping):
        # The teacher, not the student, is the network DINO evaluates and releases.
        state_dict = strip_prefix(strip_prefix(obj["teacher"], "module."), "backbone.")
    else:
        state_dict = unwrap(obj, ("state_dict",), source=source)
    return finish_vit_state(state_dict, model, source=source), IGNORED


ENTRY = register_model(
    ZooEntry(info=INFO, build=build_dino, convert=convert_dino, features=("cls", "mean"))
)
