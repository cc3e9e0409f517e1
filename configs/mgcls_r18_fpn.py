"""ResNet-18 (ImageNet) + FPN, Faster R-CNN on MGCLS compact sources, 256 px cutouts at 512 px.

Frozen trunk by default; fine-tune with ``model.backbone.freeze=none`` (BatchNorm stays
frozen). 100 epochs at batch 16, SGD as in Detectron2's FPN recipe.
"""

import math

from .common.data.mgcls import NUM_TRAIN_IMAGES, dataloader
from .common.models.fpn import model
from .common.optim import SGD as optimizer
from .common.schedule import lr_multiplier
from .common.train import train

model.backbone.trunk = "resnet18"
model.backbone.weights = "auto"
model.backbone.freeze = "backbone"
model.num_classes = 1
model.image_size = 512
dataloader.train.image_size = 512
dataloader.test.image_size = 512
dataloader.train.total_batch_size = 16

train.max_iter = math.ceil(100 * NUM_TRAIN_IMAGES / dataloader.train.total_batch_size)
train.eval_period = train.max_iter // 10
train.checkpoint_period = train.max_iter // 10
train.output_dir = "output/mgcls_r18_fpn"
