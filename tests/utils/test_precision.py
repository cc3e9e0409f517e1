"""Precision names: how auto and train.amp resolve on a CPU and on a (fake) GPU."""

from __future__ import annotations

import pytest
import torch

from astrodet.utils import precision as prec


@pytest.fixture
def fake_cuda(monkeypatch):
    """A CUDA device whose bfloat16 support the test sets."""

    def make(bf16: bool):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)

    return make


def test_cpu_defaults():
    assert prec.resolve_precision("auto", device="cpu") == "fp32"
    assert prec.resolve_precision(None, device="cpu") == "fp32"
    # train.amp=True on a CPU keeps its old meaning: bfloat16 autocast
    assert prec.resolve_precision(None, device="cpu", amp=True) == "bf16"
    # a given precision overrides amp
    assert prec.resolve_precision("fp32", device="cpu", amp=True) == "fp32"
    assert prec.resolve_precision("BF16", device="cpu") == "bf16"


def test_bf16_capable_gpu(fake_cuda):
    fake_cuda(True)
    assert prec.bf16_supported("cuda")
    assert prec.resolve_precision("auto", device="cuda") == "bf16"
    assert prec.resolve_precision(None, device="cuda:0", amp=True) == "bf16"
    assert prec.grad_scaler("bf16", "cuda") is None


def test_gpu_without_bf16_takes_fp16(fake_cuda):
    fake_cuda(False)
    assert prec.resolve_precision("auto", device="cuda") == "fp32"
    assert prec.resolve_precision(None, device="cuda", amp=True) == "fp16"
    with pytest.raises(ValueError, match="does not compute bfloat16.*'fp16'"):
        prec.resolve_precision("bf16", device="cuda")


def test_no_cuda_at_all_is_not_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not prec.bf16_supported("cuda")


def test_unknown_name_is_named():
    with pytest.raises(ValueError, match="'half' is not one of auto, fp32, bf16, fp16"):
        prec.resolve_precision("half", device="cpu")
    with pytest.raises(ValueError, match="not resolved"):
        prec.autocast("auto", "cpu")


def test_autocast_and_scaler():
    x, w = torch.randn(4, 8), torch.randn(8, 2)
    with prec.autocast("bf16", "cpu"):
        assert (x @ w).dtype == torch.bfloat16
    with prec.autocast("fp32", "cpu"):
        assert (x @ w).dtype == torch.float32
    assert isinstance(prec.grad_scaler("fp16", "cpu"), torch.amp.GradScaler)
    assert prec.grad_scaler("fp32", "cpu") is None
