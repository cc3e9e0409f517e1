"""Weights resolution and the clear errors: offline, wrong keys, wrong architecture, bad files."""

from __future__ import annotations

import pytest
import timm
import torch
from zoo_formats import (
    TINY_KW,
    dino_official,
    dinov2_official,
    msn_official,
    rand,
    resnet_official,
    tiny_trunk,
)

from astrodet.zoo import CheckpointError, WeightsNotFoundError, build_trunk, get_model_info
from astrodet.zoo import weights as zoo_weights


def _offline(*args, **kwargs):
    raise OSError("Network is unreachable")


@pytest.fixture
def no_hub(monkeypatch):
    """Every hub download fails as it does without network."""
    for fn in ("download_timm", "download_torchvision", "download_hf"):
        monkeypatch.setattr(zoo_weights, fn, _offline)


@pytest.fixture
def empty_weights_dir(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv("ASTRODET_WEIGHTS", str(folder))
    return folder


# --- resolution ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mae", "dino", "dinov2", "msn", "resnet50", "resnet18"])
def test_offline_without_checkpoint_is_one_clear_error(name, no_hub, empty_weights_dir):
    info = get_model_info(name)
    with pytest.raises(WeightsNotFoundError) as excinfo:
        build_trunk(name, **TINY_KW[name])
    message = str(excinfo.value)
    assert info.checkpoint in message
    assert info.url in message
    assert "ASTRODET_WEIGHTS" in message and str(empty_weights_dir) in message
    assert info.hub in message and "Network is unreachable" in message
    assert "weights='none'" in message


def test_offline_message_when_env_unset(no_hub, monkeypatch):
    monkeypatch.delenv("ASTRODET_WEIGHTS", raising=False)
    with pytest.raises(WeightsNotFoundError, match="ASTRODET_WEIGHTS is not set"):
        build_trunk("dino", weights="hub", **TINY_KW["dino"])


def test_offline_hf_download_is_reported(monkeypatch, empty_weights_dir):
    import huggingface_hub

    def fail(repo_id, filename, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError(f"{filename} not in cache")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fail)
    with pytest.raises(WeightsNotFoundError, match="vitb16_600ep.pth.tar") as excinfo:
        build_trunk("msn", **TINY_KW["msn"])
    assert "not in the local Hugging Face cache and HF_HUB_OFFLINE is set" in str(excinfo.value)
    assert "hf:facebook/vit-msn-base" in str(excinfo.value)


def test_offline_timm_download_is_reported(monkeypatch, empty_weights_dir):
    create = timm.create_model

    def offline_create(name, pretrained=False, **kwargs):
        if pretrained:
            raise RuntimeError("offline: cannot reach huggingface.co")
        return create(name, pretrained=pretrained, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline_create)
    with pytest.raises(WeightsNotFoundError, match="mae_pretrain_vit_base.pth") as excinfo:
        build_trunk("mae", **TINY_KW["mae"])
    # offline in tests: the hub file is looked up in the cache only, and is not there
    assert "not in the local Hugging Face cache and HF_HUB_OFFLINE is set" in str(excinfo.value)
    # with the file cached, timm's own failure is what is reported
    monkeypatch.setattr(zoo_weights, "hf_weights_file", lambda *a, **k: "/cache/model.safetensors")
    with pytest.raises(WeightsNotFoundError, match="mae_pretrain_vit_base.pth") as excinfo:
        build_trunk("mae", **TINY_KW["mae"])
    assert "cannot reach huggingface.co" in str(excinfo.value)


def test_offline_torchvision_uncached_fails_without_network(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        raise AssertionError("the network must not be tried offline")

    monkeypatch.setattr(zoo_weights, "_check_reachable", no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(zoo_weights.HubUnavailableError, match="offline mode"):
        zoo_weights.download_torchvision("ResNet18_Weights.IMAGENET1K_V1")


def test_auto_prefers_file_in_weights_dir(no_hub, empty_weights_dir):
    src = tiny_trunk("dino")
    path = empty_weights_dir / "dino_vitbase16_pretrain.pth"
    torch.save(dino_official(src.model.state_dict()), path)
    trunk = build_trunk("dino", **TINY_KW["dino"])
    assert trunk.weights_source == str(path)
    x = rand(2, 3, 32, 32)
    assert torch.equal(trunk.features(x), src.features(x))


def test_hub_weights_go_through_the_converter(monkeypatch, empty_weights_dir):
    # timm's DINOv2 hub weights come at 518 px; the 4x4 grid stands in for 37x37.
    src = tiny_trunk("dinov2", img_size=56)
    calls = []

    def fake_timm(model_name):
        calls.append(model_name)
        return src.model.state_dict()

    monkeypatch.setattr(zoo_weights, "download_timm", fake_timm)
    trunk = build_trunk("dinov2", **TINY_KW["dinov2"])
    assert calls == ["vit_base_patch14_dinov2.lvd142m"]
    assert trunk.weights_source == "hub:timm:vit_base_patch14_dinov2.lvd142m"
    assert trunk.model.pos_embed.shape == (1, 5, 32)


def test_resnet_hub_drops_classifier(monkeypatch):
    src = tiny_trunk("resnet18")
    monkeypatch.setattr(
        zoo_weights,
        "download_torchvision",
        lambda name: resnet_official(src.model.state_dict(), fc_in=512),
    )
    trunk = build_trunk("resnet18", weights="hub")
    assert trunk.weights_source == "hub:torchvision:ResNet18_Weights.IMAGENET1K_V1"
    x = rand(1, 3, 32, 32)
    assert torch.equal(trunk.features(x), src.features(x))


def test_weights_none_is_random_and_named(no_hub):
    trunk = build_trunk("dino", weights="none", **TINY_KW["dino"])
    assert trunk.weights_source == "none"


def test_missing_explicit_file(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(WeightsNotFoundError, match="nope.pth.*does not exist"):
        build_trunk("dino", weights=path, **TINY_KW["dino"])


# --- strict loading -----------------------------------------------------------------------


def test_unexpected_key_is_listed(tmp_path):
    state = dino_official(tiny_trunk("dino").model.state_dict())
    state["blocks.0.attn.extra_scale"] = torch.ones(1)
    path = tmp_path / "extra.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as excinfo:
        build_trunk("dino", weights=path, **TINY_KW["dino"])
    message = str(excinfo.value)
    assert "extra.pth" in message
    assert "unexpected keys (1): blocks.0.attn.extra_scale" in message
    assert "missing" not in message


def test_missing_and_renamed_keys_are_listed(tmp_path):
    state = dino_official(tiny_trunk("dino").model.state_dict())
    state["final_norm.weight"] = state.pop("norm.weight")
    path = tmp_path / "renamed.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as excinfo:
        build_trunk("dino", weights=path, **TINY_KW["dino"])
    message = str(excinfo.value)
    assert "missing keys (1): norm.weight" in message
    assert "unexpected keys (1): final_norm.weight" in message


def test_wrong_architecture_width(tmp_path):
    state = dino_official(tiny_trunk("dino", embed_dim=48, num_heads=2).model.state_dict())
    path = tmp_path / "wide.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as excinfo:
        build_trunk("dino", weights=path, **TINY_KW["dino"])
    message = str(excinfo.value)
    assert "wide.pth" in message
    assert "shape mismatches" in message and "cls_token (checkpoint (1, 1, 48)" in message
    assert "another architecture" in message


def test_wrong_architecture_family(tmp_path):
    src = tiny_trunk("resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save(resnet_official(src.model.state_dict(), fc_in=512), path)
    with pytest.raises(CheckpointError, match=r"resnet18\.pth.*(missing|shape mismatches)"):
        build_trunk("resnet50", weights=path, **TINY_KW["resnet50"])
    with pytest.raises(CheckpointError, match="resnet18.pth"):
        build_trunk("dino", weights=path, **TINY_KW["dino"])


def test_dinov2_patch_size_mismatch(tmp_path):
    # A /16 checkpoint is no DINOv2 /14 checkpoint: refused, not resampled silently.
    state = dinov2_official(tiny_trunk("dino").model.state_dict())
    path = tmp_path / "p16.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="patch_embed.proj.weight"):
        build_trunk("dinov2", weights=path, **TINY_KW["dinov2"])


def test_msn_online_encoder_only_is_refused(tmp_path):
    state = msn_official(tiny_trunk("msn").model.state_dict(), tiny_trunk("msn").model.state_dict())
    del state["target_encoder"]
    path = tmp_path / "vitb16_600ep.pth.tar"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="no 'target_encoder'"):
        build_trunk("msn", weights=path, **TINY_KW["msn"])


def test_mae_without_model_key(tmp_path):
    path = tmp_path / "mae.pth"
    torch.save({"epoch": 3, "optimizer": {}}, path)
    with pytest.raises(CheckpointError, match=r"mae\.pth.*no state dict under 'model'"):
        build_trunk("mae", weights=path, **TINY_KW["mae"])


# --- unreadable files ---------------------------------------------------------------------


def test_truncated_file(tmp_path):
    path = tmp_path / "dino_vitbase16_pretrain.pth"
    torch.save(dino_official(tiny_trunk("dino").model.state_dict()), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as excinfo:
        build_trunk("dino", weights=path, **TINY_KW["dino"])
    message = str(excinfo.value)
    assert "dino_vitbase16_pretrain.pth" in message and "truncated or corrupt" in message


def test_truncated_safetensors(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    path = tmp_path / "model.safetensors"
    state = {k: v.contiguous() for k, v in tiny_trunk("msn").model.state_dict().items()}
    safetensors.save_file(state, str(path))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="model.safetensors.*truncated or corrupt"):
        build_trunk("msn", weights=path, **TINY_KW["msn"])


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pth.*is empty"):
        build_trunk("resnet18", weights=path)


class _Arbitrary:
    pass


def test_pickled_objects_are_not_executed(tmp_path):
    path = tmp_path / "objects.pth"
    torch.save({"model": _Arbitrary()}, path)
    with pytest.raises(CheckpointError, match="objects.pth.*pickled objects other than tensors"):
        build_trunk("mae", weights=path, **TINY_KW["mae"])


def test_unreachable_hf_hub_uses_cache_only(monkeypatch):
    # Without this, huggingface_hub retries an unreachable hub for about a minute.
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    def unreachable(host, port=443, timeout=5.0):
        raise zoo_weights.HubUnavailableError(f"cannot reach {host}")

    seen = []

    def cache_only_download(repo_id, filename, **kwargs):
        seen.append((repo_id, filename, kwargs["local_files_only"], kwargs["revision"]))
        raise huggingface_hub.errors.LocalEntryNotFoundError("not in the local cache")

    monkeypatch.setattr(zoo_weights, "_check_reachable", unreachable)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", cache_only_download)
    with pytest.raises(
        zoo_weights.HubUnavailableError,
        match="model.safetensors, pytorch_model.bin: not in the local Hugging Face cache and "
        "cannot reach huggingface.co",
    ):
        zoo_weights.download_hf("facebook/vit-msn-base")
    assert seen == [
        ("facebook/vit-msn-base", "model.safetensors", True, None),
        ("facebook/vit-msn-base", "pytorch_model.bin", True, None),
    ]
    assert constants.HF_HUB_OFFLINE is False  # no global switch flipped
    seen.clear()
    monkeypatch.setattr(zoo_weights, "_check_reachable", lambda *a, **k: None)
    with pytest.raises(zoo_weights.HubUnavailableError, match="LocalEntryNotFoundError"):
        zoo_weights.download_hf("facebook/vit-msn-base@v2")
    assert seen[0] == ("facebook/vit-msn-base", "model.safetensors", False, "v2")


def test_timm_hub_weights_come_from_the_hf_file(monkeypatch, tmp_path):
    import huggingface_hub
    import safetensors.torch

    src = timm.create_model("vit_tiny_patch16_224", num_classes=1000)
    path = tmp_path / "model.safetensors"
    safetensors.torch.save_file(src.state_dict(), str(path))
    calls = []

    def cached_download(repo_id, filename, **kwargs):
        calls.append((repo_id, filename, kwargs["local_files_only"]))
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", cached_download)
    sd = zoo_weights.download_timm("vit_tiny_patch16_224.augreg_in21k_ft_in1k")
    # offline in tests: the cache is asked, never the network
    assert calls == [("timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k", "model.safetensors", True)]
    assert "head.weight" not in sd
    assert torch.equal(sd["blocks.0.attn.qkv.weight"], src.state_dict()["blocks.0.attn.qkv.weight"])
