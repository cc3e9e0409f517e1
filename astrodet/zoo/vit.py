"""What the ViT families share: building a timm ViT and the layout conversions common to
several checkpoints (wrappers and prefixes, Hugging Face ViT layout, position-embedding grid).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .weights import CheckpointError

if TYPE_CHECKING:
    from timm.models.vision_transformer import VisionTransformer

logger = logging.getLogger(__name__)


def create_vit(arch: str, *, img_size: int = 224, **kwargs: Any) -> VisionTransformer:
    """A randomly initialised timm ViT without classifier that accepts any input size.

    Args:
        arch: timm architecture name.
        img_size: size of the position-embedding grid (inputs of other sizes that are a
            multiple of the patch size are accepted too: the grid is resampled on the fly).
        **kwargs: timm ViT arguments (embed_dim, depth, num_heads, patch_size, ...).
    """
    # timm is imported on first build, so listing the zoo stays quick.
    import timm

    kwargs.setdefault("num_classes", 0)
    kwargs.setdefault("dynamic_img_size", True)
    return timm.create_model(arch, pretrained=False, img_size=img_size, **kwargs)


def top_keys(obj: Any) -> str:
    """A short listing of a checkpoint's top-level keys, for error messages."""
    if not isinstance(obj, Mapping):
        return f"a {type(obj).__name__}, not a dict"
    keys = list(obj)
    shown = ", ".join(map(str, keys[:10]))
    return f"top-level keys: {shown}" + (f", ... ({len(keys) - 10} more)" if len(keys) > 10 else "")


