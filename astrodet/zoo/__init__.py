"""The foundation-model zoo: names -> trunk + weights + preprocessing.

Example::

    from astrodet.zoo import build_trunk, list_models
    trunk = build_trunk("dino")                 # $ASTRODET_WEIGHTS/<official file>, or the hub
    feats = trunk.features(images)              # N x 768, images N x {1,3} x H x W in [0, 1]

Every load is strict; offline with no checkpoint is a :class:`WeightsNotFoundError`, never a
random trunk (ask for one with ``weights="none"``).
"""

# Family modules register their names on import, in the order list_models() reports them.
# isort: off
from . import mae, dino, dinov2, msn, resnet  # noqa: F401

# isort: on
from .registry import ModelInfo, get_model_info, list_models, register_model
from .trunk import Trunk, build_trunk
from .weights import CheckpointError, WeightsNotFoundError

__all__ = [
    "CheckpointError",
    "ModelInfo",
    "Trunk",
    "WeightsNotFoundError",
    "build_trunk",
    "get_model_info",
    "list_models",
    "register_model",
]
