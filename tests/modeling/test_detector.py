import pytest
import torch
from modeling_helpers import blob_batch, tiny_detector, tiny_vit_backbone

from astrodet.modeling import build_detector, count_parameters, get_optimizer_params

LOSSES = {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}


def test_train_mode_loss_dict_and_eval_outputs():
    torch.manual_seed(0)
    model = tiny_detector()
    images, targets = blob_batch()
    model.train()
    losses = model(images, targets)
    assert set(losses) == LOSSES
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        # 1-channel and non-square inputs are accepted; boxes come back in input pixels
        out = model([images[0][:1], torch.rand(3, 48, 80)])
    assert set(out[0]) == {"boxes", "scores", "labels"}
    if len(out[1]["boxes"]):
        assert out[1]["boxes"][:, 2].max() <= 80 and out[1]["boxes"][:, 3].max() <= 48


def test_loss_falls():
    torch.manual_seed(0)
    model = tiny_detector()
    images, targets = blob_batch(n=2, seed=1)
    params = get_optimizer_params(model=model, base_lr=2e-3, weight_decay=1e-4)
    opt = torch.optim.AdamW(params)
    model.train()
    history = []
    for _ in range(20):
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert sum(history[-3:]) / 3 < 0.7 * sum(history[:3]) / 3, history


def test_bad_inputs():
    model = tiny_detector().eval()
    with pytest.raises(ValueError, match="1 or 3 channels"):
        model([torch.rand(5, 64, 64)])
    with pytest.raises(ValueError, match="anchor_sizes has 3 entries"):
        build_detector(
            backbone=tiny_vit_backbone(),
            num_classes=1,
            image_size=64,
            anchor_sizes=((8,), (16,), (32,)),
        )
    with pytest.raises(ValueError, match="box_head"):
        build_detector(backbone=tiny_vit_backbone(), num_classes=1, image_size=64, box_head="x")


def test_normalisation_from_trunk_and_sizes():
    model = tiny_detector(image_size=96)
    assert model.transform.min_size == (96,) and model.transform.max_size == 96
    assert tuple(model.transform.image_mean) == model.backbone.trunk_info.mean
    assert model.roi_heads.box_predictor.cls_score.out_features == 2  # background + 1


def test_4conv1fc_head_runs():
    model = build_detector(
        backbone=tiny_vit_backbone(),
        num_classes=2,
        image_size=64,
        box_head="4conv1fc",
        representation_size=32,
    )
    images, targets = blob_batch()
    assert set(model(images, targets)) == LOSSES


def test_count_parameters_by_part():
    model = tiny_detector(freeze="backbone")
    counts = count_parameters(model, by_part=True)
    parts = counts.pop("parts")
    assert counts["trainable"] + counts["frozen"] == sum(p.numel() for p in model.parameters())
    assert parts["trunk"]["trainable"] == 0
    assert parts["trunk"]["frozen"] == counts["frozen"] > 0
    assert sum(v["trainable"] for v in parts.values()) == counts["trainable"]
    assert set(count_parameters(model)) == {"trainable", "frozen"}
