"""The :class:`Trunk` (a pretrained network plus its preprocessing and probe feature) and
:func:`build_trunk`, which builds one by name and fills it with weights, strictly."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import weights as _weights
from .registry import ModelInfo, ZooEntry, get_entry
from .vit import vit_feature

logger = logging.getLogger(__name__)

# Slack for rounding in stretches and resampling before an input is called out of range.
_RANGE_TOL = 1e-2
_KEYWORDS = ("auto", "hub", "none")
_HUB_PROVIDERS = ("hf", "timm", "torchvision")


class Trunk(nn.Module):
    """A zoo network with its input normalisation and probe feature.

    Attributes:
        info: the :class:`ModelInfo` of the trunk as built (sizes reflect ``model_kwargs``).
        model: a timm ``VisionTransformer`` (family ``"vit"``), a torchvision ResNet whose
            ``fc`` is the identity (``"resnet"``) or another timm model (``"timm"``).
        feature: the probe feature read by :meth:`forward`.
        feature_dim: its length.
        weights_source: ``"none"``, the checkpoint path, or ``"hub:<provider>:<id>"``.
    """

    def __init__(self, model: nn.Module, info: ModelInfo, *, weights_source: str) -> None:
        super().__init__()
        self.model = model
        self.info = info
        self.feature = info.feature
        self.feature_dim = info.feature_dim
        self.weights_source = weights_source
        self.register_buffer("mean", torch.tensor(info.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(info.std).view(1, 3, 1, 1), persistent=False)

    def extra_repr(self) -> str:
        return f"name={self.info.name!r}, feature={self.feature!r}, weights={self.weights_source!r}"

    def preprocess(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Turn a batch of images in ``[0, 1]`` into the trunk's input.

        Args:
            images: N x C x H x W floats in [0, 1] with C = 1 (replicated to 3) or 3. For
                ViTs, H and W must be multiples of the patch size.

        Returns:
            N x 3 x H x W, ``(x - mean) / std``, on the trunk's device.
        """
        images = torch.as_tensor(images)
        if images.ndim != 4:
            raise ValueError(
                f"expected a batch of images N x C x H x W, got shape {tuple(images.shape)}"
            )
        n, c, h, w = images.shape
        if c not in (1, 3):
            raise ValueError(f"expected 1 or 3 channels (N x C x H x W), got shape {(n, c, h, w)}")
        if not images.is_floating_point():
            raise ValueError(
                f"expected float images in [0, 1], got {images.dtype} "
                "(scale 8-bit images by 1/255, or apply a stretch)"
            )
        patch = self.info.patch_size
        if patch and (h % patch or w % patch):
            raise ValueError(
                f"{self.info.name}: image size {h}x{w} is not a multiple of the patch size {patch}"
            )
        images = images.to(device=self.mean.device, dtype=self.mean.dtype)
        if images.numel():
            if not torch.isfinite(images).all():
                raise ValueError(
                    "images contain NaN or infinite values; fill them before the trunk"
                )
            lo, hi = torch.aminmax(images)
            if lo < -_RANGE_TOL or hi > 1 + _RANGE_TOL:
                raise ValueError(
                    f"expected images in [0, 1], got values in [{lo.item():.4g}, {hi.item():.4g}]"
                    " (apply a stretch first, e.g. astrodet.data.stretch.to_rgb)"
                )
        if c == 1:
            images = images.expand(-1, 3, -1, -1)
        return (images - self.mean) / self.std

    def forward(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Preprocess and return the probe feature, N x feature_dim (with gradients)."""
        x = self.preprocess(images)
        if self.info.family == "vit":
            return vit_feature(self.model, x, self.feature)
        return torch.flatten(self.model(x), 1)

    def features(
        self, images: torch.Tensor | np.ndarray, *, batch_size: int | None = None
    ) -> torch.Tensor:
        """The probe feature in eval and inference mode (the previous mode is restored).

        Args:
            images: N x C x H x W floats in [0, 1] (see :meth:`preprocess`).
            batch_size: run in chunks of this many images (None: all at once).

        Returns:
            N x feature_dim on the trunk's device.
        """
        images = torch.as_tensor(images)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                if batch_size is None or len(images) <= batch_size:
                    return self(images)
                return torch.cat(
                    [self(images[i : i + batch_size]) for i in range(0, len(images), batch_size)]
                )
        finally:
            self.train(was_training)


def _load_into(entry: ZooEntry, model: nn.Module, raw: Any, source: str) -> None:
    state_dict, ignored = entry.convert(raw, model, source=source)
    _weights.load_state_dict_strict(model, state_dict, source=source, ignore=ignored)


def _load_file(entry: ZooEntry, model: nn.Module, path: Path) -> str:
    if path.is_dir():
        raise _weights.WeightsNotFoundError(
            f"weights path {str(path)!r} is a folder; pass the checkpoint file inside it"
        )
    if not path.is_file():
        raise _weights.WeightsNotFoundError(
            f"checkpoint file {str(path)!r} does not exist (weights takes a file path, a hub id "
            f"such as 'hf:facebook/dinov2-base', or one of {', '.join(repr(k) for k in _KEYWORDS)})"
        )
    _load_into(entry, model, _weights.read_checkpoint(path), str(path))
    return str(path)


def _load_hub(entry: ZooEntry, model: nn.Module, hub: str | None = None) -> str:
    info = entry.info
    hub = hub or info.hub
    if hub is None:
        raise _weights.WeightsNotFoundError(_weights.not_found_message(info))
    source = f"hub:{hub}"
    try:
        raw = _weights.fetch_hub(hub)
    except Exception as exc:
        # Whatever the download library raised (no network, not cached, server error) ends
        # here as the one message that says where the weights can come from instead.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if hub != info.hub:
            raise _weights.WeightsNotFoundError(f"{source}: {reason}") from exc
        raise _weights.WeightsNotFoundError(_weights.not_found_message(info, reason)) from exc
    _load_into(entry, model, raw, source)
    return source


def _resolve_and_load(entry: ZooEntry, model: nn.Module, weights: str | os.PathLike) -> str:
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            f"weights must be 'auto', 'hub', 'none', '<provider>:<id>' or a file path, "
            f"got {type(weights).__name__}"
        )
    key = os.fspath(weights)
    if key == "none":
        logger.info("%s: random initialisation (weights='none')", entry.info.name)
        return "none"
    if key == "hub":
        return _load_hub(entry, model)
    if key == "auto":
        local = _weights.local_checkpoint(entry.info)
        if local is not None:
            return _load_file(entry, model, local)
        return _load_hub(entry, model)
    path = Path(key).expanduser()
    # Other hub weights by id, e.g. "hf:facebook/dinov2-base"; an existing file wins.
    if key.partition(":")[0] in _HUB_PROVIDERS and not path.exists():
        return _load_hub(entry, model, key)
    return _load_file(entry, model, path)


def _built_info(info: ModelInfo, model: nn.Module, feature: str) -> ModelInfo:
    """``info`` with the sizes of the model actually built (tiny test models differ)."""
    changes: dict[str, Any] = {"feature": feature}
    if info.family == "vit":
        changes["input_size"] = int(model.patch_embed.img_size[0])
        changes["patch_size"] = int(model.patch_embed.patch_size[0])
        changes["feature_dim"] = int(model.num_features)
    elif info.family == "resnet":
        changes["feature_dim"] = int(model.num_features)
    else:
        changes["feature_dim"] = int(getattr(model, "head_hidden_size", None) or model.num_features)
    return dataclasses.replace(info, **changes)


def build_trunk(
    name: str,
    *,
    weights: str | os.PathLike = "auto",
    feature: str | None = None,
    **model_kwargs: Any,
) -> Trunk:
    """Build a zoo trunk and load its weights strictly.

    Args:
        name: a name from :func:`list_models` or ``"timm:<timm model name>"``.
        weights: ``"auto"`` (``$ASTRODET_WEIGHTS/<official file>``, then the hub), a
            checkpoint path (any layout the family converts), ``"hub"`` (the family's hub
            weights), other hub weights by id (``"hf:facebook/dinov2-base"``,
            ``"timm:<name.tag>"``, ``"torchvision:<Weights.NAME>"``), or ``"none"`` for a
            random initialisation.
        feature: probe feature, default the family's (``"cls"`` for ViTs, ``"mean"`` of patch
            tokens is the alternative; ``"avgpool"`` for ResNets).
        **model_kwargs: architecture arguments: timm ViT kwargs (embed_dim, depth, num_heads,
            img_size, ...) or torchvision ResNet kwargs.

    Raises:
        ValueError: unknown name or feature.
        WeightsNotFoundError: no checkpoint found and the hub unavailable.
        CheckpointError: a checkpoint that cannot be read or does not fit exactly.
    """
    entry = get_entry(name)
    feature = feature or entry.info.feature
    if feature not in entry.features:
        raise ValueError(
            f"{name}: unknown feature {feature!r}; choose from {', '.join(entry.features)}"
        )
    model = entry.build(**model_kwargs)
    source = _resolve_and_load(entry, model, weights)
    info = _built_info(entry.info, model, feature)
    logger.info("built trunk %s (%s, feature %s) with weights %s", name, info.arch, feature, source)
    return Trunk(model, info, weights_source=source)
