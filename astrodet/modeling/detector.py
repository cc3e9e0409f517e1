"""Faster R-CNN (torchvision) on a pyramid backbone, with settings for small radio sources.

Defaults differ from torchvision's COCO ones where radio images need it: one anchor size
per level starting at 8 px (compact sources are a few beams across), and the input resized
to exactly ``image_size`` (``min_size = max_size = image_size``). The box head is
torchvision's ``TwoMLPHead`` (two 1024-wide fully connected layers, as in Detectron2's
FPN configs) or, with ``box_head="4conv1fc"``, ``FastRCNNConvFCHead`` (four 3x3 convs
with GroupNorm, or with ``box_head_norm="LN"`` channel LayerNorm as in ViTDet, and one fully
connected layer). The RPN head has ``rpn_head_convs`` 3x3 convs (ViTDet: 2). RoIs are pooled
with Detectron2's ``ROIAlignV2`` (``aligned=True``, adaptive sampling) unless
``roi_aligned=False`` (torchvision's ``MultiScaleRoIAlign``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from timm.layers import LayerNorm2d
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import (
    FastRCNNConvFCHead,
    FastRCNNPredictor,
    TwoMLPHead,
)
from torchvision.models.detection.rpn import RPNHead

from .poolers import AlignedMultiScaleRoIAlign

logger = logging.getLogger(__name__)

__all__ = ["AstroFasterRCNN", "build_detector", "count_parameters"]

BOX_HEADS = ("2mlp", "4conv1fc")
BOX_HEAD_NORMS = ("GN", "LN")


class AstroFasterRCNN(FasterRCNN):
    """torchvision ``FasterRCNN`` that also accepts 1-channel images (replicated to 3) and
    names a wrong input clearly instead of failing deep inside torchvision.

    Inputs: a list of C x H x W float images in ``[0, 1]`` (C = 1 or 3) and, in training,
    targets ``{"boxes": N x 4 XYXY pixels, "labels": int64 in 1..num_classes}``. Outputs in
    eval mode: ``{"boxes", "scores", "labels"}`` per image, boxes in input pixels.
    """

    def forward(self, images, targets=None):
        checked = []
        for i, image in enumerate(images):
            if not isinstance(image, torch.Tensor) or image.ndim != 3:
                raise ValueError(
                    f"image {i}: expected a C x H x W tensor, got "
                    f"{getattr(image, 'shape', type(image).__name__)}"
                )
            if image.shape[0] == 1:
                image = image.expand(3, -1, -1)
            elif image.shape[0] != 3:
                raise ValueError(f"image {i}: expected 1 or 3 channels, got {image.shape[0]}")
            checked.append(image)
        return super().forward(checked, targets)


def _as_tuples(sizes: Sequence) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(s) if isinstance(s, Sequence) else (s,) for s in sizes)


def build_detector(
    *,
    backbone: nn.Module,
    num_classes: int,
    image_size: int,
    anchor_sizes: Sequence = ((8,), (16,), (32,), (64,), (128,)),
    aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
    rpn_pre_nms_top_n_train: int = 2000,
    rpn_pre_nms_top_n_test: int = 1000,
    rpn_post_nms_top_n_train: int = 1000,
    rpn_post_nms_top_n_test: int = 1000,
    rpn_nms_thresh: float = 0.7,
    rpn_fg_iou_thresh: float = 0.7,
    rpn_bg_iou_thresh: float = 0.3,
    rpn_batch_size_per_image: int = 256,
    rpn_positive_fraction: float = 0.5,
    rpn_head_convs: int = 1,
    box_head: str = "2mlp",
    box_head_norm: str = "GN",
    representation_size: int = 1024,
    box_score_thresh: float = 0.05,
    box_nms_thresh: float = 0.5,
    box_detections_per_img: int = 100,
    box_batch_size_per_image: int = 512,
    box_positive_fraction: float = 0.25,
    box_fg_iou_thresh: float = 0.5,
    box_bg_iou_thresh: float = 0.5,
    roi_output_size: int = 7,
    roi_sampling_ratio: int = 0,
    roi_aligned: bool = True,
    image_mean: Sequence[float] | None = None,
    image_std: Sequence[float] | None = None,
) -> AstroFasterRCNN:
    """Faster R-CNN with RoIAlign over the backbone's levels but the last (p2..p5).

    Args:
        backbone: a pyramid backbone (``build_vit_backbone`` / ``build_resnet_fpn_backbone``)
            with ``out_channels`` and ``out_feature_names``.
        num_classes: object classes, background excluded (labels are 1..num_classes).
        image_size: inputs are resized to this size (both min and max size).
        anchor_sizes: one tuple of sizes (pixels at ``image_size``) per pyramid level.
        aspect_ratios: anchor height/width ratios, the same on every level.
        rpn_*: torchvision ``RegionProposalNetwork`` settings.
        rpn_head_convs: 3x3 conv + ReLU layers of the RPN head before its objectness and
            box-delta convs (torchvision and Detectron2's FPN configs: 1; ViTDet: 2).
        box_head: ``"2mlp"`` (``TwoMLPHead``) or ``"4conv1fc"``.
        box_head_norm: the norm after each conv of ``"4conv1fc"``: ``"GN"`` (GroupNorm, 32
            groups) or ``"LN"`` (LayerNorm over channels at each position, as in ViTDet).
        representation_size: width of the box head's fully connected layer(s).
        box_*: torchvision ``RoIHeads`` settings (score threshold, NMS, detections per
            image, sampled RoIs per image, ...).
        roi_output_size, roi_sampling_ratio: RoIAlign output size and sampling points per
            bin side (0: adaptive, as Detectron2).
        roi_aligned: half-pixel-corrected RoIAlign (Detectron2's ``ROIAlignV2``); False is
            torchvision's ``MultiScaleRoIAlign`` (with ``roi_sampling_ratio=2``, the
            behaviour before this option existed).
        image_mean, image_std: input normalisation, applied to the ``[0, 1]`` images as
            ``(x - mean) / std`` per channel; default: the trunk's (ImageNet statistics for
            the zoo's ViTs). ``image_mean=[0,0,0] image_std=[1,1,1]`` feeds the raw ``[0, 1]``
            images, as the paper did; from the command line:
            ``tools/train_net.py ... model.image_mean=[0,0,0] model.image_std=[1,1,1]``.

    Returns:
        An :class:`AstroFasterRCNN`; ``model.backbone`` is the backbone (with its
        ``freeze`` setting).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1 (background excluded), got {num_classes}")
    if box_head not in BOX_HEADS:
        raise ValueError(f"box_head={box_head!r} is not valid; use one of {BOX_HEADS}")
    if box_head_norm not in BOX_HEAD_NORMS:
        raise ValueError(
            f"box_head_norm={box_head_norm!r} is not valid; use one of {BOX_HEAD_NORMS}"
        )
    if int(rpn_head_convs) < 1:
        raise ValueError(f"rpn_head_convs must be >= 1, got {rpn_head_convs}")
    names = list(getattr(backbone, "out_feature_names", []))
    if not names or not hasattr(backbone, "out_channels"):
        raise ValueError("backbone must define out_channels and out_feature_names")
    sizes = _as_tuples(anchor_sizes)
    if len(sizes) != len(names):
        raise ValueError(
            f"anchor_sizes has {len(sizes)} entries but the backbone has {len(names)} levels "
            f"({', '.join(names)}); give one tuple of sizes per level"
        )
    ratios = tuple(float(r) for r in aspect_ratios)
    anchor_generator = AnchorGenerator(sizes=sizes, aspect_ratios=(ratios,) * len(sizes))
    roi_pool = AlignedMultiScaleRoIAlign(
        featmap_names=names[:-1] if len(names) > 1 else names,
        output_size=roi_output_size,
        sampling_ratio=roi_sampling_ratio,
        aligned=roi_aligned,
    )
    channels = int(backbone.out_channels)
    rpn_head = RPNHead(
        channels, anchor_generator.num_anchors_per_location()[0], conv_depth=int(rpn_head_convs)
    )
    if box_head == "2mlp":
        head = TwoMLPHead(channels * roi_output_size**2, representation_size)
    else:
        head = FastRCNNConvFCHead(
            (channels, roi_output_size, roi_output_size),
            [channels] * 4,
            [representation_size],
            norm_layer=_group_norm if box_head_norm == "GN" else LayerNorm2d,
        )
    mean = _channel_values(image_mean, "image_mean", backbone.image_mean)
    std = _channel_values(image_std, "image_std", backbone.image_std)
    if any(v <= 0 for v in std):
        raise ValueError(f"image_std must be positive, got {list(std)}")
    model = AstroFasterRCNN(
        backbone,
        num_classes=None,
        min_size=image_size,
        max_size=image_size,
        image_mean=list(mean),
        image_std=list(std),
        rpn_anchor_generator=anchor_generator,
        rpn_head=rpn_head,
        rpn_pre_nms_top_n_train=rpn_pre_nms_top_n_train,
        rpn_pre_nms_top_n_test=rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_train=rpn_post_nms_top_n_train,
        rpn_post_nms_top_n_test=rpn_post_nms_top_n_test,
        rpn_nms_thresh=rpn_nms_thresh,
        rpn_fg_iou_thresh=rpn_fg_iou_thresh,
        rpn_bg_iou_thresh=rpn_bg_iou_thresh,
        rpn_batch_size_per_image=rpn_batch_size_per_image,
        rpn_positive_fraction=rpn_positive_fraction,
        box_roi_pool=roi_pool,
        box_head=head,
        box_predictor=FastRCNNPredictor(representation_size, num_classes + 1),
        box_score_thresh=box_score_thresh,
        box_nms_thresh=box_nms_thresh,
        box_detections_per_img=box_detections_per_img,
        box_fg_iou_thresh=box_fg_iou_thresh,
        box_bg_iou_thresh=box_bg_iou_thresh,
        box_batch_size_per_image=box_batch_size_per_image,
        box_positive_fraction=box_positive_fraction,
    )
    model.image_size = image_size
    model.num_classes = num_classes
    counts = count_parameters(model)
    logger.info(
        "Faster R-CNN on %s (freeze=%s): %.2fM trainable, %.2fM frozen parameters",
        getattr(backbone, "trunk_info", None) and backbone.trunk_info.name,
        getattr(backbone, "freeze", None),
        counts["trainable"] / 1e6,
        counts["frozen"] / 1e6,
    )
    return model


def _channel_values(values, name: str, default: Sequence[float]) -> tuple[float, ...]:
    if values is None:
        return tuple(float(v) for v in default)
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be 3 numbers (one per channel), got {values!r}") from None
    if len(out) != 3:
        raise ValueError(f"{name} must be 3 numbers (one per channel), got {list(out)}")
    return out


def _group_norm(channels: int) -> nn.Module:
    return nn.GroupNorm(32 if channels % 32 == 0 else 1, channels)


def _count(params) -> dict[str, int]:
    out = {"trainable": 0, "frozen": 0}
    for p in params:
        out["trainable" if p.requires_grad else "frozen"] += p.numel()
    return out


def count_parameters(model: nn.Module, *, by_part: bool = False) -> dict:
    """Trainable and frozen parameter counts.

    Args:
        model: any module; a detector from :func:`build_detector` (or one wrapped in
            ``DistributedDataParallel``) for ``by_part``.
        by_part: also return ``{"parts": {"trunk": {...}, "pyramid": {...}, "rpn": {...},
            "roi_heads": {...}}}``, ``"pyramid"`` being everything in the backbone outside
            the trunk.

    Returns:
        ``{"trainable": int, "frozen": int}`` (plus ``"parts"`` with ``by_part``).
    """
    out: dict = _count(model.parameters())
    if by_part:
        net = getattr(model, "module", model)
        backbone = net.backbone
        trunk = getattr(backbone, "trunk", None)
        trunk_ids = {id(p) for p in trunk.parameters()} if trunk is not None else set()
        out["parts"] = {
            "trunk": _count(trunk.parameters()) if trunk is not None else _count([]),
            "pyramid": _count(p for p in backbone.parameters() if id(p) not in trunk_ids),
            "rpn": _count(net.rpn.parameters()),
            "roi_heads": _count(net.roi_heads.parameters()),
        }
    return out
