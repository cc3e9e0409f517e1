"""Every family: tiny random trunk -> official on-disk layout -> build_trunk -> same features."""

from __future__ import annotations

import pytest
import torch
import torchvision
from zoo_formats import (
    INPUT,
    TINY_KW,
    dino_official,
    dino_training,
    dinov2_official,
    dinov2_pos_embed_reference,
    mae_official,
    msn_official,
    rand,
    resnet_official,
    tiny_trunk,
)

from astrodet.zoo import build_trunk, get_model_info


def _official(name: str, trunk, other=None) -> dict:
    state = trunk.model.state_dict()
    if name == "mae":
        return mae_official(state)
    if name == "dino":
        return dino_official(state)
    if name == "dinov2":
        return dinov2_official(state)
    if name == "msn":
        return msn_official(state, other.model.state_dict())
    return resnet_official(state, fc_in=trunk.feature_dim)


@pytest.mark.parametrize("name", ["mae", "dino", "dinov2", "msn", "resnet50", "resnet18"])
def test_official_checkpoint_round_trip(name, tmp_path):
    src = tiny_trunk(name, seed=0)
    other = tiny_trunk(name, seed=1)
    path = tmp_path / get_model_info(name).checkpoint
    torch.save(_official(name, src, other), path)

    loaded = build_trunk(name, weights=path, **TINY_KW[name])
    assert loaded.weights_source == str(path)
    for key, value in src.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key

    x = rand(3, 1, INPUT[name], INPUT[name])
    expected = src.features(x)
    assert expected.shape == (3, src.feature_dim)
    assert torch.equal(loaded.features(x), expected)
    # The features tell trunks apart: a different trunk (MSN: its online encoder) differs.
    assert not torch.allclose(other.features(x), expected, atol=1e-3)


def test_mae_encoder_only_file_loads(tmp_path):
    src = tiny_trunk("mae")
    path = tmp_path / "mae_pretrain_vit_base.pth"
    torch.save(mae_official(src.model.state_dict(), decoder=False), path)
    loaded = build_trunk("mae", weights=path, **TINY_KW["mae"])
    x = rand(2, 3, 32, 32)
    assert torch.equal(loaded.features(x), src.features(x))


def test_dino_training_checkpoint_takes_teacher(tmp_path):
    teacher, student = tiny_trunk("dino", seed=0), tiny_trunk("dino", seed=1)
    path = tmp_path / "checkpoint.pth"
    torch.save(dino_training(teacher.model.state_dict(), student.model.state_dict()), path)
    loaded = build_trunk("dino", weights=path, **TINY_KW["dino"])
    x = rand(2, 3, 32, 32)
    assert torch.equal(loaded.features(x), teacher.features(x))


def test_dinov2_chunked_blocks(tmp_path):
    src = tiny_trunk("dinov2")
    path = tmp_path / "dinov2_chunked.pth"
    torch.save(dinov2_official(src.model.state_dict(), chunks=2), path)
    assert any(k.startswith("blocks.1.1.") for k in torch.load(path))
    loaded = build_trunk("dinov2", weights=path, **TINY_KW["dinov2"])
    x = rand(2, 3, 28, 28)
    assert torch.equal(loaded.features(x), src.features(x))


def test_dinov2_pos_embed_resampled_to_built_grid(tmp_path):
    # Like the official 518 px (37x37) weights loaded into the zoo's 224 px (16x16) trunk.
    src = tiny_trunk("dinov2", img_size=56)  # 4x4 grid
    path = tmp_path / "dinov2_vitb14_pretrain.pth"
    torch.save(dinov2_official(src.model.state_dict()), path)
    loaded = build_trunk("dinov2", weights=path, **TINY_KW["dinov2"])  # 2x2 grid
    assert loaded.model.pos_embed.shape == (1, 1 + 4, 32)
    # resampled as DINOv2 itself does (see test_zoo_dinov2.py), not by timm's resize
    expected = dinov2_pos_embed_reference(src.model.pos_embed.detach(), 4, 2)
    torch.testing.assert_close(loaded.model.pos_embed.detach(), expected, rtol=0, atol=1e-5)
    assert torch.equal(loaded.model.blocks[1].ls2.gamma, src.model.blocks[1].ls2.gamma)


def test_resnet_trunk_matches_torchvision_pooling(tmp_path):
    src = tiny_trunk("resnet18")
    state = resnet_official(src.model.state_dict(), fc_in=512)
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(state, path)
    loaded = build_trunk("resnet18", weights=path)

    reference = torchvision.models.resnet18(weights=None)
    reference.load_state_dict(state)
    reference.eval()
    x = rand(2, 3, 64, 64)
    body = torch.nn.Sequential(*list(reference.children())[:-1])  # everything but fc
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = body((x - mean) / std).flatten(1)
    torch.testing.assert_close(loaded.features(x), expected, rtol=1e-5, atol=1e-5)


def test_resnet_checkpoint_without_batch_counters(tmp_path):
    src = tiny_trunk("resnet18")
    state = {
        k: v for k, v in src.model.state_dict().items() if not k.endswith("num_batches_tracked")
    }
    path = tmp_path / "old.pth"
    torch.save(resnet_official(state, fc_in=512), path)
    loaded = build_trunk("resnet18", weights=path)
    x = rand(1, 3, 32, 32)
    assert torch.equal(loaded.features(x), src.features(x))
