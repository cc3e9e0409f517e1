"""torchvision ResNet-50 / ResNet-18 trunks: the network up to global average pooling.

Checkpoint layout: torchvision's (``resnet50-11ad3fa6.pth`` = ``IMAGENET1K_V2``,
``resnet18-f37072fd.pth`` = ``IMAGENET1K_V1``), optionally wrapped in ``state_dict`` /
``model`` with a ``module.`` prefix; the ``fc.`` classifier is ignored.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .registry import IMAGENET_MEAN, IMAGENET_STD, ModelInfo, ZooEntry, register_model
from .vit import strip_prefix, unwrap

IGNORED = ("fc.",)


def build_resnet(arch: str, **kwargs: Any) -> nn.Module:
    """A random torchvision ResNet whose ``fc`` is the identity: it returns pooled features.

    Args:
        arch: ``"resnet50"``, ``"resnet18"`` or another torchvision ResNet builder.
        **kwargs: torchvision builder arguments (e.g. ``width_per_group``).
    """
    import torchvision  # imported on first build, so listing the zoo stays quick

    model = getattr(torchvision.models, arch)(weights=None, **kwargs)
    # timm's name for the pooled width, so every trunk exposes its feature size alike.
    model.num_features = model.fc.in_features
    model.fc = nn.Identity()
    return model


def convert_resnet(obj: Any, model: nn.Module, *, source: str) -> tuple[dict, tuple[str, ...]]:
    """torchvision ResNet weights -> the trunk's state dict."""
    state_dict = strip_prefix(unwrap(obj, ("state_dict", "model"), source=source), "module.")
    # Checkpoints saved before BatchNorm counted its steps lack ``num_batches_tracked``; it is
    # a counter used only when momentum is None, not a learnt weight, so it starts at zero.
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state_dict:
            if key.rsplit(".", 1)[0] + ".running_mean" in state_dict:
                state_dict[key] = torch.zeros_like(value)
    return state_dict, IGNORED


def _info(name: str, dim: int, checkpoint: str, weights: str) -> ModelInfo:
    return ModelInfo(
        name=name,
        family="resnet",
        arch=name,
        input_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        patch_size=None,
        feature_dim=dim,
        feature="avgpool",
        checkpoint=checkpoint,
        url=f"https://download.pytorch.org/models/{checkpoint}",
        hub=f"torchvision:{weights}",
    )


def build_resnet50(**kwargs: Any) -> nn.Module:
    """A random ResNet-50 trunk."""
    return build_resnet("resnet50", **kwargs)


def build_resnet18(**kwargs: Any) -> nn.Module:
    """A random ResNet-18 trunk."""
    return build_resnet("resnet18", **kwargs)


RESNET50 = register_model(
    ZooEntry(
        info=_info("resnet50", 2048, "resnet50-11ad3fa6.pth", "ResNet50_Weights.IMAGENET1K_V2"),
        build=build_resnet50,
        convert=convert_resnet,
        features=("avgpool",),
    )
)
RESNET18 = register_model(
    ZooEntry(
        info=_info("resnet18", 512, "resnet18-f37072fd.pth", "ResNet18_Weights.IMAGENET1K_V1"),
        build=build_resnet18,
        convert=convert_resnet,
        features=("avgpool",),
    )
)
