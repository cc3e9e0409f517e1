import pytest
import torch
from modeling_helpers import tiny_vit_backbone
from torchvision.ops.misc import FrozenBatchNorm2d

from astrodet.modeling import FREEZE_MODES, build_resnet_fpn_backbone, build_vit_backbone

STRIDES = {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}


@pytest.mark.parametrize("trunk", ["dino", "dinov2"])
@pytest.mark.parametrize("size", [64, 96])
def test_vit_pyramid_shapes_and_strides(trunk, size):
    backbone = tiny_vit_backbone(trunk=trunk, image_size=64)
    # DINOv2's patch 14 is resampled to a stride-16 conv; the grid follows image_size.
    proj = backbone.trunk.model.patch_embed.proj
    assert proj.kernel_size == (16, 16) and proj.stride == (16, 16)
    assert backbone.trunk.model.pos_embed.shape[1] == 1 + (64 // 16) ** 2
    out = backbone(torch.randn(2, 3, size, size))
    assert list(out) == ["p2", "p3", "p4", "p5", "p6"]
    assert backbone.out_feature_strides == STRIDES
    for name, feat in out.items():
        expected = -(-size // STRIDES[name])  # max pool with kernel 1 rounds up
        assert feat.shape == (2, backbone.out_channels, expected, expected), name


def test_vit_non_square_and_bad_size():
    backbone = tiny_vit_backbone(image_size=64)
    out = backbone(torch.randn(1, 3, 64, 96))
    assert out["p2"].shape[-2:] == (16, 24)
    with pytest.raises(ValueError, match="multiple of 16"):
        backbone(torch.randn(1, 3, 60, 64))
    with pytest.raises(ValueError, match="multiple of 16"):
        tiny_vit_backbone(image_size=100)


def test_dinov2_patch_resample_keeps_response():
    # A constant image through the resampled kernel gives nearly the same embedding as
    # through the original one (resample_patch_embed preserves the patch response).
    from astrodet.zoo import build_trunk

    trunk = build_trunk("dinov2", weights="none", embed_dim=32, depth=1, num_heads=2, img_size=28)
    old = trunk.model.patch_embed.proj
    ref = old(torch.ones(1, 3, 14, 14)).flatten()
    backbone = build_vit_backbone(trunk=trunk, freeze="none", image_size=64, out_channels=16)
    new = backbone.trunk.model.patch_embed.proj(torch.ones(1, 3, 16, 16)).flatten()
    assert torch.allclose(ref, new, atol=1e-3 * ref.abs().max().item() + 1e-4)


def test_resnet_fpn_levels():
    backbone = build_resnet_fpn_backbone(trunk="resnet18", weights="none", out_channels=32)
    out = backbone(torch.randn(1, 3, 128, 128))
    assert list(out) == ["p2", "p3", "p4", "p5", "p6"]
    for name, feat in out.items():
        assert feat.shape == (1, 32, 128 // STRIDES[name], 128 // STRIDES[name]), name
    assert backbone.out_channels == 32
    # BatchNorm is frozen (torchvision detection convention), even when fine-tuning.
    bns = [m for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert not bns
    assert any(isinstance(m, FrozenBatchNorm2d) for m in backbone.modules())


def test_resnet_fine_tune_keeps_bn_frozen_but_trains_convs():
    backbone = build_resnet_fpn_backbone(
        trunk="resnet18", weights="none", freeze="none", out_channels=16
    )
    assert backbone.trunk.model.conv1.weight.requires_grad
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in backbone.modules())


def test_unknown_freeze_value():
    with pytest.raises(ValueError, match="'backbone', 'none'"):
        build_vit_backbone(trunk="dino", weights="none", freeze="partial")
    with pytest.raises(ValueError, match="freeze='all'"):
        build_resnet_fpn_backbone(trunk="resnet18", weights="none", freeze="all")
    assert FREEZE_MODES == ("backbone", "none")


def test_wrong_family():
    with pytest.raises(ValueError, match="not a ViT"):
        build_vit_backbone(trunk="resnet18", weights="none")
    with pytest.raises(ValueError, match="not a ResNet"):
        build_resnet_fpn_backbone(
            trunk="dino", weights="none", trunk_kwargs=dict(embed_dim=32, depth=1, num_heads=2)
        )
