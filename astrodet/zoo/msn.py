"""MSN ViT-B/16 (Assran et al. 2022): the target encoder, probed on its CLS token.

Checkpoint layouts accepted:

* the official ``vitb16_600ep.pth.tar``: ``{"encoder", "target_encoder", "prototypes", ...}``.
  The ``target_encoder`` (the momentum encoder MSN evaluates) is taken, its DDP ``module.``
  prefix removed and the ``fc.`` projection head ignored. ``encoder`` is the online encoder
  and is never used: a file with only ``encoder`` is refused rather than half-right;
* Hugging Face ViT-MSN (``facebook/vit-msn-base``): separate q/k/v stacked into timm's qkv;
* timm's own layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from .registry import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, ZooEntry, register_model
from .vit import create_vit, finish_vit_state, is_state_dict, top_keys, unwrap
from .weights import CheckpointError

INFO = ModelInfo(
    name="msn",
    family="vit",
    arch="vit_base_patch16_224",
    input_size=224,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    patch_size=16,
    feature_dim=768,
    feature="cls",
    checkpoint="vitb16_600ep.pth.tar",
    url="https://dl.fbaipublicfiles.com/msn/vitb16_600ep.pth.tar",
    hub="hf:facebook/vit-msn-base",
)

# MSN projection head; HF classifier, pooler and mask token.
IGNORED = ("fc.", "classifier.", "pooler.", "mask_token")


def build_msn(**kwargs: Any) -> nn.Module:
    """A random MSN ViT trunk; ``kwargs`` go to timm (embed_dim, depth, img_size, ...)."""
    return create_vit(INFO.arch, **kwargs)


def convert_msn(obj: Any, model: nn.Module, *, source: str) -> tuple[dict, tuple[str, ...]]:
    """Official MSN / Hugging Face ViT-MSN / timm weights -> the trunk's state dict."""
    if isinstance(obj, Mapping) and not is_state_dict(obj):
        if "target_encoder" not in obj and "encoder" in obj:
            raise CheckpointError(
                f"checkpoint {source!r} has an 'encoder' but no 'target_encoder': MSN is "
                f"evaluated with its target encoder, the online encoder is not used "
                f"({top_keys(obj)})"
            )
    state_dict = unwrap(obj, ("target_encoder",), source=source)
    return finish_vit_state(state_dict, model, source=source), IGNORED


ENTRY = register_model(
    ZooEntry(info=INFO, build=build_msn, convert=convert_msn, features=("cls", "mean"))
)
