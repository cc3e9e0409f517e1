"""ResNet-18 (ImageNet) + FPN, Faster R-CNN on Radio Galaxy Zoo consensus on real FIRST
pixels (``rgz_first_det``, six component/peak classes) at 224 px.

Frozen trunk by default; fine-tune with ``model.backbone.freeze=none`` (BatchNorm stays
frozen). 100 epochs at batch 16, SGD as in Detectron2's FPN recipe.

Everything as in ``rgz_first_r50_fpn.py`` but the trunk.
"""

from .rgz_first_r50_fpn import dataloader, finder, lr_multiplier, model, optimizer, train

model.backbone.trunk = "resnet18"
train.output_dir = "output/rgz_first_r18_fpn"
