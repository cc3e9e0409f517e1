import math
from pathlib import Path

import pytest
from fvcore.common.param_scheduler import CosineParamScheduler
from modeling_helpers import tiny_detector

from astrodet.config import LazyConfig, instantiate
from astrodet.modeling import WarmupSchedule, get_optimizer_params
from astrodet.modeling.optim import WarmupParamScheduler

REPO = Path(__file__).resolve().parents[2]


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


def test_warmup_schedule_alias_still_works():
    with pytest.warns(DeprecationWarning, match="WarmupParamScheduler"):
        s = WarmupSchedule(warmup_fraction=0.1, warmup_factor=0.0, milestones=(0.5, 0.9), gamma=0.1)
    assert s(0.0) == 0.0
    assert s(0.05) == pytest.approx(0.5)
    assert s(0.2) == 1.0 and s(0.6) == pytest.approx(0.1) and s(0.95) == pytest.approx(0.01)
    with pytest.warns(DeprecationWarning):
        c = WarmupSchedule(warmup_fraction=0.0, decay="cosine", min_factor=0.1)
    assert c(0.0) == 1.0 and c(1.0) == pytest.approx(0.1)
    assert c(0.5) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))
    with pytest.raises(ValueError, match="decay"), pytest.warns(DeprecationWarning):
        WarmupSchedule(decay="linear")


def test_warmup_param_scheduler_as_detectron2():
    # linear from factor x s(0) to s(warmup_length), then the wrapped scheduler unchanged
    cosine = CosineParamScheduler(1.0, 0.0)
    s = WarmupParamScheduler(cosine, warmup_factor=0.01, warmup_length=0.1)
    end = 0.5 * (1 + math.cos(math.pi * 0.1))
    assert s(0.0) == pytest.approx(0.01)
    assert s(0.05) == pytest.approx(0.01 + (end - 0.01) * 0.5)
    for where in (0.1, 0.3, 0.99):
        assert s(where) == pytest.approx(0.5 * (1 + math.cos(math.pi * where)))
    held = WarmupParamScheduler(cosine, 0.01, 0.1, warmup_method="constant")
    assert held(0.09) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="warmup_method"):
        WarmupParamScheduler(cosine, 0.01, 0.1, warmup_method="exp")
    with pytest.raises(ValueError, match="warmup_length"):
        WarmupParamScheduler(cosine, 0.01, 1.5)


def _old_step(where):
    """The step schedule the configs had before (warmup 1% from 0.001, x0.1 at 89% and
    96%), written out."""
    value = 0.1 ** sum(where >= m for m in (0.89, 0.96))
    if where < 0.01:
        alpha = where / 0.01
        value *= 0.001 * (1 - alpha) + alpha
    return value


def _schedules():
    cfg = LazyConfig.load(str(REPO / "configs" / "common" / "schedule.py"))
    return {k: instantiate(cfg[k]) for k in cfg}


def test_config_step_schedule_unchanged():
    s = _schedules()["lr_multiplier"]
    for where in (0.0, 0.004, 0.0099, 0.01, 0.5, 0.8899, 0.89, 0.9, 0.9599, 0.96, 0.999, 1.0):
        assert s(where) == pytest.approx(_old_step(where), rel=1e-9), where


def test_config_cosine_and_constant_schedules():
    schedules = _schedules()
    s = schedules["cosine_lr_multiplier"]
    assert s(0.0) == pytest.approx(0.001)
    for where in (0.05, 0.3, 0.5, 0.9, 1.0):  # after warmup: the cosine as before
        assert s(where) == pytest.approx(0.5 * (1 + math.cos(math.pi * where)), abs=1e-12)
    # during warmup: straight line to the cosine's value at the end of warmup
    assert s(0.025) == pytest.approx((0.001 + 0.5 * (1 + math.cos(math.pi * 0.05))) / 2)
    constant = schedules["constant_lr_multiplier"]
    # the trainer reaches where = 1 after its last iteration
    assert [constant(w) for w in (0.0, 0.5, 0.999, 1.0)] == [1.0] * 4


# The README's "Differences from the paper": the paper's optimizer and inputs by overrides.
PAPER_OVERRIDES = [
    "optimizer={_target_:torch.optim.SGD,lr:1e-3,momentum:0.9,nesterov:true}",
    "lr_multiplier=None",
    "dataloader.train.total_batch_size=8",
    "+model.image_mean=[0,0,0]",
    "+model.image_std=[1,1,1]",
]


def test_paper_recipe_by_overrides():
    import torch

    from astrodet.engine.defaults import _build_optimizer, _build_scheduler

    cfg = LazyConfig.load(str(REPO / "configs" / "mgcls_dino_vitdet.py"))
    LazyConfig.apply_overrides(cfg, PAPER_OVERRIDES)
    model = tiny_detector(freeze="none")
    optimizer = _build_optimizer(cfg, model)
    assert type(optimizer) is torch.optim.SGD and len(optimizer.param_groups) == 1
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (
        1e-3,
        0.9,
        True,
        0,
    )
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for p in group["params"]) == trainable
    scheduler = _build_scheduler(cfg, optimizer, max_iter=10)
    for _ in range(10):  # constant lr to the end, where = 1 included
        optimizer.step()
        scheduler.step()
        assert optimizer.param_groups[0]["lr"] == 1e-3
    assert list(cfg.model.image_mean) == [0, 0, 0] and list(cfg.model.image_std) == [1, 1, 1]


def test_sgd_nesterov_piece():
    cfg = LazyConfig.load(str(REPO / "configs" / "common" / "optim.py"))
    model = tiny_detector(freeze="backbone")
    cfg.SGDNesterov.params.model = model
    optimizer = instantiate(cfg.SGDNesterov)
    assert {(g["lr"], g["weight_decay"], g["nesterov"]) for g in optimizer.param_groups} == {
        (1e-3, 0.0, True)
    }
    assert not any(
        p is q
        for g in optimizer.param_groups
        for p in g["params"]
        for q in model.backbone.trunk.parameters()
    )
