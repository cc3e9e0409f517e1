"""A small ViT detector (depth 4, width 192, from scratch) trained on real FIRST images
labelled by PyBDSF: a CPU source finder that reproduces PyBDSF's catalogue.

    tools/train_net.py --config-file configs/first_pybdsf_vit_small.py train.output_dir=DIR
    tools/find_sources.py --config-file configs/first_pybdsf_vit_small.py \\
        --weights DIR/model_final.pth --image field.fits --output out

Tiles of 48 px (FIRST: 1.8"/px, 5.4" beam = 3 px) are enlarged to 192 px for the model
(a 16 px patch covers 1.3 beams). Global attention: 144 tokens per tile. 1200 iterations
at batch 8 over the half-overlapping training tiles took 11.5 minutes with one thread beside
another training (0.53 s a step; AP50 0.525 on the held-out tiles). With ViTDet's heads
(below) they took 13 minutes on 2 idle cores (AP50 0.536); the README's PyBDSF-agreement
tables come from that model. The training
images are shown in units of their noise (``snr`` stretch) and turned and mirrored, never
blurred or rescaled in flux (the labels are PyBDSF's reading of these very pixels), so
fields of other telescopes, resampled to the same beam in pixels by the finder, look the
same to it.
"""

from .common.data.first_pybdsf import dataloader
from .common.models.vitdet import model
from .common.optim import AdamW as optimizer
from .common.schedule import cosine_lr_multiplier as lr_multiplier
from .common.train import train

model.backbone.trunk = "dino"  # architecture family only: random weights, own sizes
model.backbone.weights = "none"
model.backbone.freeze = "none"
model.backbone.trunk_kwargs = dict(embed_dim=192, depth=4, num_heads=3, img_size=192)
model.backbone.out_channels = 96
# p3..p6 (strides 8..64 at 192 px): a stride-4 level at 48 x 48 would cost as much as the
# rest of the network on a CPU, and a FIRST beam (12 px at 192 px) is matched by 16 px anchors
model.backbone.scale_factors = (2.0, 1.0, 0.5)
model.anchor_sizes = ((16,), (32,), (64,), (128,))
model.num_classes = 1
model.image_size = 192
model.representation_size = 256
model.rpn_pre_nms_top_n_train = 1000
model.rpn_post_nms_top_n_train = 300
model.rpn_pre_nms_top_n_test = 200
# a 48 px tile holds a few sources at most; RoIAlign and the box head over each proposal
# are most of the inference time on a CPU
model.rpn_post_nms_top_n_test = 20
model.box_batch_size_per_image = 64
# torchvision's heads, sized for a CPU (one-conv RPN, two-MLP box head, RoIAlign with 2 x 2
# samples) as synthetic_vit_small's; ViTDet's 4conv1fc head (model.box_head=4conv1fc
# model.rpn_head_convs=2 model.roi_sampling_ratio=0) gave the README's PyBDSF-agreement tables
model.rpn_head_convs = 1
model.box_head = "2mlp"
model.roi_sampling_ratio = 2

optimizer.lr = 3e-4
optimizer.weight_decay = 0.05

train.max_iter = 1200
train.eval_period = 1200
train.checkpoint_period = 500
train.log_period = 50
train.output_dir = "output/first_pybdsf_vit_small"
# every core of the machine (one thread took 23 minutes for the schedule above on 2 cores)
train.num_threads = None
