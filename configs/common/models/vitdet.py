"""Faster R-CNN on a plain ViT trunk with ViTDet's simple feature pyramid (p2..p6)."""

from astrodet.config import LazyCall as L
from astrodet.modeling import build_detector, build_vit_backbone

model = L(build_detector)(
    backbone=L(build_vit_backbone)(
        trunk="dino",
        weights="auto",
        freeze="backbone",
        image_size="${..image_size}",
        out_channels=256,
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        trunk_kwargs=None,
    ),
    num_classes=1,
    image_size=512,
    # one size per level p2..p6 (pixels at image_size): compact radio sources are small
    anchor_sizes=((8,), (16,), (32,), (64,), (128,)),
    aspect_ratios=(0.5, 1.0, 2.0),
    rpn_pre_nms_top_n_train=2000,
    rpn_pre_nms_top_n_test=1000,
    rpn_post_nms_top_n_train=1000,
    rpn_post_nms_top_n_test=1000,
    rpn_batch_size_per_image=256,
    box_head="2mlp",
    representation_size=1024,
    box_score_thresh=0.05,
    box_nms_thresh=0.5,
    box_detections_per_img=100,
    box_batch_size_per_image=512,
)
