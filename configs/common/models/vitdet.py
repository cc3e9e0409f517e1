"""Faster R-CNN on a plain ViT trunk with ViTDet's simple feature pyramid (p2..p6), with
ViTDet's settings (Li et al. 2022; Detectron2 ``projects/ViTDet``, ViT-B)."""

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
        # 14x14-token windows; window_block_indexes names the windowed blocks (as in
        # Detectron2), the others attend globally. None is ViTDet's pattern for any depth:
        # all but the last block of each quarter, for ViT-B (depth 12) windows in
        # 0, 1, 3, 4, 6, 7, 9, 10 and global attention in 2, 5, 8, 11.
        # window_size=0: global attention everywhere, with the class token and final norm
        # of pretraining.
        window_size=14,
        window_block_indexes=None,
        use_rel_pos=True,
        # stochastic depth: only when fine-tuning (freeze="none"), only in training
        drop_path_rate=0.1,
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
    rpn_head_convs=2,
    box_head="4conv1fc",
    box_head_norm="LN",
    representation_size=1024,
    box_score_thresh=0.05,
    box_nms_thresh=0.5,
    box_detections_per_img=100,
    box_batch_size_per_image=512,
    # Detectron2's ROIAlignV2
    roi_sampling_ratio=0,
    roi_aligned=True,
    # None: the trunk's statistics; model.image_mean=[0,0,0] model.image_std=[1,1,1] feeds
    # the raw [0, 1] images, as the paper did
    image_mean=None,
    image_std=None,
)
