"""A torchvision ResNet trunk with a hierarchical FPN over C2..C5 plus a max-pooled level.

BatchNorm layers are always replaced by ``FrozenBatchNorm2d`` with the trunk's ImageNet
statistics, as torchvision's detection models do: detection batches (a few images) are too
small to estimate BN statistics, so they stay fixed even when fine-tuning (``freeze="none"``
trains the conv weights and the BN affine parameters become fixed buffers).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from .common import TrunkBackbone, check_freeze

__all__ = ["ResNetFPNBackbone", "build_resnet_fpn_backbone", "freeze_batch_norm"]

_STAGES = ("layer1", "layer2", "layer3", "layer4")


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` in ``module`` by a ``FrozenBatchNorm2d`` with the same
    statistics and affine parameters (in place; returns ``module``, or the replacement
    when ``module`` itself is a ``BatchNorm2d``)."""
    if isinstance(module, nn.BatchNorm2d):
        frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        with torch.no_grad():
            if module.affine:
                frozen.weight.copy_(module.weight)
                frozen.bias.copy_(module.bias)
            if module.track_running_stats:
                frozen.running_mean.copy_(module.running_mean)
                frozen.running_var.copy_(module.running_var)
        return frozen
    for name, child in module.named_children():
        new = freeze_batch_norm(child)
        if new is not child:
            setattr(module, name, new)
    return module


def _stage_channels(stage: nn.Sequential) -> int:
    block = stage[-1]
    conv = getattr(block, "conv3", None) or block.conv2
    return int(conv.out_channels)


class ResNetFPNBackbone(TrunkBackbone):
    """ResNet C2..C5 -> FPN p2..p5, plus p6 max-pooled from p5; see
    :func:`build_resnet_fpn_backbone`.

    Attributes:
        out_channels, out_feature_names (``["p2", ..., "p6"]``), out_feature_strides.
    """

    def __init__(self, trunk: nn.Module, *, freeze: str = "backbone", out_channels: int = 256):
        super().__init__(trunk, freeze)
        net = trunk.model
        if not all(hasattr(net, s) for s in _STAGES):
            raise ValueError(
                f"trunk {trunk.info.name!r} is not a ResNet (family {trunk.info.family!r}); "
                "use build_vit_backbone for ViTs"
            )
        freeze_batch_norm(net)
        # The classifier is unused; drop it so every parameter takes part in the loss.
        net.fc = nn.Identity()
        in_channels = [_stage_channels(getattr(net, s)) for s in _STAGES]
        self.fpn = FeaturePyramidNetwork(
            in_channels_list=in_channels,
            out_channels=out_channels,
            extra_blocks=LastLevelMaxPool(),
        )
        self.out_channels = out_channels
        self.out_feature_names = ["p2", "p3", "p4", "p5", "p6"]
        self.out_feature_strides = {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}
        self._apply_freeze()

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """Args:
            images: N x 3 x H x W normalised with the trunk's mean/std.

        Returns:
            ``OrderedDict`` p2..p6.
        """
        net = self.trunk.model
        x = net.maxpool(net.relu(net.bn1(net.conv1(images))))
        feats = OrderedDict()
        for i, stage in enumerate(_STAGES):
            x = getattr(net, stage)(x)
            feats[f"p{i + 2}"] = x
        out = self.fpn(feats)
        # LastLevelMaxPool names its level "pool"; Detectron2 calls it p6.
        return OrderedDict(("p6" if k == "pool" else k, v) for k, v in out.items())


def build_resnet_fpn_backbone(
    *,
    trunk: str | nn.Module = "resnet50",
    weights: str = "auto",
    freeze: str = "backbone",
    out_channels: int = 256,
    trunk_kwargs: dict[str, Any] | None = None,
) -> ResNetFPNBackbone:
    """A ResNet-FPN backbone on a zoo ResNet (ImageNet weights through the zoo).

    Args:
        trunk: ``"resnet50"``, ``"resnet18"`` or a built :class:`astrodet.zoo.Trunk`.
        weights: ``"auto"``, ``"hub"``, ``"none"`` or a checkpoint path.
        freeze: ``"backbone"`` (trunk fixed) or ``"none"`` (fine-tune; BN stays frozen).
        out_channels: FPN channels.
        trunk_kwargs: torchvision ResNet keyword arguments.
    """
    check_freeze(freeze)
    if isinstance(trunk, str):
        from astrodet.zoo import build_trunk

        trunk = build_trunk(trunk, weights=weights, **dict(trunk_kwargs or {}))
    return ResNetFPNBackbone(trunk, freeze=freeze, out_channels=out_channels)
