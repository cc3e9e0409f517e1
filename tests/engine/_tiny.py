"""A tiny simulated sky (in memory) and a tiny detector for the engine tests."""

from __future__ import annotations


def tiny_sky_dicts(n: int, *, seed: int = 0, size: int = 64) -> list[dict]:
    """``n`` simulated 64 px radio fields as dataset dicts holding their ``image`` arrays."""
    from astrodet.data.synthetic import generate_sky

    images, dicts = generate_sky(n, seed=seed, size=size, mean_compact=4.0, mean_extended=0.0)
    return [
        {k: v for k, v in d.items() if k != "info"} | {"image": im} for im, d in zip(images, dicts)
    ]


def tiny_detector(*, image_size: int = 64):
    """A from-scratch Faster R-CNN on a one-block, 32-wide ViT with a 16-channel pyramid."""
    from astrodet.modeling import build_detector, build_vit_backbone

    backbone = build_vit_backbone(
        trunk="dino",
        weights="none",
        freeze="none",
        image_size=image_size,
        out_channels=16,
        trunk_kwargs=dict(embed_dim=32, depth=1, num_heads=2),
    )
    return build_detector(
        backbone=backbone,
        num_classes=1,
        image_size=image_size,
        anchor_sizes=((4,), (8,), (16,), (32,), (64,)),
        aspect_ratios=(1.0,),
        rpn_pre_nms_top_n_train=200,
        rpn_post_nms_top_n_train=100,
        rpn_pre_nms_top_n_test=100,
        rpn_post_nms_top_n_test=50,
        rpn_batch_size_per_image=64,
        box_batch_size_per_image=64,
        representation_size=32,
    )
