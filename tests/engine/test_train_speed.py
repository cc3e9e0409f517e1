"""What makes the loop GPU-friendly, checked on a CPU: precision (bf16 autocast, fp16 with
a GradScaler), losses brought to the host only at log time, per-GPU batch scaling, the
compile option and the loader's pinned-memory options."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _tiny import tiny_detector
from omegaconf import OmegaConf

from astrodet.data.detection import build_detection_train_loader
from astrodet.engine import HookBase, SimpleTrainer, defaults
from astrodet.utils import seed_everything


class LinearLosses(torch.nn.Module):
    """A model in the detector's shape: (images, targets) -> dict of losses; ``nan_at``
    makes the loss of that call (1-based) NaN."""

    def __init__(self, nan_at: int | None = None):
        super().__init__()
        self.lin = torch.nn.Linear(4, 1)
        self.calls, self.nan_at = 0, nan_at
        self.dtypes: list[torch.dtype] = []

    def forward(self, images, targets):
        self.calls += 1
        out = self.lin(torch.stack(images).flatten(1)[:, :4])
        self.dtypes.append(out.dtype)
        loss = out.float().pow(2).mean()
        if self.calls == self.nan_at:
            loss = loss * float("nan")
        return {"loss_a": loss, "loss_b": 0.5 * loss}


def _batches():
    g = torch.Generator().manual_seed(0)
    while True:
        yield [torch.rand(1, 2, 2, generator=g)], [{}], [{}]


class HistoryLength(HookBase):
    """Records how many total_loss values the storage holds after each step."""

    def __init__(self):
        self.lengths: list[int] = []

    def after_step(self):
        self.lengths.append(len(self.trainer.storage.history("total_loss")))


def _trainer(model=None, **kw):
    model = model or LinearLosses()
    return SimpleTrainer(model, _batches(), torch.optim.SGD(model.parameters(), lr=0.1), **kw)


def test_losses_reach_the_host_only_at_log_time():
    trainer = _trainer(log_period=3, sync_periods=(5,))
    flushes = []
    real = trainer.flush_metrics
    trainer.flush_metrics = lambda: (flushes.append(trainer.iter + 1), real())[1]
    hook = HistoryLength()
    trainer.register_hooks([hook])
    trainer.train(0, 7)
    # log_period 3, a checkpoint/eval period 5, and the last iteration
    assert flushes == [3, 5, 6, 7]
    assert hook.lengths == [0, 0, 3, 3, 5, 6, 7]
    history = trainer.storage.history("total_loss")
    assert [it for _, it in history] == [1, 2, 3, 4, 5, 6, 7]  # each under its own iteration
    a = dict((it, v) for v, it in trainer.storage.history("loss_a"))
    for v, it in history:
        assert v == pytest.approx(1.5 * a[it])
    assert trainer.storage.iter == 7
    assert [it for _, it in trainer.storage.history("data_time")] == list(range(1, 8))


def test_nan_loss_is_caught_at_log_time_with_its_iteration():
    trainer = _trainer(LinearLosses(nan_at=2), log_period=4)
    with pytest.raises(FloatingPointError, match="at iteration 2: loss_a=nan"):
        trainer.train(0, 6)
    assert trainer.iter == 3  # found when the losses of iterations 1-4 came to the host


def test_fp16_uses_a_grad_scaler_and_checkpoints_it():
    model = LinearLosses()
    trainer = _trainer(model, precision="fp16")
    assert isinstance(trainer.grad_scaler, torch.amp.GradScaler)
    scaled = []
    real_scale = trainer.grad_scaler.scale
    trainer.grad_scaler.scale = lambda x: (scaled.append(1), real_scale(x))[1]
    trainer.grad_clip = 1.0
    trainer.train(0, 3)
    assert len(scaled) == 3 and set(model.dtypes) == {torch.float16}
    assert "grad_scaler" in trainer.state_dict()
    assert all(math.isfinite(v) for v, _ in trainer.storage.history("total_loss"))
    # bf16 and amp on a CPU: autocast without loss scaling
    for kw in ({"precision": "bf16"}, {"amp": True}):
        t = _trainer(**kw)
        assert t.precision == "bf16" and t.grad_scaler is None
        assert "grad_scaler" not in t.state_dict()


def test_tiny_detector_trains_in_bf16(tiny_sky):
    seed_everything(0)
    model = tiny_detector()
    loader = build_detection_train_loader(
        dataset=tiny_sky[0], total_batch_size=2, image_size=64, num_workers=0, seed=0
    )
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    trainer = SimpleTrainer(model, loader, optimizer, precision="bf16", log_period=2)
    trainer.train(0, 4)
    losses = trainer.storage.history("total_loss")
    assert [it for _, it in losses] == [1, 2, 3, 4]
    assert all(np.isfinite(v) and v > 0 for v, _ in losses)
    assert trainer.precision == "bf16"


def _cfg(**train):
    return OmegaConf.create(
        {
            "train": {"max_iter": 1000, "eval_period": 200, "checkpoint_period": None, **train},
            "dataloader": {"train": {"total_batch_size": 4}},
            "optimizer": {"lr": 1e-4},
        }
    )


def test_batch_size_per_gpu_scales_lr_and_iterations():
    cfg = _cfg(batch_size_per_gpu=16)
    assert defaults.scale_batch_to_gpus(cfg) == 4.0
    assert cfg.dataloader.train.total_batch_size == 16
    assert cfg.optimizer.lr == pytest.approx(4e-4)
    assert cfg.train.max_iter == 250 and cfg.train.eval_period == 50
    assert cfg.train.checkpoint_period is None  # a tenth of the run, whatever its length
    assert defaults.scale_batch_to_gpus(cfg) == 1.0  # applied twice: no further change
    assert cfg.optimizer.lr == pytest.approx(4e-4) and cfg.train.max_iter == 250
    untouched = _cfg(batch_size_per_gpu=None)
    assert defaults.scale_batch_to_gpus(untouched) == 1.0
    assert untouched.optimizer.lr == 1e-4 and untouched.dataloader.train.total_batch_size == 4
    with pytest.raises(ValueError, match="batch_size_per_gpu must be a positive integer, got 0"):
        defaults.scale_batch_to_gpus(_cfg(batch_size_per_gpu=0))


def test_train_precision_from_the_config(monkeypatch):
    assert defaults.resolve_train_precision(_cfg(), "cpu") == "fp32"
    assert defaults.resolve_train_precision(_cfg(amp=True), "cpu") == "bf16"
    assert defaults.resolve_train_precision(_cfg(amp=True, precision="fp32"), "cpu") == "fp32"
    assert defaults.resolve_train_precision(_cfg(precision="auto"), "cpu") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert defaults.resolve_train_precision(_cfg(precision="auto"), "cuda") == "bf16"
    with pytest.raises(ValueError, match="train.precision: precision 'int8'"):
        defaults.resolve_train_precision(_cfg(precision="int8"), "cpu")


def test_compile_option_compiles_the_backbone_in_place(monkeypatch):
    compiled = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compiled.append(kw))

    class Detector(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.Conv2d(1, 1, 1)

    model = Detector()
    assert not defaults.maybe_compile_backbone(_cfg(), model)
    assert defaults.maybe_compile_backbone(_cfg(compile=True), model) and compiled == [{}]
    assert defaults.maybe_compile_backbone(_cfg(compile="max-autotune"), model)
    assert compiled[-1] == {"mode": "max-autotune"}
    with pytest.raises(ValueError, match="Linear has no backbone"):
        defaults.maybe_compile_backbone(_cfg(compile=True), torch.nn.Linear(1, 1))


def test_loader_pins_memory_only_when_asked_or_on_cuda(tiny_sky, monkeypatch):
    kw = dict(dataset=tiny_sky[0], total_batch_size=2, image_size=64, seed=0)
    loader = build_detection_train_loader(**kw, num_workers=0, pin_memory=None)
    assert loader.pin_memory is None
    from astrodet.data import detection

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert detection._loader_options(0, None, 4) == {"pin_memory": False}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert detection._loader_options(2, None, 4) == {"pin_memory": True, "prefetch_factor": 4}
    assert detection._loader_options(2, False, None) == {"pin_memory": False}
    with pytest.raises(ValueError, match="prefetch_factor must be a positive integer, got 0"):
        detection._loader_options(2, None, 0)