def is_state_dict(obj: Any) -> bool:
    """True for a non-empty mapping from names to tensors."""
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def strip_prefix(state_dict: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Remove ``prefix`` from the keys that carry it; other keys are kept unchanged."""
    n = len(prefix)
    return {(k[n:] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def unwrap(obj: Any, keys: tuple[str, ...], *, source: str) -> dict[str, Any]:
    """The state dict inside a training checkpoint.

    Args:
        obj: the loaded checkpoint.
        keys: wrapper keys to look under, in order (e.g. ``("model",)``); a plain state dict
            is returned as it is.
        source: named in the error.

    Raises:
        CheckpointError: neither a wrapped nor a plain state dict.
    """
    if isinstance(obj, Mapping):
        for key in keys:
            if key in obj and isinstance(obj[key], Mapping):
                return dict(obj[key])
        if is_state_dict(obj):
            return dict(obj)
    raise CheckpointError(
        f"checkpoint {source!r} holds no state dict under "
        f"{' or '.join(repr(k) for k in keys) or 'its top level'} ({top_keys(obj)})"
    )


# --- Hugging Face ViT layout ------------------------------------------------------------

_HF_EMBED = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "embeddings.mask_token": "mask_token",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}
# Per-block names: the classic layout (``encoder.layer.N....``, as stored on the hub) and the
# layout of transformers >= 5 (``layers.N....``).
_HF_BLOCK = re.compile(r"^(?:encoder\.layer|layers)\.(\d+)\.(.+)$")
_HF_BLOCK_PARTS = {
    "attention.attention.query": "q",
    "attention.attention.key": "k",
    "attention.attention.value": "v",
    "attention.q_proj": "q",
    "attention.k_proj": "k",
    "attention.v_proj": "v",
    "attention.output.dense": "attn.proj",
    "attention.o_proj": "attn.proj",
    "intermediate.dense": "mlp.fc1",
    "mlp.fc1": "mlp.fc1",
    "output.dense": "mlp.fc2",
    "mlp.fc2": "mlp.fc2",
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    # Dinov2Model names its norms as timm does and adds LayerScale
    "norm1": "norm1",
    "norm2": "norm2",
}
# Dinov2Model's LayerScale (one vector, no bias) -> timm's LayerScale modules.
_HF_LAYER_SCALE = {"layer_scale1.lambda1": "ls1.gamma", "layer_scale2.lambda1": "ls2.gamma"}


def is_hf_vit(state_dict: Mapping[str, Any]) -> bool:
    """True for the Hugging Face ViT / ViT-MSN / ViT-MAE / DINOv2 layout (with or without
    ``vit.``)."""
    return any(
        k.startswith(("embeddings.patch_embeddings.", "vit.embeddings.patch_embeddings."))
        for k in state_dict
    )


def hf_vit_to_timm(state_dict: Mapping[str, Any], *, source: str = "checkpoint") -> dict:
    """Convert a Hugging Face ViT state dict (``ViTModel``, ``ViTMSNModel``, ``ViTMAEModel``,
    ``Dinov2Model``) to timm ``VisionTransformer`` names.

    Separate query/key/value projections are stacked into timm's fused ``qkv``. Keys outside
    the encoder (``decoder.``, ``classifier.``, ``pooler.``) are kept as they are, for the
    caller to ignore or reject.

    Args:
        state_dict: HF weights; a leading ``vit.`` is removed.
        source: named in errors.

    Raises:
        CheckpointError: a block lacks one of its query/key/value tensors.
    """
    state_dict = strip_prefix(state_dict, "vit.")
    out: dict[str, Any] = {}
    qkv: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        if key in _HF_EMBED:
            out[_HF_EMBED[key]] = value
            continue
        match = _HF_BLOCK.match(key)
        if match is None:
            out[key] = value
            continue
        index, rest = int(match.group(1)), match.group(2)
        if rest in _HF_LAYER_SCALE:
            out[f"blocks.{index}.{_HF_LAYER_SCALE[rest]}"] = value
            continue
        part, _, param = rest.rpartition(".")
        name = _HF_BLOCK_PARTS.get(part)
        if name is None:
            out[key] = value
        elif name in ("q", "k", "v"):
            qkv.setdefault((index, param), {})[name] = value
        else:
            out[f"blocks.{index}.{name}.{param}"] = value
    for (index, param), parts in sorted(qkv.items()):
        if set(parts) != {"q", "k", "v"}:
            raise CheckpointError(
                f"checkpoint {source!r}: attention of layer {index} has only "
                f"{sorted(parts)} of query/key/value {param}"
            )
        out[f"blocks.{index}.attn.qkv.{param}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    return out


# --- position embedding -----------------------------------------------------------------


# ``resample(pos_embed, new_size=(h, w), old_size=(h, w), num_prefix_tokens=n)`` -> pos_embed
PosEmbedResampler = Callable[..., torch.Tensor]


def adapt_pos_embed(
    state_dict: dict[str, Any], model: nn.Module, *, resample: PosEmbedResampler | None = None
) -> dict[str, Any]:
    """Resample a checkpoint's ``pos_embed`` to the grid of ``model`` (e.g. DINOv2's 37x37
    grid at 518 px to 16x16 at 224 px). Anything that is not a square grid of the same width
    is left for the strict loader to report.

    Args:
        state_dict: timm-named weights.
        model: the timm ViT they are loaded into.
        resample: the family's own resampling (DINOv2 has one); default timm's
            ``resample_abs_pos_embed`` (bicubic, antialiased).
    """
    value = state_dict.get("pos_embed")
    target = getattr(model, "pos_embed", None)
    if not isinstance(value, torch.Tensor) or target is None or value.shape == target.shape:
        return state_dict
    if value.ndim != 3 or value.shape[-1] != target.shape[-1]:
        return state_dict
    prefix = 0 if getattr(model, "no_embed_class", False) else model.num_prefix_tokens
    old_tokens = value.shape[1] - prefix
    side = int(round(old_tokens**0.5))
    if side * side != old_tokens:
        return state_dict
    if resample is None:
        from timm.layers import resample_abs_pos_embed as resample

    new_size = tuple(int(g) for g in model.patch_embed.grid_size)
    logger.info("resampling pos_embed from a %dx%d grid to %dx%d", side, side, *new_size)
    state_dict = dict(state_dict)
    state_dict["pos_embed"] = resample(
        value.float(), new_size=list(new_size), old_size=[side, side], num_prefix_tokens=prefix
    )
    return state_dict


def finish_vit_state(state_dict: dict[str, Any], model: nn.Module, *, source: str) -> dict:
    """The steps every ViT converter ends with: Hugging Face layout to timm names when
    recognised, then the position-embedding grid adapted to the model. A ``module.`` prefix
    (weights saved from DistributedDataParallel) is removed first."""
    state_dict = strip_prefix(state_dict, "module.")
    if is_hf_vit(state_dict):
        state_dict = hf_vit_to_timm(state_dict, source=source)
    return adapt_pos_embed(state_dict, model)


def vit_feature(model: VisionTransformer, images: torch.Tensor, feature: str) -> torch.Tensor:
    """The probe feature of a timm ViT: CLS token or mean of patch tokens, after the final
    norm."""
    tokens = model.forward_features(images)
    if feature == "cls":
        return tokens[:, 0]
    if feature == "mean":
        return tokens[:, model.num_prefix_tokens :].mean(dim=1)
    raise ValueError(f"unknown ViT feature {feature!r}; use 'cls' or 'mean'")
