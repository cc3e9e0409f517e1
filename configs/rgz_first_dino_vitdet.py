"""DINO ViT-B + simple feature pyramid, Faster R-CNN on Radio Galaxy Zoo consensus on real
FIRST pixels (``rgz_first_det``, six component/peak classes) at 224 px: the paper's RGZ
experiment (``rgz_dino_vitdet.py``) on the real set.

The data are :mod:`astrodet.data.rgz_first` (registered as ``rgz_first_det``: the name
``rgz_first`` is the classification set's), 100 px float tiles at 1.8"/px in units of their
noise (``snr`` stretch), enlarged to the paper's 224 px. The architecture, schedule and
batch are the paper's; the augmentations only turn and mirror the tiles (the boxes follow
these very pixels' emission). Frozen trunk by default; fine-tune with
``model.backbone.freeze=none`` (layer-wise lr decay 0.7). 100 epochs at batch 16; a label
fraction with ``dataloader.train.fraction=0.1``.
"""

from .common.data.rgz_first import dataloader
from .common.models.vitdet import model
from .common.optim import AdamW as optimizer
from .common.schedule import lr_multiplier
from .common.train import train

model.backbone.trunk = "dino"
model.backbone.weights = "auto"
model.backbone.freeze = "backbone"
# ViTDet-B: 14x14 windows in these blocks, global attention in 2, 5, 8 and 11
model.backbone.window_block_indexes = (0, 1, 3, 4, 6, 7, 9, 10)
model.num_classes = 6
model.image_size = 224
dataloader.train.image_size = 224
dataloader.test.image_size = 224
dataloader.train.total_batch_size = 16

optimizer.params.lr_decay_rate = 0.7

# 100 epochs of the training set as loaded, evaluated and saved every tenth of the run
train.max_iter = None
train.epochs = 100
train.eval_period = None
train.checkpoint_period = None
train.output_dir = "output/rgz_first_dino_vitdet"

# trained on whole sources: tools/find_sources.py writes physical sources by default
finder = dict(associate=True)
