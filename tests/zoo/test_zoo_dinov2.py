"""DINOv2: the position embedding resampled as the official model does it (checked against an
implementation written here from its description), and the Hugging Face ``Dinov2Model``
layout (``facebook/dinov2-base``) checked against transformers itself."""

from __future__ import annotations

import pytest
import torch
from timm.layers import resample_abs_pos_embed
from zoo_formats import (
    TINY_KW,
    dinov2_hf_to_legacy,
    dinov2_official,
    dinov2_pos_embed_reference,
    perturb_,
    rand,
    tiny_trunk,
)

from astrodet.zoo import build_trunk
from astrodet.zoo.dinov2 import resample_pos_embed_dinov2


@pytest.mark.parametrize(("old", "new"), [(37, 16), (37, 32), (8, 4), (4, 9)])
def test_resampling_follows_dinov2(old, new):
    torch.manual_seed(0)
    pos = torch.randn(1, 1 + old * old, 8)
    ours = resample_pos_embed_dinov2(pos, new_size=(new, new), old_size=(old, old))
    reference = dinov2_pos_embed_reference(pos, old, new)
    assert ours.shape == (1, 1 + new * new, 8)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)
    # timm's resize to the same grid samples other positions (and antialiases)
    timm_resized = resample_abs_pos_embed(
        pos, new_size=[new, new], old_size=[old, old], num_prefix_tokens=1
    )
    assert (timm_resized - reference).abs().max() > 1e-2


def _official_cls(model, images, pos_embed):
    """The CLS feature of an official-style forward: patches + CLS, the given position
    embedding added, blocks, final norm."""
    tokens = model.patch_embed.proj(images).flatten(2).transpose(1, 2)
    tokens = torch.cat([model.cls_token.expand(len(images), -1, -1), tokens], dim=1) + pos_embed
    for block in model.blocks:
        tokens = block(tokens)
    return model.norm(tokens)[:, 0]


def test_official_weights_resampled_to_probe_size(tmp_path):
    # 8x8 grid stands in for the 518 px (37x37) checkpoint; the probe builds the trunk at its
    # input size (56 px here, 4x4), so features there are the official model's.
    src = tiny_trunk("dinov2", img_size=112)
    path = tmp_path / "dinov2_vitb14_pretrain.pth"
    torch.save(dinov2_official(src.model.state_dict()), path)
    loaded = build_trunk("dinov2", weights=path, **{**TINY_KW["dinov2"], "img_size": 56})
    reference = dinov2_pos_embed_reference(src.model.pos_embed.detach(), 8, 4)
    torch.testing.assert_close(loaded.model.pos_embed.detach(), reference, rtol=0, atol=1e-5)

    x = rand(2, 3, 56, 56)
    with torch.no_grad():
        expected = _official_cls(src.model.eval(), src.preprocess(x), reference)
    torch.testing.assert_close(loaded.features(x), expected, rtol=0, atol=1e-5)


def test_default_grid_is_224_px():
    trunk = build_trunk("dinov2", weights="none", embed_dim=32, depth=1, num_heads=2)
    assert trunk.info.input_size == 224 and tuple(trunk.model.patch_embed.grid_size) == (16, 16)


# --- Hugging Face Dinov2Model --------------------------------------------------------------

transformers = pytest.importorskip("transformers")

HF_TINY = {
    "image_size": 28,
    "patch_size": 14,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "mlp_ratio": 4,
    "layer_norm_eps": 1e-6,
}


def _hf_dinov2():
    torch.manual_seed(0)
    model = transformers.Dinov2Model(transformers.Dinov2Config(**HF_TINY))
    return perturb_(model).eval()


def _save_safetensors(state, path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def _assert_matches(trunk, hf, feature="cls"):
    x = rand(3, 3, 28, 28)
    with torch.no_grad():
        tokens = hf(pixel_values=trunk.preprocess(x)).last_hidden_state
    theirs = tokens[:, 0] if feature == "cls" else tokens[:, 1:].mean(dim=1)
    torch.testing.assert_close(trunk.features(x), theirs, rtol=0, atol=1e-5)


@pytest.mark.parametrize("feature", ["cls", "mean"])
def test_hf_dinov2_matches_transformers(tmp_path, feature):
    pytest.importorskip("safetensors")
    hf = _hf_dinov2()
    assert "encoder.layer.0.layer_scale1.lambda1" in hf.state_dict()
    path = tmp_path / "model.safetensors"
    _save_safetensors(hf.state_dict(), path)
    trunk = build_trunk("dinov2", weights=path, feature=feature, **TINY_KW["dinov2"])
    _assert_matches(trunk, hf, feature)


def test_hf_dinov2_classic_hub_layout(tmp_path):
    hf = _hf_dinov2()
    state = dinov2_hf_to_legacy(hf.state_dict())
    assert "encoder.layer.1.attention.attention.query.weight" in state
    assert "encoder.layer.1.attention.output.dense.bias" in state
    path = tmp_path / "pytorch_model.bin"
    torch.save(state, path)
    _assert_matches(build_trunk("dinov2", weights=path, **TINY_KW["dinov2"]), hf)


def test_hf_dinov2_classifier_checkpoint(tmp_path):
    # Dinov2ForImageClassification: ``dinov2.`` encoder and a classifier the trunk ignores.
    hf = _hf_dinov2()
    state = {f"dinov2.{k}": v for k, v in dinov2_hf_to_legacy(hf.state_dict()).items()}
    state["classifier.weight"] = torch.randn(10, 64)
    state["classifier.bias"] = torch.randn(10)
    path = tmp_path / "classifier.bin"
    torch.save(state, path)
    _assert_matches(build_trunk("dinov2", weights=path, **TINY_KW["dinov2"]), hf)


def test_hf_dinov2_missing_layer_scale_is_an_error(tmp_path):
    from astrodet.zoo import CheckpointError

    state = dict(_hf_dinov2().state_dict())
    del state["encoder.layer.1.layer_scale2.lambda1"]
    path = tmp_path / "partial.bin"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"blocks\.1\.ls2\.gamma"):
        build_trunk("dinov2", weights=path, **TINY_KW["dinov2"])


def test_hf_dinov2_by_hub_id(monkeypatch, tmp_path):
    # The paper's weights: ``weights="hf:facebook/dinov2-base"`` reads the repository's file
    # through huggingface_hub (offline in tests: from the cache only).
    import huggingface_hub

    pytest.importorskip("safetensors")
    hf = _hf_dinov2()
    path = tmp_path / "model.safetensors"
    _save_safetensors(dinov2_hf_to_legacy(hf.state_dict()), path)
    calls = []

    def cached_download(repo_id, filename, **kwargs):
        calls.append((repo_id, filename, kwargs["local_files_only"]))
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", cached_download)
    trunk = build_trunk("dinov2", weights="hf:facebook/dinov2-base", **TINY_KW["dinov2"])
    assert calls == [("facebook/dinov2-base", "model.safetensors", True)]
    assert trunk.weights_source == "hub:hf:facebook/dinov2-base"
    _assert_matches(trunk, hf)


def test_unavailable_hub_id_names_it(monkeypatch):
    import huggingface_hub

    from astrodet.zoo import WeightsNotFoundError

    def not_cached(repo_id, filename, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("not in the local cache")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", not_cached)
    with pytest.raises(WeightsNotFoundError, match="hub:hf:facebook/dinov2-base: .*local"):
        build_trunk("dinov2", weights="hf:facebook/dinov2-base", **TINY_KW["dinov2"])
