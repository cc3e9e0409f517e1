"""lr multiplier over training progress (fvcore ParamScheduler: lr * f(iter / max_iter))."""

from astrodet.config import LazyCall as L
from astrodet.modeling import WarmupSchedule

# ViTDet-style: short linear warmup, then x0.1 at 89% and again at 96% of training.
lr_multiplier = L(WarmupSchedule)(
    warmup_fraction=0.01,
    warmup_factor=0.001,
    decay="step",
    milestones=(0.89, 0.96),
    gamma=0.1,
)

cosine_lr_multiplier = L(WarmupSchedule)(
    warmup_fraction=0.05, warmup_factor=0.001, decay="cosine", min_factor=0.0
)
