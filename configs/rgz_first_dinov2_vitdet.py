"""DINOv2 ViT-B + simple feature pyramid, Faster R-CNN on Radio Galaxy Zoo consensus on real
FIRST pixels (``rgz_first_det``, six component/peak classes) at 224 px.

Frozen trunk by default; fine-tune with ``model.backbone.freeze=none`` (layer-wise lr decay
0.7). 100 epochs at batch 16; a label fraction with ``dataloader.train.fraction=0.1``.

Everything as in ``rgz_first_dino_vitdet.py`` but the trunk.
"""

from .rgz_first_dino_vitdet import dataloader, finder, lr_multiplier, model, optimizer, train

# DINOv2's patch 14 is resampled to 16 in the backbone, so the pyramid strides are 4..64.
model.backbone.trunk = "dinov2"
train.output_dir = "output/rgz_first_dinov2_vitdet"
