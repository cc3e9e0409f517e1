"""ViTDet's detection heads and pooling: aligned RoIAlign, the 2-conv RPN head, the 4conv1fc
box head with LayerNorm, and input normalisation from the command line."""

import math
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from modeling_helpers import blob_batch, tiny_vit_backbone
from timm.layers import LayerNorm2d
from torchvision.ops import roi_align

from astrodet.config import LazyConfig, instantiate
from astrodet.modeling import build_detector
from astrodet.modeling.poolers import AlignedMultiScaleRoIAlign

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _tiny(**kwargs):
    return build_detector(
        backbone=tiny_vit_backbone(image_size=64),
        num_classes=1,
        image_size=64,
        representation_size=32,
        rpn_batch_size_per_image=64,
        box_batch_size_per_image=32,
        rpn_post_nms_top_n_train=100,
        **kwargs,
    )


def test_each_box_is_pooled_like_roi_align_aligned_on_its_level():
    torch.manual_seed(0)
    size, channels = 256, 4
    strides = {"p2": 4, "p3": 8, "p4": 16, "p5": 32}
    feats = OrderedDict(
        (name, torch.randn(1, channels, size // s, size // s)) for name, s in strides.items()
    )
    feats["p6"] = torch.randn(1, channels, size // 64, size // 64)  # never pooled
    boxes = torch.tensor(
        [[10.3, 12.7, 18.1, 19.9], [40.0, 40.0, 160.0, 160.0], [5.0, 5.0, 250.0, 240.0]]
    )
    pooler = AlignedMultiScaleRoIAlign(["p2", "p3", "p4", "p5"], 7, 0)
    out = pooler(feats, [boxes], [(size, size)])
    assert out.shape == (3, channels, 7, 7)
    levels = []
    for i, box in enumerate(boxes):
        area = (box[2] - box[0]) * (box[3] - box[1])
        level = int(math.floor(4 + math.log2(math.sqrt(area) / 224 + 1e-6)))
        level = min(max(level, 2), 5)
        levels.append(level)
        name = f"p{level}"
        direct = roi_align(
            feats[name],
            torch.cat([torch.zeros(1), box])[None],
            output_size=7,
            spatial_scale=1 / strides[name],
            sampling_ratio=0,
            aligned=True,
        )
        torch.testing.assert_close(out[i : i + 1], direct)
        unaligned = roi_align(
            feats[name],
            torch.cat([torch.zeros(1), box])[None],
            output_size=7,
            spatial_scale=1 / strides[name],
            sampling_ratio=0,
            aligned=False,
        )
        assert not torch.allclose(out[i : i + 1], unaligned, atol=1e-3)
    assert levels == [2, 3, 4]  # the boxes span the levels


def test_detector_pools_aligned_by_default_and_old_pooling_stays():
    model = _tiny()
    pool = model.roi_heads.box_roi_pool
    assert pool.aligned and pool.sampling_ratio == 0
    old = _tiny(roi_aligned=False, roi_sampling_ratio=2).roi_heads.box_roi_pool
    assert not old.aligned and old.sampling_ratio == 2


def test_vitdet_heads_two_rpn_convs_and_layer_norm_box_head():
    torch.manual_seed(0)
    model = _tiny(rpn_head_convs=2, box_head="4conv1fc", box_head_norm="LN")
    convs = [m for m in model.rpn.head.conv.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 2 and all(c.kernel_size == (3, 3) for c in convs)
    head = model.roi_heads.box_head
    assert sum(isinstance(m, LayerNorm2d) for m in head.modules()) == 4
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in head.modules())
    # One more 3x3 conv (with bias) than the default RPN head.
    channels = model.backbone.out_channels
    one = sum(p.numel() for p in _tiny().rpn.parameters())
    two = sum(p.numel() for p in model.rpn.parameters())
    assert two - one == channels * channels * 9 + channels
    images, targets = blob_batch()
    model.train()
    losses = model(images, targets)
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    assert model.rpn.head.conv[1][0].weight.grad.abs().sum() > 0
    gn = _tiny(box_head="4conv1fc").roi_heads.box_head  # the GroupNorm head stays
    assert sum(isinstance(m, torch.nn.GroupNorm) for m in gn.modules()) == 4
    with pytest.raises(ValueError, match="box_head_norm"):
        _tiny(box_head="4conv1fc", box_head_norm="BN")
    with pytest.raises(ValueError, match="rpn_head_convs"):
        _tiny(rpn_head_convs=0)


def test_raw_unit_range_input_from_the_command_line(tmp_path):
    cfg = LazyConfig.load(CONFIGS / "mgcls_dinov2_vitdet.py")
    LazyConfig.apply_overrides(
        cfg,
        [
            "model.backbone.weights=none",
            "model.backbone.trunk_kwargs={embed_dim:32,depth:2,num_heads:2}",
            "model.backbone.window_block_indexes=[0]",
            "model.backbone.out_channels=16",
            "model.image_size=64",
            "model.representation_size=32",
            "model.image_mean=[0,0,0]",
            "model.image_std=[1,1,1]",
        ],
    )
    LazyConfig.save(cfg, tmp_path / "config.yaml")
    cfg = LazyConfig.load(tmp_path / "config.yaml")  # through YAML, as train_net saves it
    model = instantiate(cfg.model)
    assert list(model.transform.image_mean) == [0.0, 0.0, 0.0]
    assert list(model.transform.image_std) == [1.0, 1.0, 1.0]
    image = torch.rand(3, 64, 64)
    torch.testing.assert_close(model.transform.normalize(image), image)
    # The paper's ViTDet settings come with the config.
    assert model.rpn.head.conv[1] is not None
    assert model.backbone.window_size == 14 and model.backbone.use_rel_pos
    LazyConfig.apply_overrides(cfg, ["model.image_std=[1,1]"])
    with pytest.raises(ValueError, match="image_std must be 3 numbers"):
        instantiate(cfg.model)
