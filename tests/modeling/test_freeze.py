import torch
from modeling_helpers import blob_batch, tiny_detector
from torch import nn

from astrodet.modeling import build_detector, build_resnet_fpn_backbone, get_optimizer_params


def _train_steps(model, steps=3):
    opt = torch.optim.AdamW(get_optimizer_params(model=model, base_lr=1e-2, weight_decay=0.1))
    images, targets = blob_batch()
    model.train()
    for _ in range(steps):
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_frozen_vit_trunk_is_bit_identical_and_in_eval_mode():
    torch.manual_seed(0)
    model = tiny_detector(freeze="backbone")
    trunk = model.backbone.trunk
    vit = trunk.model
    for name in ("pos_embed", "cls_token"):
        assert not getattr(vit, name).requires_grad, name
    assert not vit.patch_embed.proj.weight.requires_grad
    assert not any(p.requires_grad for p in trunk.parameters())
    model.train()
    assert model.training and model.backbone.pyramid.training
    assert not any(m.training for m in trunk.modules())
    assert not any(isinstance(m, nn.LayerNorm) and m.training for m in trunk.modules())
    before_trunk = _snapshot(trunk)
    before_pyramid = _snapshot(model.backbone.pyramid)
    _train_steps(model)
    after = trunk.state_dict()
    assert all(torch.equal(before_trunk[k], after[k]) for k in before_trunk)
    changed = [
        k
        for k, v in model.backbone.pyramid.state_dict().items()
        if not torch.equal(before_pyramid[k], v)
    ]
    assert changed  # the pyramid did train


def test_frozen_resnet_trunk_is_bit_identical():
    torch.manual_seed(0)
    backbone = build_resnet_fpn_backbone(trunk="resnet18", weights="none", out_channels=16)
    model = build_detector(backbone=backbone, num_classes=1, image_size=64, representation_size=32)
    before = _snapshot(backbone.trunk)  # includes the frozen BN statistics
    _train_steps(model, steps=2)
    model.train()
    assert not any(m.training for m in backbone.trunk.modules())
    after = backbone.trunk.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_fine_tune_changes_trunk():
    torch.manual_seed(0)
    model = tiny_detector(freeze="none")
    model.train()
    assert model.backbone.trunk.training
    before = _snapshot(model.backbone.trunk)
    _train_steps(model, steps=2)
    after = model.backbone.trunk.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(before["model.pos_embed"], after["model.pos_embed"])
