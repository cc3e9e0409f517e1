"""Trunk behaviour: preprocessing, probe features, inference mode, input sizes."""

from __future__ import annotations

import pytest
import torch
from zoo_formats import TINY_KW, rand, tiny_trunk

from astrodet.zoo import Trunk, build_trunk


def test_preprocess_normalises_and_replicates_grey():
    trunk = tiny_trunk("dino")
    grey = torch.full((2, 1, 32, 32), 0.5)
    out = trunk.preprocess(grey)
    assert out.shape == (2, 3, 32, 32)
    expected = (0.5 - torch.tensor(trunk.info.mean)) / torch.tensor(trunk.info.std)
    torch.testing.assert_close(out[0, :, 0, 0], expected)
    x = rand(2, 1, 32, 32)
    assert torch.equal(trunk.features(x), trunk.features(x.expand(-1, 3, -1, -1)))


@pytest.mark.parametrize(
    "images, match",
    [
        (torch.rand(3, 32, 32), "N x C x H x W"),
        (torch.rand(1, 2, 32, 32), "1 or 3 channels"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "float images"),
        (torch.rand(1, 3, 32, 40), "not a multiple of the patch size 16"),
        (torch.rand(1, 3, 32, 32) * 300, r"in \[0, 1\]"),
        (torch.full((1, 3, 32, 32), float("nan")), "NaN"),
    ],
)
def test_preprocess_rejects_bad_input(images, match):
    trunk = tiny_trunk("dino")
    with pytest.raises(ValueError, match=match):
        trunk.features(images)


def test_features_inference_mode_and_mode_restored():
    trunk = tiny_trunk("mae").train()
    x = rand(5, 3, 32, 32)
    feats = trunk.features(x)
    assert isinstance(trunk, Trunk)
    assert feats.shape == (5, 32) and not feats.requires_grad and feats.is_inference()
    assert trunk.training  # the caller's mode is kept
    torch.testing.assert_close(trunk.features(x, batch_size=2), feats)
    assert torch.equal(trunk.features(x.numpy()), feats)
    out = trunk.eval()(x)
    assert out.requires_grad  # forward keeps gradients for fine-tuning


def test_mean_of_patch_tokens_option(tmp_path):
    src = tiny_trunk("mae")
    path = tmp_path / "mae.pth"
    torch.save({"model": src.model.state_dict()}, path)
    trunk = build_trunk("mae", weights=path, feature="mean", **TINY_KW["mae"])
    assert trunk.info.feature == "mean"
    x = rand(2, 3, 32, 32)
    with torch.no_grad():
        tokens = src.model.forward_features(src.preprocess(x))
    torch.testing.assert_close(trunk.features(x), tokens[:, 1:].mean(dim=1))
    with pytest.raises(ValueError, match="unknown feature 'avgpool'"):
        build_trunk("mae", weights="none", feature="avgpool", **TINY_KW["mae"])


@pytest.mark.parametrize("name, size", [("dino", 224), ("dinov2", 224)])
def test_vit_accepts_any_multiple_of_patch(name, size):
    # Probes run at 224; detection feeds 512-ish inputs to the same trunk.
    trunk = build_trunk(name, weights="none", embed_dim=32, depth=1, num_heads=2)
    patch = trunk.info.patch_size
    assert trunk.info.input_size == size
    for h, w in [(size, size), (32 * patch, 32 * patch), (2 * patch, 5 * patch)]:
        assert trunk.features(torch.rand(1, 3, h, w)).shape == (1, 32)
    tokens = trunk.model.forward_features(
        trunk.preprocess(torch.rand(1, 3, 32 * patch, 32 * patch))
    )
    assert tokens.shape[1] == 1 + 32 * 32


def test_built_info_reflects_kwargs():
    trunk = build_trunk("dinov2", weights="none", **TINY_KW["dinov2"])
    assert (trunk.info.input_size, trunk.info.patch_size, trunk.feature_dim) == (28, 14, 32)
    assert trunk.info.checkpoint == "dinov2_vitb14_pretrain.pth"


def test_trunk_moves_input_to_its_device_and_dtype():
    trunk = tiny_trunk("resnet18").double()
    feats = trunk.features(rand(1, 1, 32, 32))
    assert feats.dtype == torch.float64 and feats.shape == (1, 512)
