"""ResNet-18 (ImageNet) + FPN, Faster R-CNN on MGCLS compact sources, 256 px cutouts at 512 px.

Frozen trunk by default; fine-tune with ``model.backbone.freeze=none`` (BatchNorm stays
frozen). 100 epochs at batch 16, SGD as in Detectron2's FPN recipe.

Everything as in ``mgcls_r50_fpn.py`` but the trunk.
"""

from .mgcls_r50_fpn import dataloader, lr_multiplier, model, optimizer, train

model.backbone.trunk = "resnet18"
train.output_dir = "output/mgcls_r18_fpn"
