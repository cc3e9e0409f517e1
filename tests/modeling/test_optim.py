import math

import pytest
from modeling_helpers import tiny_detector

from astrodet.modeling import WarmupSchedule, get_optimizer_params


def _lookup(groups, param):
    for g in groups:
        if any(p is param for p in g["params"]):
            return g
    return None


def test_layer_wise_lr_decay_and_weight_decay():
    model = tiny_detector(freeze="none")
    vit = model.backbone.trunk.model
    n = len(vit.blocks)
    groups = get_optimizer_params(
        model=model, base_lr=1.0, weight_decay=0.1, weight_decay_norm=0.01, lr_decay_rate=0.5
    )
    for i, block in enumerate(vit.blocks):
        g = _lookup(groups, block.mlp.fc1.weight)
        assert g["lr"] == pytest.approx(0.5 ** (n + 1 - (i + 1)))
        assert g["weight_decay"] == 0.1
        assert _lookup(groups, block.mlp.fc1.bias)["weight_decay"] == 0.0
        assert _lookup(groups, block.norm1.weight)["weight_decay"] == 0.01
    for p in (vit.patch_embed.proj.weight, vit.pos_embed, vit.cls_token):
        assert _lookup(groups, p)["lr"] == pytest.approx(0.5 ** (n + 1))
    assert _lookup(groups, vit.pos_embed)["weight_decay"] == 0.0
    assert _lookup(groups, vit.cls_token)["weight_decay"] == 0.0
    assert _lookup(groups, vit.norm.weight)["lr"] == 1.0
    head = model.roi_heads.box_predictor.cls_score.weight
    assert _lookup(groups, head) == {
        "params": _lookup(groups, head)["params"],
        "lr": 1.0,
        "weight_decay": 0.1,
    }
    total = sum(len(g["params"]) for g in groups)
    assert total == len([p for p in model.parameters() if p.requires_grad])


def test_frozen_params_skipped_and_no_decay_without_rate():
    model = tiny_detector(freeze="backbone")
    groups = get_optimizer_params(model=model, base_lr=0.1, weight_decay=0.0, lr_decay_rate=0.7)
    ids = {id(p) for g in groups for p in g["params"]}
    assert not any(id(p) in ids for p in model.backbone.trunk.parameters())
    assert {g["lr"] for g in groups} == {0.1}


def test_warmup_schedule():
    s = WarmupSchedule(warmup_fraction=0.1, warmup_factor=0.0, milestones=(0.5, 0.9), gamma=0.1)
    assert s(0.0) == 0.0
    assert s(0.05) == pytest.approx(0.5)
    assert s(0.2) == 1.0 and s(0.6) == pytest.approx(0.1) and s(0.95) == pytest.approx(0.01)
    c = WarmupSchedule(warmup_fraction=0.0, decay="cosine", min_factor=0.1)
    assert c(0.0) == 1.0 and c(1.0) == pytest.approx(0.1)
    assert c(0.5) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))
    with pytest.raises(ValueError, match="decay"):
        WarmupSchedule(decay="linear")
