"""DINO ViT-B (frozen) + simple feature pyramid on the simulated sky at 256 px."""

from .common.data.synthetic import dataloader
from .common.models.vitdet import model
from .common.optim import AdamW as optimizer
from .common.schedule import lr_multiplier
from .common.train import train

model.backbone.trunk = "dino"
model.backbone.freeze = "backbone"
model.num_classes = 1
model.image_size = 256

optimizer.params.lr_decay_rate = 0.7

train.max_iter = 2000
train.eval_period = 500
train.checkpoint_period = 500
train.output_dir = "output/synthetic_dino_vitdet"
