"""Names of the zoo: what each trunk is, how it is built, converted and fetched.

Each family module (``mae.py``, ``dino.py``, ...) registers its entries on import with
:func:`register_model`; ``timm:<name>`` entries are made on demand by ``timm_passthrough``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

TIMM_PREFIX = "timm:"


@dataclass(frozen=True)
class ModelInfo:
    """What a zoo name stands for.

    Attributes:
        name: zoo name, e.g. ``"dino"`` or ``"timm:vit_tiny_patch16_224"``.
        family: ``"vit"`` (timm VisionTransformer), ``"resnet"`` (torchvision ResNet) or
            ``"timm"`` (any other timm model, pooled by timm itself).
        arch: the architecture name (timm or torchvision).
        input_size: default square input size in pixels.
        mean: per-channel mean of the trunk's input normalisation.
        std: per-channel standard deviation of the input normalisation.
        patch_size: ViT patch size, None for CNNs.
        feature_dim: length of the probe feature.
        feature: the probe feature: ``"cls"``, ``"mean"`` (of patch tokens), ``"avgpool"`` or
            ``"pool"`` (timm's own pooling).
        checkpoint: official checkpoint file name looked up in ``$ASTRODET_WEIGHTS``.
        url: where the official checkpoint is downloaded from.
        hub: ``"<provider>:<id>"`` with provider ``timm``, ``torchvision`` or ``hf``.
    """

    name: str
    family: str
    arch: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    patch_size: int | None
    feature_dim: int
    feature: str
    checkpoint: str | None = None
    url: str | None = None
    hub: str | None = None


# Converter: ``convert(raw checkpoint object, built model, *, source=file or hub id)`` ->
# (state dict keyed like the model, key prefixes the checkpoint may carry and the trunk ignores).
Converter = Callable[..., tuple[dict[str, Any], tuple[str, ...]]]


@dataclass(frozen=True)
class ZooEntry:
    """A registered name: its info and the functions that build and fill its trunk.

    Attributes:
        info: the :class:`ModelInfo`.
        build: ``build(**model_kwargs) -> nn.Module`` with random weights.
        convert: turns a loaded checkpoint (any supported layout) into the model's state dict
            plus the key prefixes that are expected in it but not used by the trunk.
        features: the probe features this family can give; the first is the default.
    """

    info: ModelInfo
    build: Callable[..., nn.Module]
    convert: Converter
    features: tuple[str, ...]


_REGISTRY: dict[str, ZooEntry] = {}


def register_model(entry: ZooEntry) -> ZooEntry:
    """Add ``entry`` under ``entry.info.name``; a name is registered once."""
    name = entry.info.name
    if name in _REGISTRY:
        raise ValueError(f"zoo name {name!r} is already registered")
    _REGISTRY[name] = entry
    return entry


def list_models() -> list[str]:
    """The zoo names, in registration order (``timm:<name>`` is accepted besides these)."""
    return list(_REGISTRY)


def get_entry(name: str) -> ZooEntry:
    """The :class:`ZooEntry` for ``name``.

    Args:
        name: a zoo name or ``"timm:<timm model name>"``.

    Raises:
        ValueError: unknown name, with the valid ones listed.
    """
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name.startswith(TIMM_PREFIX):
        from .timm_passthrough import timm_entry

        return timm_entry(name[len(TIMM_PREFIX) :])
    raise ValueError(
        f"unknown model {name!r}; valid names: {', '.join(list_models())}, "
        f"or '{TIMM_PREFIX}<any timm model name>'"
    )


def get_model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` for ``name``.

    Args:
        name: a zoo name or ``"timm:<timm model name>"``.

    Raises:
        ValueError: unknown name, with the valid ones listed.
    """
    return get_entry(name).info


def format_table(names: list[str] | None = None) -> str:
    """The zoo as a plain-text table, one row per name."""
    names = list_models() if names is None else names
    header = ("name", "trunk", "input", "patch", "dim", "feature", "official checkpoint", "hub")
    rows = [header]
    for name in names:
        info = get_model_info(name)
        rows.append(
            (
                info.name,
                info.arch,
                str(info.input_size),
                "-" if info.patch_size is None else str(info.patch_size),
                str(info.feature_dim),
                info.feature,
                info.checkpoint or "-",
                info.hub or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
