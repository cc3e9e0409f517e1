"""ResNet-50 (ImageNet) + FPN, Faster R-CNN on MGCLS compact sources, 256 px cutouts at 512 px.

Frozen trunk by default; fine-tune with ``model.backbone.freeze=none`` (BatchNorm stays
frozen). 100 epochs at batch 16, SGD as in Detectron2's FPN recipe.
"""

from .common.data.mgcls import dataloader
from .common.models.fpn import model
from .common.optim import SGD as optimizer
from .common.schedule import lr_multiplier
from .common.train import train

model.backbone.trunk = "resnet50"
model.backbone.weights = "auto"
model.backbone.freeze = "backbone"
model.num_classes = 1
model.image_size = 512
dataloader.train.image_size = 512
dataloader.test.image_size = 512
dataloader.train.total_batch_size = 16

# 100 epochs of the training set as loaded, evaluated and saved every tenth of the run
train.max_iter = None
train.epochs = 100
train.eval_period = None
train.checkpoint_period = None
train.output_dir = "output/mgcls_r50_fpn"
