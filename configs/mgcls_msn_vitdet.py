"""MSN ViT-B + simple feature pyramid, Faster R-CNN on MGCLS compact sources, 256 px cutouts at 512 px.

Frozen trunk by default; fine-tune with ``model.backbone.freeze=none`` (layer-wise lr decay
0.7). 100 epochs at batch 16; a label fraction with ``dataloader.train.fraction=0.1``.

Everything as in ``mgcls_dino_vitdet.py`` but the trunk.
"""

from .mgcls_dino_vitdet import dataloader, lr_multiplier, model, optimizer, train

model.backbone.trunk = "msn"
train.output_dir = "output/mgcls_msn_vitdet"
