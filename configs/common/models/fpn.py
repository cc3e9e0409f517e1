"""Faster R-CNN on a torchvision ResNet with a hierarchical FPN (p2..p6)."""

from astrodet.config import LazyCall as L
from astrodet.modeling import build_detector, build_resnet_fpn_backbone

from .vitdet import model

model.backbone = L(build_resnet_fpn_backbone)(
    trunk="resnet50",
    weights="auto",
    freeze="backbone",
    out_channels=256,
    trunk_kwargs=None,
)
