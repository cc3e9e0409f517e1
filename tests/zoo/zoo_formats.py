"""Test helpers: tiny trunks and their weights written in each family's official on-disk layout
(the inverse of the zoo's converters, written independently from them)."""

from __future__ import annotations

import argparse
import re

import torch

from astrodet.zoo import build_trunk

VIT_KW = {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 32}
TINY_KW = {
    "mae": VIT_KW,
    "dino": VIT_KW,
    "msn": VIT_KW,
    "dinov2": {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 28},
    "resnet18": {},
    "resnet50": {"width_per_group": 16},
}
INPUT = {"mae": 32, "dino": 32, "msn": 32, "dinov2": 28, "resnet18": 32, "resnet50": 32}


def perturb_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Move every parameter and statistic away from its initial value (ones, zeros, 1e-5
    LayerScale), so a weight that is not loaded shows in the features."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=gen) * 0.1
            if name.endswith("running_var"):
                tensor.copy_(tensor.abs() + noise.abs() + 0.5)
            else:
                tensor.add_(noise)
    return module


def tiny_trunk(name: str, seed: int = 0, **overrides):
    """A tiny random trunk of the family ``name`` with perturbed weights."""
    torch.manual_seed(seed)
    trunk = build_trunk(name, weights="none", **{**TINY_KW[name], **overrides})
    perturb_(trunk.model, seed)
    return trunk.eval()


def rand(*shape) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(1))


# --- official layouts -------------------------------------------------------------------


def mae_official(state: dict, *, decoder: bool = True) -> dict:
    """``mae_pretrain_vit_base.pth``: ``{"model": ...}``; a training checkpoint adds
    ``mask_token`` and the ``decoder_*`` weights and pickles its argparse options."""
    model = dict(state)
    ckpt = {"model": model}
    if decoder:
        dim = state["cls_token"].shape[-1]
        model["mask_token"] = torch.zeros(1, 1, 16)
        model["decoder_embed.weight"] = torch.randn(16, dim)
        model["decoder_embed.bias"] = torch.randn(16)
        model["decoder_pos_embed"] = torch.randn(1, state["pos_embed"].shape[1], 16)
        model["decoder_blocks.0.norm1.weight"] = torch.randn(16)
        model["decoder_norm.weight"] = torch.randn(16)
        model["decoder_pred.weight"] = torch.randn(768, 16)
        ckpt["epoch"] = 799
        ckpt["args"] = argparse.Namespace(model="mae_vit_base_patch16", mask_ratio=0.75)
    return ckpt


def dino_official(state: dict) -> dict:
    """``dino_vitbase16_pretrain.pth``: the teacher backbone, names as in timm."""
    return dict(state)


def dino_training(teacher: dict, student: dict) -> dict:
    """A DINO ``checkpoint.pth``: DDP student, plain teacher, DINO heads, options."""
    dim = teacher["cls_token"].shape[-1]
    head = {
        "head.mlp.0.weight": torch.randn(64, dim),
        "head.mlp.0.bias": torch.randn(64),
        "head.last_layer.weight_g": torch.randn(128, 1),
        "head.last_layer.weight_v": torch.randn(128, 64),
    }
    return {
        "student": {
            **{f"module.backbone.{k}": v for k, v in student.items()},
            **{f"module.{k}": v for k, v in head.items()},
        },
        "teacher": {**{f"backbone.{k}": v for k, v in teacher.items()}, **head},
        "optimizer": {"state": {}, "param_groups": []},
        "epoch": 100,
        "args": argparse.Namespace(arch="vit_base", patch_size=16),
        "dino_loss": {"center": torch.zeros(1, 128)},
    }


def dinov2_official(state: dict, *, chunks: int = 0) -> dict:
    """``dinov2_vitb14_pretrain.pth``: timm's names plus ``mask_token``; with ``chunks`` the
    blocks are grouped as in DINOv2's chunked FSDP layout (``blocks.C.N.*``)."""
    dim = state["cls_token"].shape[-1]
    out = {"mask_token": torch.zeros(1, dim)}
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    per_chunk = depth // chunks if chunks else depth
    for key, value in state.items():
        match = re.match(r"blocks\.(\d+)\.(.*)$", key)
        if chunks and match:
            index = int(match.group(1))
            key = f"blocks.{index // per_chunk}.{index}.{match.group(2)}"
        out[key] = value
    return out


