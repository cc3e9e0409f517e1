"""lr multipliers over training progress, as in Detectron2's configs: fvcore schedulers
inside a warmup. The trainer sets ``lr = lr_of_group * lr_multiplier(iter / max_iter)``, so
every length and milestone here is a fraction of training and stays right when
``train.max_iter`` or ``train.epochs`` is overridden."""

from fvcore.common.param_scheduler import CosineParamScheduler, MultiStepParamScheduler

from astrodet.config import LazyCall as L
from astrodet.modeling.optim import WarmupParamScheduler

# ViTDet-style: short linear warmup, then x0.1 at 89% and again at 96% of training
# (milestones in per cent of training: num_updates=100).
lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(MultiStepParamScheduler)(
        values=[1.0, 0.1, 0.01],
        milestones=[89, 96],
        num_updates=100,
    ),
    warmup_length=0.01,
    warmup_factor=0.001,
)

cosine_lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(CosineParamScheduler)(start_value=1.0, end_value=0.0),
    warmup_length=0.05,
    warmup_factor=0.001,
)

# No schedule and no warmup: the paper's detection runs keep the lr constant. (A one-step
# MultiStep, because fvcore's ConstantParamScheduler refuses where = 1, which the trainer
# reaches once its last iteration is done.)
constant_lr_multiplier = L(MultiStepParamScheduler)(values=[1.0], num_updates=1)
