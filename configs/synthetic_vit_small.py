"""A small ViT (depth 4, width 192) trained from scratch on the simulated MGCLS-like sky
at its native 256 px: the CPU demo (600 iterations at batch 4, about 3 minutes on 2 idle
cores).

Sized for a CPU: ViTDet's attention, but the heads of torchvision's Faster R-CNN (one-conv
RPN, two-MLP box head, RoIAlign sampling 2 x 2 points per bin) over 96-channel pyramid
levels, proposals and sampled RoIs cut to what 256 px fields with a few tens of compact
sources need. ViTDet's heads (``configs/common/models/vitdet.py``: two-conv RPN, 4conv1fc
box head, adaptive RoIAlign sampling, 128 or 256 channels) run their convolutions on every
RoI and every p2 cell: on 2 idle CPU cores a step took 1.37 s with them (one thread) against
0.46 s with these heads at 64 channels (0.31 s with both cores). 64 channels scored AP50
0.877, 96 channels 0.886 and ViTDet's heads 0.894 after the 600 iterations.
"""

from .common.data.synthetic import dataloader
from .common.models.vitdet import model
from .common.optim import AdamW as optimizer
from .common.schedule import cosine_lr_multiplier as lr_multiplier
from .common.train import train

model.backbone.trunk = "dino"  # architecture family only: random weights, own sizes
model.backbone.weights = "none"
model.backbone.freeze = "none"
model.backbone.trunk_kwargs = dict(embed_dim=192, depth=4, num_heads=3, img_size=256)
# ViTDet's attention at this size: 256 px is a 16x16 token grid, so 8x8 windows (four per
# image, no padding) in blocks 0-2 and one global block last to mix the windows, as ViT-B's
# 14-token windows with a global block closing each quarter of its depth.
model.backbone.window_size = 8
model.backbone.window_block_indexes = (0, 1, 2)
model.backbone.use_rel_pos = True
# 600 iterations of a 4-block model: stochastic depth only slows convergence this short.
model.backbone.drop_path_rate = 0.0
model.backbone.out_channels = 96
model.num_classes = 1
model.image_size = 256
model.anchor_sizes = ((8,), (16,), (32,), (64,), (128,))
model.representation_size = 256
# NMS over thousands of untrained proposals per level and RoIAlign's backward pass over
# many sampled RoIs dominate a CPU step otherwise
model.rpn_pre_nms_top_n_train = 1000
model.rpn_post_nms_top_n_train = 300
model.rpn_post_nms_top_n_test = 500
model.box_batch_size_per_image = 64
model.rpn_head_convs = 1
model.box_head = "2mlp"
model.roi_sampling_ratio = 2

optimizer.lr = 3e-4
optimizer.weight_decay = 0.05

train.max_iter = 600
train.eval_period = 600
train.checkpoint_period = 200
train.log_period = 20
train.output_dir = "output/synthetic_vit_small"
# Every core (None). On a machine busy with other jobs, train.num_threads=1 avoids threads
# waiting for each other at every op (0.46 s a step with one thread on 2 cores).
train.num_threads = None
