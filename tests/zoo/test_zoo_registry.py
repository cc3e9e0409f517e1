"""Names, model information and the command line."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torchvision

from astrodet.zoo import ModelInfo, build_trunk, get_model_info, list_models

NAMES = ["mae", "dino", "dinov2", "msn", "resnet50", "resnet18"]


def test_list_models():
    assert list_models() == NAMES


@pytest.mark.parametrize(
    "name, family, patch, dim, feature",
    [
        ("mae", "vit", 16, 768, "cls"),
        ("dino", "vit", 16, 768, "cls"),
        ("dinov2", "vit", 14, 768, "cls"),
        ("msn", "vit", 16, 768, "cls"),
        ("resnet50", "resnet", None, 2048, "avgpool"),
        ("resnet18", "resnet", None, 512, "avgpool"),
    ],
)
def test_model_info(name, family, patch, dim, feature):
    info = get_model_info(name)
    assert isinstance(info, ModelInfo)
    assert (info.name, info.family, info.patch_size, info.feature_dim, info.feature) == (
        name,
        family,
        patch,
        dim,
        feature,
    )
    assert info.input_size == 224
    assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)
    assert info.url.startswith("https://") and info.url.endswith(info.checkpoint)


def test_official_urls():
    assert get_model_info("msn").url == "https://dl.fbaipublicfiles.com/msn/vitb16_600ep.pth.tar"
    assert get_model_info("msn").hub == "hf:facebook/vit-msn-base"
    assert get_model_info("mae").hub == "timm:vit_base_patch16_224.mae"
    assert get_model_info("dinov2").checkpoint == "dinov2_vitb14_pretrain.pth"
    weights = torchvision.models
    assert get_model_info("resnet50").url == weights.ResNet50_Weights.IMAGENET1K_V2.url
    assert get_model_info("resnet18").url == weights.ResNet18_Weights.IMAGENET1K_V1.url


def test_full_size_architectures_match_info():
    # Built on the meta device: the real ViT-B / ResNet shapes without allocating them.
    import torch

    with torch.device("meta"):
        for name in NAMES:
            trunk = build_trunk(name, weights="none")
            assert trunk.feature_dim == get_model_info(name).feature_dim
            if trunk.info.family == "vit":
                assert trunk.model.patch_embed.grid_size == (224 // trunk.info.patch_size,) * 2


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as excinfo:
        get_model_info("dinov3")
    message = str(excinfo.value)
    assert "'dinov3'" in message
    for name in NAMES:
        assert name in message
    assert "timm:" in message
    with pytest.raises(ValueError, match="dinov3"):
        build_trunk("dinov3", weights="none")


def test_timm_passthrough():
    info = get_model_info("timm:vit_tiny_patch16_224")
    assert (info.family, info.patch_size, info.feature_dim, info.feature) == ("vit", 16, 192, "cls")
    assert info.hub == "timm:vit_tiny_patch16_224"
    trunk = build_trunk("timm:vit_tiny_patch16_224", weights="none", depth=1)
    import torch

    assert trunk.features(torch.rand(2, 1, 32, 48)).shape == (2, 192)
    with pytest.raises(ValueError, match="unknown timm model 'no_such_net'"):
        get_model_info("timm:no_such_net")


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "astrodet.zoo", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_list():
    result = _run("list")
    assert result.returncode == 0, result.stderr
    for name in NAMES:
        assert name in result.stdout
    assert "vit_base_patch14_dinov2" in result.stdout and "avgpool" in result.stdout


def test_cli_help():
    result = _run("--help")
    assert result.returncode == 0
    assert "mae, dino, dinov2, msn, resnet50, resnet18" in result.stdout


def test_cli_info(capsys):
    from astrodet.zoo.__main__ import main

    assert main(["info", "msn"]) == 0
    assert "vitb16_600ep.pth.tar" in capsys.readouterr().out
    assert main(["info", "nope"]) == 2
    assert "valid names" in capsys.readouterr().err
