"""ViTDet's attention in the ViT backbone: windows, padding, relative positions, the frozen
trunk, the pretraining layout (window_size=0) and strict loading with the new tables."""

import logging

import pytest
import torch
from modeling_helpers import TINY_VIT, blob_batch, tiny_detector, tiny_vit_backbone
from timm.layers import resample_abs_pos_embed

from astrodet.modeling import build_vit_backbone, get_optimizer_params
from astrodet.modeling.backbone.attention import (
    WindowedAttention,
    decomposed_rel_pos_bias,
    rel_pos_lookup,
    window_partition,
    window_unpartition,
)
from astrodet.zoo import CheckpointError, build_trunk
from astrodet.zoo.dinov2 import resample_pos_embed_dinov2

DIM, HEADS = 32, 2


def _timm_attention(seed=0):
    torch.manual_seed(seed)
    trunk = build_trunk("dino", weights="none", embed_dim=DIM, depth=1, num_heads=HEADS)
    attn = trunk.model.blocks[0].attn.eval()
    with torch.no_grad():
        attn.qkv.bias.normal_()  # timm starts biases at zero; make them count
    return attn


def _global(attn, x):
    b, h, w, c = x.shape
    return attn(x.reshape(b, h * w, c)).reshape(b, h, w, -1)


def test_one_window_over_the_whole_grid_is_global_attention():
    attn = _timm_attention()
    x = torch.randn(2, 6, 6, DIM)
    expected = _global(attn, x)
    for window in (0, 6):
        out = WindowedAttention(attn, window_size=window).eval()(x)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # The weights are the timm module's own, not copies.
    wrapped = WindowedAttention(attn, window_size=3)
    assert wrapped.qkv is attn.qkv and wrapped.proj is attn.proj


def test_windows_attend_within_themselves_and_padding_is_cropped():
    attn = _timm_attention()
    x = torch.randn(2, 5, 7, DIM)  # not a multiple of the window
    windows, padded = window_partition(x, 3)
    assert padded == (6, 9) and windows.shape == (2 * 2 * 3, 3, 3, DIM)
    torch.testing.assert_close(window_unpartition(windows, 3, padded, (5, 7)), x)
    out = WindowedAttention(attn, window_size=3).eval()(x)
    assert out.shape == (2, 5, 7, DIM)
    # A full window (no padding inside) sees only its own 3 x 3 tokens.
    for rows, cols in ((slice(0, 3), slice(0, 3)), (slice(0, 3), slice(3, 6))):
        torch.testing.assert_close(
            out[:, rows, cols], _global(attn, x[:, rows, cols]), rtol=1e-5, atol=1e-5
        )
    # An edge window is zero-padded, as in ViTDet (the padding tokens are attended to), and
    # only its real tokens come back.
    edge = out[:, 3:5, 0:3]
    assert torch.isfinite(edge).all()
    assert not torch.allclose(edge, _global(attn, x[:, 3:5, 0:3]), atol=1e-5)


