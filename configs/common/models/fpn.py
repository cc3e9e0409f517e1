"""Faster R-CNN on a torchvision ResNet with a hierarchical FPN (p2..p6), with the heads of
Detectron2's FPN configs (one RPN conv, two fully connected box layers)."""

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
model.rpn_head_convs = 1
model.box_head = "2mlp"
model.box_head_norm = "GN"
