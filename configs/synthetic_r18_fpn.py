"""ResNet-18 + FPN trained from scratch on the simulated sky at 256 px (CPU-sized).

For ImageNet weights use ``model.backbone.weights=auto`` (needs the checkpoint or the hub).
"""

from .common.data.synthetic import dataloader
from .common.models.fpn import model
from .common.optim import AdamW as optimizer
from .common.schedule import cosine_lr_multiplier as lr_multiplier
from .common.train import train

model.backbone.trunk = "resnet18"
model.backbone.weights = "none"
model.backbone.freeze = "none"
model.backbone.out_channels = 128
model.num_classes = 1
model.image_size = 256
model.representation_size = 256
# NMS over thousands of untrained proposals per level dominates a CPU step otherwise
model.rpn_pre_nms_top_n_train = 1000
model.rpn_post_nms_top_n_train = 500
model.rpn_post_nms_top_n_test = 500
model.box_batch_size_per_image = 128

optimizer.lr = 3e-4
optimizer.weight_decay = 0.05

train.max_iter = 600
train.eval_period = 600
train.checkpoint_period = 200
train.output_dir = "output/synthetic_r18_fpn"
# one intra-op thread: see configs/synthetic_vit_small.py
train.num_threads = 1