def test_rel_pos_tables_at_zero_change_nothing_and_are_learnable():
    attn = _timm_attention()
    x = torch.randn(1, 4, 5, DIM)
    plain = WindowedAttention(attn, window_size=0).eval()(x)
    rel = WindowedAttention(attn, window_size=0, use_rel_pos=True, rel_pos_size=(4, 5)).eval()
    assert rel.rel_pos_h.shape == (7, DIM // HEADS) and rel.rel_pos_w.shape == (9, DIM // HEADS)
    assert not rel.rel_pos_h.any() and not rel.rel_pos_w.any()
    torch.testing.assert_close(rel(x), plain, rtol=1e-5, atol=1e-5)
    windowed = WindowedAttention(attn, window_size=2, use_rel_pos=True)
    assert windowed.rel_pos_h.shape == (3, DIM // HEADS)
    with torch.no_grad():
        rel.rel_pos_h.normal_()
    assert not torch.allclose(rel(x), plain, atol=1e-4)
    rel(x).sum().backward()
    assert rel.rel_pos_h.grad is not None and rel.rel_pos_w.grad.abs().sum() > 0


def test_decomposed_bias_matches_its_definition():
    torch.manual_seed(0)
    h, w, dim = 3, 4, 5
    q = torch.randn(1, 2, h * w, dim)
    th, tw = torch.randn(2 * h - 1, dim), torch.randn(2 * w - 1, dim)
    bias = decomposed_rel_pos_bias(q, th, tw, (h, w))
    for head in range(2):
        for i in range(h):
            for j in range(w):
                for k in range(h):
                    for m in range(w):
                        qv = q[0, head, i * w + j]
                        want = qv @ th[i - k + h - 1] + qv @ tw[j - m + w - 1]
                        got = bias[0, head, i * w + j, k * w + m]
                        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # A table made for another length is resampled to 2 * size - 1 rows.
    assert rel_pos_lookup(torch.randn(7, dim), 6).shape == (6, 6, dim)


def _vitdet_backbone(**kwargs):
    kw = dict(window_size=2, use_rel_pos=True, window_block_indexes=(0, 1)) | kwargs
    return tiny_vit_backbone(**kw)


def test_vitdet_layout_has_no_class_token_nor_final_norm():
    backbone = _vitdet_backbone(image_size=64)
    vit = backbone.trunk.model
    assert vit.cls_token is None and vit.num_prefix_tokens == 0
    assert vit.pos_embed.shape == (1, 16, DIM)  # the class position dropped
    assert isinstance(vit.norm, torch.nn.Identity)
    windows = [b.attn.window_size for b in vit.blocks]
    assert windows == [2, 2, 0]
    assert backbone.new_parameters == [
        f"trunk.model.blocks.{i}.attn.rel_pos_{a}" for i in range(3) for a in "hw"
    ]
    state = backbone.state_dict()
    assert "trunk.model.blocks.0.attn.qkv.weight" in state  # timm's names kept
    assert "trunk.model.cls_token" not in state and "trunk.model.norm.weight" not in state
    out = backbone(torch.randn(1, 3, 80, 48))  # 5 x 3 tokens: padded to 6 x 4 in windows
    assert out["p4"].shape == (1, 16, 5, 3)
    with pytest.raises(ValueError, match="out of range"):
        _vitdet_backbone(window_block_indexes=(0, 5))
    with pytest.raises(ValueError, match="window_size > 0"):
        tiny_vit_backbone(use_rel_pos=True)


def test_vitdet_default_window_blocks_follow_vitdet_b():
    backbone = build_vit_backbone(
        trunk="dino",
        weights="none",
        image_size=64,
        out_channels=16,
        window_size=2,
        trunk_kwargs=dict(embed_dim=16, depth=12, num_heads=2),
    )
    windows = [i for i, b in enumerate(backbone.trunk.model.blocks) if b.attn.window_size]
    assert windows == [0, 1, 3, 4, 6, 7, 9, 10]


def test_window_size_zero_is_the_pretraining_layout():
    backbone = tiny_vit_backbone(image_size=64).eval()
    vit = backbone.trunk.model
    assert vit.cls_token is not None and not isinstance(vit.norm, torch.nn.Identity)
    seen = {}
    backbone.pyramid.register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        backbone(images)
        tokens = vit.forward_features(images)  # timm's own global forward, final norm
    expected = tokens[:, vit.num_prefix_tokens :].transpose(1, 2).reshape(2, DIM, 4, 6)
    torch.testing.assert_close(seen["x"], expected, rtol=1e-5, atol=1e-5)
    # window_size=0 alone turns a windowed config global (the block list is not used).
    plain = tiny_vit_backbone(window_size=0, window_block_indexes=(0, 1))
    assert plain.window_block_indexes == () and plain.trunk.model.cls_token is not None
    assert not any(isinstance(m, WindowedAttention) for m in plain.modules())


def test_vitdet_blocks_reuse_timm_blocks():
    # One window over the whole grid with zero tables: the blocks compute exactly what timm's
    # blocks compute on the patch tokens without a class token.
    backbone = _vitdet_backbone(image_size=64, window_size=4).eval()
    vit = backbone.trunk.model
    seen = {}
    backbone.pyramid.register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        backbone(images)
        x = vit.patch_embed.proj(images).flatten(2).transpose(1, 2) + vit.pos_embed
        for block in vit.blocks:
            attn = block.attn
            y = block.norm1(x)
            qkv = attn.qkv(y).reshape(1, 16, 3, HEADS, DIM // HEADS).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)
            a = ((q * (DIM // HEADS) ** -0.5) @ k.transpose(-2, -1)).softmax(-1) @ v
            x = x + block.ls1(attn.proj(a.transpose(1, 2).reshape(1, 16, DIM)))
            x = x + block.ls2(block.mlp(block.norm2(x)))
    torch.testing.assert_close(
        seen["x"], x.transpose(1, 2).reshape(1, DIM, 4, 4), rtol=1e-4, atol=1e-4
    )


def test_frozen_vitdet_trunk_is_bit_identical_without_drop_path():
    torch.manual_seed(0)
    backbone = _vitdet_backbone(freeze="backbone", drop_path_rate=0.5)
    model = tiny_detector(backbone)
    trunk = backbone.trunk
    assert not any(p.requires_grad for p in trunk.parameters())
    assert not any("DropPath" in type(m).__name__ for m in trunk.modules())
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    opt = torch.optim.AdamW(get_optimizer_params(model=model, base_lr=1e-2, weight_decay=0.1))
    imgs, targets = blob_batch()
    model.train()
    loss = sum(model(imgs, targets).values())
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in trunk.state_dict().items())
    # The trunk's output (the pyramid's input) is the same in training and evaluation.
    seen = []
    backbone.pyramid.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        model.train()
        backbone(images)
        model.eval()
        backbone(images)
    assert torch.equal(seen[0], seen[1])


def test_fine_tuned_trunk_gets_drop_path_in_training_only():
    backbone = _vitdet_backbone(freeze="none", drop_path_rate=0.5)
    rates = [b.drop_path1.drop_prob for b in backbone.trunk.model.blocks[1:]]
    assert rates == [0.25, 0.5]  # rising linearly from 0 in the first block
    images = torch.randn(4, 3, 64, 64)
    backbone.eval()
    with torch.no_grad():
        assert torch.equal(backbone(images)["p4"], backbone(images)["p4"])
        backbone.train()
        torch.manual_seed(0)
        a = backbone(images)["p4"]
        torch.manual_seed(1)
        b = backbone(images)["p4"]
    assert not torch.equal(a, b)


def _write_dino_checkpoint(path, **extra):
    torch.manual_seed(0)
    trunk = build_trunk("dino", weights="none", **TINY_VIT)
    state = dict(trunk.model.state_dict()) | extra
    torch.save(state, path)
    return state


def test_pretrained_checkpoint_loads_strictly_with_new_tables_named(tmp_path, caplog):
    path = tmp_path / "dino.pth"
    state = _write_dino_checkpoint(path)
    with caplog.at_level(logging.INFO):
        backbone = build_vit_backbone(
            trunk="dino",
            weights=str(path),
            image_size=64,
            out_channels=16,
            window_size=2,
            window_block_indexes=(0, 1),
            use_rel_pos=True,
            trunk_kwargs=TINY_VIT,
        )
    text = caplog.text
    assert "relative position tables start at zero" in text
    for name in backbone.new_parameters:
        assert name in text
    assert len(backbone.new_parameters) == 6
    vit = backbone.trunk.model
    torch.testing.assert_close(vit.blocks[2].attn.qkv.weight, state["blocks.2.attn.qkv.weight"])
    # Any other key the trunk lacks is still an error.
    bad = tmp_path / "bad.pth"
    _write_dino_checkpoint(bad, **{"blocks.0.attn.extra": torch.zeros(3)})
    with pytest.raises(CheckpointError, match="blocks.0.attn.extra"):
        build_vit_backbone(
            trunk="dino",
            weights=str(bad),
            image_size=64,
            out_channels=16,
            window_size=2,
            use_rel_pos=True,
            trunk_kwargs=TINY_VIT,
        )


def test_detector_checkpoint_with_tables_round_trips_strictly(tmp_path):
    from astrodet.engine.checkpoint import Checkpointer

    torch.manual_seed(0)
    model = tiny_detector(_vitdet_backbone())
    with torch.no_grad():
        model.backbone.trunk.model.blocks[0].attn.rel_pos_h.normal_()
    Checkpointer(model, tmp_path).save("model_final", iteration=1)
    torch.manual_seed(1)
    fresh = tiny_detector(_vitdet_backbone())
    Checkpointer(fresh).load(tmp_path / "model_final.pth", checkpointables=False)
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k
    # A detector of the pretraining layout (no tables) does not silently load into it.
    old = tiny_detector(tiny_vit_backbone())
    Checkpointer(old, tmp_path / "old").save("model_final", iteration=1)
    with pytest.raises(RuntimeError, match="does not match the model"):
        Checkpointer(fresh).load(tmp_path / "old" / "model_final.pth", checkpointables=False)


@pytest.mark.parametrize("window_size", [0, 14])
def test_dinov2_position_embedding_is_resampled_once(tmp_path, window_size):
    # A DINOv2-layout checkpoint at 518 px (37 x 37 grid, plus its unused mask_token).
    torch.manual_seed(0)
    kw = dict(embed_dim=DIM, depth=1, num_heads=HEADS)
    trunk = build_trunk("dinov2", weights="none", img_size=518, **kw)
    state = dict(trunk.model.state_dict())
    with torch.no_grad():
        state["pos_embed"] = torch.randn_like(state["pos_embed"])
    state["mask_token"] = torch.zeros(1, DIM)
    assert state["pos_embed"].shape == (1, 1 + 37 * 37, DIM)
    path = tmp_path / "dinov2_vitb14_pretrain.pth"
    torch.save(state, path)
    backbone = build_vit_backbone(
        trunk="dinov2",
        weights=str(path),
        image_size=512,
        out_channels=16,
        window_size=window_size,
        trunk_kwargs=dict(kw, img_size=224),  # replaced by the 32 x 32 grid at patch 14
    )
    # The zoo resamples DINOv2's grid as DINOv2 does; once, straight to 32 x 32.
    direct = resample_pos_embed_dinov2(
        state["pos_embed"], new_size=[32, 32], old_size=[37, 37], num_prefix_tokens=1
    )
    if window_size:
        direct = direct[:, 1:]
    pos = backbone.trunk.model.pos_embed
    torch.testing.assert_close(pos, direct)
    # Not the two resamplings of a trunk built at 224 px (37 -> 16, then 16 -> 32).
    twice = resample_abs_pos_embed(
        resample_pos_embed_dinov2(
            state["pos_embed"], new_size=[16, 16], old_size=[37, 37], num_prefix_tokens=1
        ),
        new_size=[32, 32],
        old_size=[16, 16],
        num_prefix_tokens=1,
    )
    assert not torch.allclose(pos, twice[:, -pos.shape[1] :], atol=1e-2)
    info = backbone.trunk_info
    assert info.patch_size == 16 and info.input_size == 512
    assert backbone.trunk.info == info
    assert backbone.trunk.model.patch_embed.proj.kernel_size == (16, 16)
