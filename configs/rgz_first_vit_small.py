"""A small ViT detector (depth 4, width 192, from scratch) finding whole radio galaxies on
real FIRST images, with Radio Galaxy Zoo consensus as truth: one box around all the
components of each physical source, classed by the six RGZ classes (1C_1P ... 3C_3P).

    tools/train_net.py --config-file configs/rgz_first_vit_small.py train.output_dir=DIR
    tools/score_association.py --predictions DIR/coco_instances_results.json --output DIR/score
    tools/find_sources.py --config-file configs/rgz_first_vit_small.py \\
        --weights DIR/model_final.pth --image field.fits --output out

The data are ``rgz_first_det`` (:mod:`astrodet.data.rgz_first`; the name ``rgz_first`` is
the classification set's): 100 px tiles at FIRST's 1.8"/px in units of their noise,
enlarged to 256 px here (the data config's 400 px cost 2.5 s a step with one thread, 256 px
0.9 s), so that a 16 px patch covers 2.1 beams. Sized for a CPU as ``synthetic_vit_small``:
torchvision's heads (one-conv RPN, two-MLP box head, RoIAlign with 2 x 2 samples) over
96-channel levels. 1200 iterations at batch 8 (30 epochs of the 316 training images) took
17-18 minutes with one thread on 2 busy cores (0.8-0.9 s a step).

``dataloader.train.dataset.training`` picks the training images: ``"real"`` (the RGZ
consensus training split), ``"sim"`` (simulated radio galaxies with exact component grouping
in real FIRST noise, ``rgz_first_sim_train``, :mod:`astrodet.data.rgz_sim`) or ``"both"``,
this config's default (on all 364 test images: mAP@0.5 31.6 % against 25.8 % with the real
images alone, multi-component association 80.1 % against 77.5 %; README).

``finder.associate`` marks a model trained on whole sources: ``tools/find_sources.py``
then writes physical sources with their components by default.
"""

from .common.data.rgz_first import dataloader
from .common.models.vitdet import model
from .common.optim import AdamW as optimizer
from .common.schedule import cosine_lr_multiplier as lr_multiplier
from .common.train import train

model.backbone.trunk = "dino"  # architecture family only: random weights, own sizes
model.backbone.weights = "none"
model.backbone.freeze = "none"
model.backbone.trunk_kwargs = dict(embed_dim=192, depth=4, num_heads=3, img_size=256)
# 16 x 16 tokens, global attention in every block (ViTDet's pattern at depth 4): a radio
# galaxy may span the tile
model.backbone.drop_path_rate = 0.0
model.backbone.out_channels = 96
# p3..p6 (strides 8..64 at 256 px): a beam is 8 px, the largest sources the whole tile
model.backbone.scale_factors = (2.0, 1.0, 0.5)
model.anchor_sizes = ((12, 16), (24, 32), (48, 64), (96, 192))
model.num_classes = 6
model.image_size = 256
dataloader.train.image_size = 256
dataloader.test.image_size = 256
model.representation_size = 256
model.rpn_pre_nms_top_n_train = 1000
model.rpn_post_nms_top_n_train = 300
model.rpn_pre_nms_top_n_test = 300
model.rpn_post_nms_top_n_test = 50
model.box_batch_size_per_image = 64
model.rpn_head_convs = 1
model.box_head = "2mlp"
model.roi_sampling_ratio = 2

# the real consensus split and the simulated radio galaxies (316 + 600 images)
dataloader.train.dataset.training = "both"

optimizer.lr = 3e-4
optimizer.weight_decay = 0.05

train.max_iter = 1200
train.eval_period = 1200
train.checkpoint_period = 500
train.log_period = 50
train.output_dir = "output/rgz_first_vit_small"
# every core; train.num_threads=1 on a machine busy with other jobs
train.num_threads = None

# Physical sources (tools/find_sources.py associates by default) at the association's
# operating point, picked on the training split: the score threshold that associated its RGZ
# sources best (0.1 of 0.1-0.5, for the models trained on real, and on real + simulated
# images), and a box with 0.8 of its area inside a larger one scoring at least half its own
# absorbed by it (a lobe found beside its double; the best overall accuracy of 0.6-0.9 x
# 0.3-0.7; README)
finder = dict(associate=True, score_thresh=0.1, absorb_inside=0.8, absorb_score_ratio=0.5)