def msn_official(target: dict, online: dict) -> dict:
    """``vitb16_600ep.pth.tar``: DDP online and target encoders with the ``fc`` projection
    head, prototypes and training state."""
    dim = target["cls_token"].shape[-1]
    fc = {
        "fc.fc1.weight": torch.randn(64, dim),
        "fc.fc1.bias": torch.randn(64),
        "fc.bn1.weight": torch.randn(64),
        "fc.bn1.running_mean": torch.randn(64),
        "fc.bn1.num_batches_tracked": torch.tensor(5),
        "fc.fc3.weight": torch.randn(16, 64),
    }
    return {
        "encoder": {f"module.{k}": v for k, v in {**online, **fc}.items()},
        "target_encoder": {f"module.{k}": v for k, v in {**target, **fc}.items()},
        "prototypes": torch.randn(8, 16),
        "epoch": 600,
        "lr": 0.001,
        "batch_size": 32,
    }


def resnet_official(state: dict, *, fc_in: int) -> dict:
    """torchvision's ResNet file: the classifier ``fc`` included."""
    return {**state, "fc.weight": torch.randn(1000, fc_in), "fc.bias": torch.randn(1000)}


# transformers >= 5 in-memory names -> the classic names stored in hub files.
_LEGACY = [
    (r"^layers\.(\d+)\.attention\.([qkv])_proj\.", None),
    (r"^layers\.(\d+)\.attention\.o_proj\.", r"encoder.layer.\1.attention.output.dense."),
    (r"^layers\.(\d+)\.mlp\.fc1\.", r"encoder.layer.\1.intermediate.dense."),
    (r"^layers\.(\d+)\.mlp\.fc2\.", r"encoder.layer.\1.output.dense."),
    (r"^layers\.(\d+)\.", r"encoder.layer.\1."),
]
_QKV = {"q": "query", "k": "key", "v": "value"}


def hf_to_legacy(state: dict) -> dict:
    """Rename a transformers-5 ViT state dict to the classic hub layout
    (``encoder.layer.N.attention.attention.query`` ...)."""
    out = {}
    for key, value in state.items():
        for pattern, repl in _LEGACY:
            match = re.match(pattern, key)
            if match is None:
                continue
            if repl is None:
                name = _QKV[match.group(2)]
                key = (
                    f"encoder.layer.{match.group(1)}.attention.attention.{name}."
                    + key[match.end() :]
                )
            else:
                key = re.sub(pattern, repl, key)
            break
        out[key] = value
    return out


# --- DINOv2 ---------------------------------------------------------------------------------


def _keys_cubic(x: torch.Tensor, a: float = -0.75) -> torch.Tensor:
    """Keys' cubic convolution kernel (a = -0.75, as PyTorch's bicubic uses)."""
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x <= 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _cubic_matrix(old: int, new: int, offset: float) -> torch.Tensor:
    """new x old weights: output i samples the input at (i + 0.5) * old / (new + offset) - 0.5,
    four taps clamped at the borders, no antialiasing."""
    weights = torch.zeros(new, old, dtype=torch.float64)
    for i in range(new):
        src = (i + 0.5) * old / (new + offset) - 0.5
        base = int(torch.floor(torch.tensor(src)))
        for tap in range(base - 1, base + 3):
            w = _keys_cubic(torch.tensor(src - tap, dtype=torch.float64))
            weights[i, min(max(tap, 0), old - 1)] += w
    return weights


def dinov2_pos_embed_reference(pos_embed: torch.Tensor, old: int, new: int) -> torch.Tensor:
    """DINOv2's position-embedding interpolation from its description: CLS token kept, the
    old x old grid resampled to new x new by bicubic convolution with the scale factor
    (new + 0.1) / old, without antialiasing. Written as two matrix products."""
    cls, grid = pos_embed[:, :1].double(), pos_embed[0, 1:].double()
    dim = grid.shape[-1]
    grid = grid.reshape(old, old, dim)
    m = _cubic_matrix(old, new, 0.1)
    out = torch.einsum("ia,abc,jb->ijc", m, grid, m).reshape(1, new * new, dim)
    return torch.cat([cls, out], dim=1).float()


# transformers >= 5 Dinov2Model names -> the classic names stored in hub files
# (facebook/dinov2-base: encoder.layer.N.attention.attention.query ...).
_DINOV2_LEGACY = {
    "attention.q_proj.": "attention.attention.query.",
    "attention.k_proj.": "attention.attention.key.",
    "attention.v_proj.": "attention.attention.value.",
    "attention.o_proj.": "attention.output.dense.",
}


def dinov2_hf_to_legacy(state: dict) -> dict:
    out = {}
    for key, value in state.items():
        for new, old in _DINOV2_LEGACY.items():
            key = key.replace(new, old)
        out[key] = value
    return out
