"""Detection models: backbones on zoo trunks, Faster R-CNN, optimizer parameter groups."""

from .backbone import (
    FREEZE_MODES,
    ResNetFPNBackbone,
    SimpleFeaturePyramid,
    ViTBackbone,
    build_resnet_fpn_backbone,
    build_vit_backbone,
)
from .backbone.attention import WindowedAttention
from .detector import AstroFasterRCNN, build_detector, count_parameters
from .optim import WarmupSchedule, get_optimizer_params
from .poolers import AlignedMultiScaleRoIAlign

__all__ = [
    "FREEZE_MODES",
    "AlignedMultiScaleRoIAlign",
    "AstroFasterRCNN",
    "ResNetFPNBackbone",
    "SimpleFeaturePyramid",
    "ViTBackbone",
    "WarmupSchedule",
    "WindowedAttention",
    "build_detector",
    "build_resnet_fpn_backbone",
    "build_vit_backbone",
    "count_parameters",
    "get_optimizer_params",
]
