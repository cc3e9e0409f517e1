"""DINO ViT-B + simple feature pyramid, Faster R-CNN on MGCLS compact sources, 256 px cutouts at 512 px.

Frozen trunk by default; fine-tune with ``model.backbone.freeze=none`` (layer-wise lr decay
0.7). 100 epochs at batch 16; a label fraction with ``dataloader.train.fraction=0.1``.
"""

from .common.data.mgcls import dataloader
from .common.models.vitdet import model
from .common.optim import AdamW as optimizer
from .common.schedule import lr_multiplier
from .common.train import train

model.backbone.trunk = "dino"
model.backbone.weights = "auto"
model.backbone.freeze = "backbone"
# ViTDet-B: 14x14 windows in these blocks, global attention in 2, 5, 8 and 11
model.backbone.window_block_indexes = (0, 1, 3, 4, 6, 7, 9, 10)
model.num_classes = 1
model.image_size = 512
dataloader.train.image_size = 512
dataloader.test.image_size = 512
dataloader.train.total_batch_size = 16

optimizer.params.lr_decay_rate = 0.7

# 100 epochs of the training set as loaded, evaluated and saved every tenth of the run
train.max_iter = None
train.epochs = 100
train.eval_period = None
train.checkpoint_period = None
train.output_dir = "output/mgcls_dino_vitdet"
