"""What the ViT and ResNet backbones share: the ``freeze`` setting and its checks."""

from __future__ import annotations

from torch import nn

FREEZE_MODES = ("backbone", "none")


def check_freeze(freeze: str) -> str:
    """Validate a ``freeze`` value.

    Raises:
        ValueError: listing the valid values.
    """
    if freeze not in FREEZE_MODES:
        raise ValueError(
            f"freeze={freeze!r} is not valid; use one of {', '.join(repr(m) for m in FREEZE_MODES)}"
        )
    return freeze


class TrunkBackbone(nn.Module):
    """Base of the detection backbones: holds ``self.trunk`` (a zoo :class:`Trunk`) and,
    with ``freeze="backbone"``, keeps its parameters fixed and its layers in eval mode.

    Subclasses set ``out_channels``, ``out_feature_names`` (finest first, the last one being
    the max-pooled extra level) and ``out_feature_strides``.
    """

    def __init__(self, trunk: nn.Module, freeze: str) -> None:
        super().__init__()
        self.freeze = check_freeze(freeze)
        self.trunk = trunk
        self.trunk_info = trunk.info
        self.image_mean = tuple(float(v) for v in trunk.info.mean)
        self.image_std = tuple(float(v) for v in trunk.info.std)

    def _apply_freeze(self) -> None:
        if self.freeze == "backbone":
            for p in self.trunk.parameters():
                p.requires_grad_(False)
            self.trunk.eval()

    def train(self, mode: bool = True) -> TrunkBackbone:
        # A frozen trunk stays in eval mode (norm statistics, dropout and drop-path fixed)
        # whatever mode the detector around it is put in.
        super().train(mode)
        if self.freeze == "backbone":
            self.trunk.eval()
        return self

    def extra_repr(self) -> str:
        return f"trunk={self.trunk_info.name!r}, freeze={self.freeze!r}"
