"""Independent implementations: transformers' ViT-MSN and ViT-MAE against our converted trunk."""

from __future__ import annotations

import pytest
import torch
from zoo_formats import hf_to_legacy, perturb_, rand

from astrodet.zoo import build_trunk
from astrodet.zoo.vit import hf_vit_to_timm

transformers = pytest.importorskip("transformers")

HF_TINY = {
    "image_size": 32,
    "patch_size": 16,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "layer_norm_eps": 1e-6,  # timm's LayerNorm eps (HF's default is 1e-12)
    "qkv_bias": True,
}
OURS = {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 32}


def _save_safetensors(state, path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def _msn_model():
    torch.manual_seed(0)
    model = transformers.ViTMSNModel(transformers.ViTMSNConfig(**HF_TINY))
    return perturb_(model).eval()


def test_vit_msn_matches_transformers(tmp_path):
    pytest.importorskip("safetensors")
    hf = _msn_model()
    path = tmp_path / "model.safetensors"
    _save_safetensors(hf.state_dict(), path)
    trunk = build_trunk("msn", weights=path, **OURS)

    x = rand(3, 3, 32, 32)
    with torch.no_grad():
        theirs = hf(pixel_values=trunk.preprocess(x)).last_hidden_state[:, 0]
    torch.testing.assert_close(trunk.features(x), theirs, rtol=0, atol=1e-5)


def test_vit_msn_classic_hub_layout(tmp_path):
    # Hub files keep the classic names (encoder.layer.N.attention.attention.query ...);
    # a classification checkpoint adds ``vit.`` and a classifier the trunk ignores.
    hf = _msn_model()
    state = {f"vit.{k}": v for k, v in hf_to_legacy(hf.state_dict()).items()}
    assert "vit.encoder.layer.1.attention.attention.value.bias" in state
    state["classifier.weight"] = torch.randn(10, 32)
    state["classifier.bias"] = torch.randn(10)
    path = tmp_path / "pytorch_model.bin"
    torch.save(state, path)
    trunk = build_trunk("msn", weights=path, **OURS)

    x = rand(2, 3, 32, 32)
    with torch.no_grad():
        theirs = hf(pixel_values=trunk.preprocess(x)).last_hidden_state[:, 0]
    torch.testing.assert_close(trunk.features(x), theirs, rtol=0, atol=1e-5)


def test_vit_mae_matches_transformers(tmp_path):
    torch.manual_seed(0)
    config = transformers.ViTMAEConfig(
        **HF_TINY,
        mask_ratio=0.0,
        decoder_num_hidden_layers=1,
        decoder_hidden_size=16,
        decoder_intermediate_size=32,
        decoder_num_attention_heads=2,
    )
    hf = perturb_(transformers.ViTMAEForPreTraining(config)).eval()
    path = tmp_path / "vit-mae.bin"
    torch.save(hf.state_dict(), path)  # vit.* encoder + decoder.*
    trunk = build_trunk("mae", weights=path, **OURS)

    x = rand(2, 3, 32, 32)
    num_patches = (32 // 16) ** 2
    # Increasing noise keeps the patch order: with mask_ratio 0 nothing is masked or shuffled.
    noise = torch.arange(num_patches, dtype=torch.float32).expand(2, -1)
    with torch.no_grad():
        theirs = hf.vit(pixel_values=trunk.preprocess(x), noise=noise).last_hidden_state[:, 0]
    torch.testing.assert_close(trunk.features(x), theirs, rtol=0, atol=1e-5)


def test_hf_converter_stacks_qkv_in_order():
    hf = _msn_model()
    state = hf.state_dict()
    converted = hf_vit_to_timm(state)
    qkv = converted["blocks.0.attn.qkv.weight"]
    assert qkv.shape == (96, 32)
    assert torch.equal(qkv[:32], state["layers.0.attention.q_proj.weight"])
    assert torch.equal(qkv[32:64], state["layers.0.attention.k_proj.weight"])
    assert torch.equal(qkv[64:], state["layers.0.attention.v_proj.weight"])
    assert torch.equal(hf_vit_to_timm(hf_to_legacy(state))["blocks.0.attn.qkv.weight"], qkv)
