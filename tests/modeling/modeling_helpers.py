"""Tiny models and a tiny synthetic detection batch for the modeling tests."""

from __future__ import annotations

import torch

from astrodet.modeling import build_detector, build_vit_backbone

TINY_VIT = dict(embed_dim=32, depth=3, num_heads=2, img_size=32)


def tiny_vit_backbone(*, trunk="dino", freeze="none", image_size=64, **kwargs):
    kw = dict(TINY_VIT, img_size=28 if trunk == "dinov2" else 32)
    return build_vit_backbone(
        trunk=trunk,
        weights="none",
        freeze=freeze,
        image_size=image_size,
        out_channels=16,
        trunk_kwargs=kw,
        **kwargs,
    )


def tiny_detector(backbone=None, *, freeze="none", image_size=64):
    backbone = backbone or tiny_vit_backbone(freeze=freeze, image_size=image_size)
    return build_detector(
        backbone=backbone,
        num_classes=1,
        image_size=image_size,
        anchor_sizes=((8,), (16,), (32,), (64,), (128,)),
        representation_size=64,
        rpn_batch_size_per_image=64,
        box_batch_size_per_image=64,
        rpn_post_nms_top_n_train=200,
    )


def blob_batch(n=2, size=64, seed=0):
    """Gaussian blobs on a noisy background with their boxes (3-channel, [0, 1])."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    images, targets = [], []
    for _ in range(n):
        img = 0.05 * torch.rand(size, size, generator=g)
        boxes = []
        for _ in range(3):
            cx, cy = (8 + (size - 16) * torch.rand(2, generator=g)).tolist()
            s = 2.0 + 1.5 * torch.rand(1, generator=g).item()
            img += 0.9 * torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
            boxes.append([cx - 2 * s, cy - 2 * s, cx + 2 * s, cy + 2 * s])
        images.append(img.clamp(0, 1).expand(3, -1, -1).contiguous())
        targets.append(
            {"boxes": torch.tensor(boxes), "labels": torch.ones(len(boxes), dtype=torch.int64)}
        )
    return images, targets
