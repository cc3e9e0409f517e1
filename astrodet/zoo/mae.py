"""MAE ViT-B/16 (He et al. 2022): the pretrained encoder, probed on its CLS token.

Checkpoint layouts accepted:

* the official ``mae_pretrain_vit_base.pth``: ``{"model": encoder state dict}``; full
  training checkpoints also carry ``mask_token`` and the ``decoder_*`` weights, which the
  trunk does not use;
* Hugging Face ViT-MAE (``facebook/vit-mae-base``): ``vit.`` encoder with separate q/k/v,
  ``decoder.`` ignored;
* timm's own layout (the hub weights ``vit_base_patch16_224.mae``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .registry import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, ZooEntry, register_model
from .vit import create_vit, finish_vit_state, unwrap

INFO = ModelInfo(
    name="mae",
    family="vit",
    arch="vit_base_patch16_224",
    input_size=224,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    patch_size=16,
    feature_dim=768,
    feature="cls",
    checkpoint="mae_pretrain_vit_base.pth",
    url="https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_base.pth",
    hub="timm:vit_base_patch16_224.mae",
)

# Present in MAE pretraining checkpoints, unused by the encoder trunk.
IGNORED = ("mask_token", "decoder")


def build_mae(**kwargs: Any) -> nn.Module:
    """A random MAE ViT trunk; ``kwargs`` go to timm (embed_dim, depth, img_size, ...)."""
    return create_vit(INFO.arch, **kwargs)


def convert_mae(obj: Any, model: nn.Module, *, source: str) -> tuple[dict, tuple[str, ...]]:
    """Official MAE / Hugging Face ViT-MAE / timm weights -> the trunk's state dict."""
    state_dict = unwrap(obj, ("model",), source=source)
    return finish_vit_state(state_dict, model, source=source), IGNORED


ENTRY = register_model(
    ZooEntry(info=INFO, build=build_mae, convert=convert_mae, features=("cls", "mean"))
)
