"""Optimizers; the trainer sets ``optimizer.params.model`` to the built model."""

import torch

from astrodet.config import LazyCall as L
from astrodet.modeling import get_optimizer_params

# ViTDet's fine-tuning recipe; lr_decay_rate only acts on trainable ViT trunk parameters.
AdamW = L(torch.optim.AdamW)(
    params=L(get_optimizer_params)(
        base_lr="${..lr}",
        weight_decay="${..weight_decay}",
        weight_decay_norm=0.0,
        lr_decay_rate=None,
    ),
    lr=1e-4,
    betas=(0.9, 0.999),
    weight_decay=0.1,
)

# Detectron2's FPN recipe.
SGD = L(torch.optim.SGD)(
    params=L(get_optimizer_params)(
        base_lr="${..lr}",
        weight_decay="${..weight_decay}",
        weight_decay_norm=0.0,
    ),
    lr=0.02,
    momentum=0.9,
    nesterov=False,
    weight_decay=1e-4,
)

# The paper's detection recipe: SGD with Nesterov momentum 0.9 on every trainable parameter,
# no weight decay, lr 1e-3 with a frozen trunk (5e-4 fine-tuned), used with
# ``configs/common/schedule.py``'s ``constant_lr_multiplier`` (no schedule).
SGDNesterov = L(torch.optim.SGD)(
    params=L(get_optimizer_params)(
        base_lr="${..lr}",
        weight_decay="${..weight_decay}",
        weight_decay_norm=0.0,
    ),
    lr=1e-3,
    momentum=0.9,
    nesterov=True,
    weight_decay=0.0,
)
