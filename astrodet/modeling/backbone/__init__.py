"""Detection backbones on zoo trunks: ViT + simple feature pyramid, ResNet + FPN."""

from .common import FREEZE_MODES, TrunkBackbone, check_freeze
from .resnet import ResNetFPNBackbone, build_resnet_fpn_backbone, freeze_batch_norm
from .vit import SimpleFeaturePyramid, ViTBackbone, build_vit_backbone

__all__ = [
    "FREEZE_MODES",
    "ResNetFPNBackbone",
    "SimpleFeaturePyramid",
    "TrunkBackbone",
    "ViTBackbone",
    "build_resnet_fpn_backbone",
    "build_vit_backbone",
    "check_freeze",
    "freeze_batch_norm",
]
