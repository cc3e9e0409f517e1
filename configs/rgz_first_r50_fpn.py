"""ResNet-50 (ImageNet) + FPN, Faster R-CNN on Radio Galaxy Zoo consensus on real FIRST
pixels (``rgz_first_det``, six component/peak classes) at 224 px: the paper's
``rgz_r50_fpn.py`` on the real set (see ``rgz_first_dino_vitdet.py`` for the data).

Frozen trunk by default; fine-tune with ``model.backbone.freeze=none`` (BatchNorm stays
frozen). 100 epochs at batch 16, SGD as in Detectron2's FPN recipe.
"""

from .common.data.rgz_first import dataloader
from .common.models.fpn import model
from .common.optim import SGD as optimizer
from .common.schedule import lr_multiplier
from .common.train import train

model.backbone.trunk = "resnet50"
model.backbone.weights = "auto"
model.backbone.freeze = "backbone"
model.num_classes = 6
model.image_size = 224
dataloader.train.image_size = 224
dataloader.test.image_size = 224
dataloader.train.total_batch_size = 16

# 100 epochs of the training set as loaded, evaluated and saved every tenth of the run
train.max_iter = None
train.epochs = 100
train.eval_period = None
train.checkpoint_period = None
train.output_dir = "output/rgz_first_r50_fpn"

# trained on whole sources: tools/find_sources.py writes physical sources by default
finder = dict(associate=True)
