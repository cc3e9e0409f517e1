"""The training loop, hooks, checkpoints and exact resume, on a tiny detector."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
import torch
from _tiny import tiny_detector

from astrodet.data.detection import build_detection_train_loader
from astrodet.engine import (
    Checkpointer,
    CheckpointError,
    CheckpointMismatchError,
    EventStorage,
    JSONWriter,
    LRMultiplier,
    LRScheduler,
    PeriodicCheckpointer,
    SimpleTrainer,
    get_rng_state,
    set_rng_state,
)
from astrodet.utils import seed_everything


def _linear_decay(where: float) -> float:
    return 1.0 - 0.5 * where


def _build(train_dicts, out_dir, *, max_iter, period, lr=1e-3):
    seed_everything(0)
    model = tiny_detector()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    loader = build_detection_train_loader(
        dataset=train_dicts, total_batch_size=2, image_size=64, num_workers=0, seed=0
    )
    trainer = SimpleTrainer(model, loader, optimizer)
    scheduler = LRMultiplier(optimizer, _linear_decay, max_iter)
    ckpt = Checkpointer(model, out_dir, optimizer=optimizer, scheduler=scheduler, trainer=trainer)
    trainer.register_hooks([LRScheduler(scheduler), PeriodicCheckpointer(ckpt, period)])
    return trainer, ckpt, model, optimizer


def _losses(trainer) -> dict[int, float]:
    return {it: v for v, it in trainer.storage.history("total_loss")}


def test_tiny_detector_loss_falls(tiny_sky, tmp_path):
    trainer, _, _, _ = _build(tiny_sky[0], tmp_path, max_iter=30, period=0, lr=2e-3)
    trainer.train(0, 30)
    losses = [v for v, _ in trainer.storage.history("total_loss")]
    assert len(losses) == 30 and all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


def test_resume_is_exact(tiny_sky, tmp_path):
    """2N iterations straight == N iterations, a checkpoint, and N more after resuming."""
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    trainer, _, model, _ = _build(tiny_sky[0], straight_dir, max_iter=6, period=3)
    trainer.train(0, 6)
    straight_losses = _losses(trainer)
    assert sorted(straight_losses) == [1, 2, 3, 4, 5, 6]
    final = torch.load(straight_dir / "model_final.pth", weights_only=True)
    assert final["iteration"] == 6
    assert (straight_dir / "last_checkpoint").read_text().strip() == "model_final.pth"

    # a run that died after the checkpoint at iteration 3
    resumed_dir.mkdir()
    shutil.copy(straight_dir / "model_0000003.pth", resumed_dir)
    (resumed_dir / "last_checkpoint").write_text("model_0000003.pth\n")
    trainer2, ckpt2, model2, opt2 = _build(tiny_sky[0], resumed_dir, max_iter=6, period=3)
    start = ckpt2.resume_or_load(None, resume=True)
    assert start == 3
    assert trainer2.data_loader.state_dict()["batches"] == 3
    trainer2.train(start, 6)
    resumed_losses = _losses(trainer2)
    assert sorted(resumed_losses) == [4, 5, 6]
    for it in (4, 5, 6):
        assert resumed_losses[it] == pytest.approx(straight_losses[it], rel=1e-5, abs=1e-6)
    for (name, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    state = opt2.state_dict()["state"]
    assert all(int(s["step"]) == 6 for s in state.values())  # Adam's step counts continued
    assert opt2.param_groups[0]["lr"] == pytest.approx(1e-3 * _linear_decay(6 / 6))


def test_resume_without_checkpoint_starts_at_zero(tmp_path):
    model = torch.nn.Linear(2, 2)
    assert Checkpointer(model, tmp_path).resume_or_load(None, resume=True) == 0


def test_checkpoint_mismatch_names_file(tmp_path):
    Checkpointer(torch.nn.Linear(2, 2), tmp_path).save("model_0000001", iteration=1)
    with pytest.raises(CheckpointMismatchError, match=r"model_0000001\.pth .*shapes differ"):
        Checkpointer(torch.nn.Linear(3, 2), tmp_path).load(tmp_path / "model_0000001.pth")
    # a config.yaml beside the checkpoint is named as the config it was trained with
    (tmp_path / "config.yaml").write_text("model:\n  backbone:\n    trunk: resnet18\n")
    with pytest.raises(CheckpointMismatchError, match=r"trained with .*config\.yaml.*resnet18"):
        Checkpointer(torch.nn.Sequential(torch.nn.Linear(2, 2)), tmp_path).load(
            tmp_path / "model_0000001.pth"
        )
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        Checkpointer(torch.nn.Linear(2, 2)).load(tmp_path / "nope.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"garbage\.pth cannot be read"):
        Checkpointer(torch.nn.Linear(2, 2)).load(tmp_path / "garbage.pth")


def test_checkpointer_keeps_at_most_max_to_keep(tmp_path):
    ckpt = Checkpointer(torch.nn.Linear(2, 2), tmp_path, max_to_keep=2)
    for it in (1, 2, 3):
        ckpt.save(f"model_{it:07d}", iteration=it)
    assert sorted(p.name for p in tmp_path.glob("model_*.pth")) == [
        "model_0000002.pth",
        "model_0000003.pth",
    ]
    assert not list(tmp_path.glob("*.tmp"))


def test_rng_state_roundtrip():
    state = get_rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_lr_multiplier_state_roundtrip():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = LRMultiplier(opt, _linear_decay, 10)
    for _ in range(4):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * _linear_decay(0.4))
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched2 = LRMultiplier(opt2, _linear_decay, 10)
    sched2.load_state_dict(sched.state_dict())
    opt2.load_state_dict(opt.state_dict())
    opt2.step()
    sched2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.1 * _linear_decay(0.5))


def test_json_writer_truncates_on_resume(tmp_path):
    w = JSONWriter(tmp_path / "metrics.jsonl")
    for it in (1, 2, 3, 4):
        w.write(it, {"total_loss": 1.0 / it, "bad": float("nan")})
    with open(w.path, "a") as f:
        f.write('{"iteration": 5, "tot')  # torn line of a killed run
    w.truncate_after(2)
    recs = [json.loads(line) for line in w.path.read_text().splitlines()]
    assert [r["iteration"] for r in recs] == [1, 2]
    assert recs[0]["bad"] is None


def test_event_storage_means():
    s = EventStorage(0)
    for it, v in enumerate([1.0, 2.0, 3.0, 4.0], start=1):
        s.iter = it
        s.put_scalar("loss", v)
    assert s.mean_since(2) == {"loss": 3.5}
    s.put_scalar("bbox/AP50", 0.5, flush=True)
    assert s.pop_flush() and not s.pop_flush()


def test_non_finite_loss_is_a_clear_error():
    class Bad(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, images, targets):
            return {"loss_x": self.w * float("nan")}

    batches = iter([([torch.zeros(3, 4, 4)], [{"boxes": torch.zeros(0, 4)}], [{}])] * 2)
    model = Bad()
    trainer = SimpleTrainer(model, batches, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(FloatingPointError, match="iteration 1"):
        trainer.train(0, 1)


def test_configure_cpu_threads(monkeypatch, caplog):
    from omegaconf import OmegaConf

    from astrodet.engine import configure_cpu_threads, defaults

    monkeypatch.setattr(defaults, "_usable_cpus", lambda: 2)
    monkeypatch.setattr(defaults, "_busy_cores", lambda: 1.0)
    cfg = OmegaConf.create(
        {"train": {"device": "cpu", "num_threads": 2}, "dataloader": {"train": {"num_workers": 1}}}
    )
    with caplog.at_level("WARNING", logger="astrodet.engine.defaults"):
        assert configure_cpu_threads(cfg) == 2 == torch.get_num_threads()
    assert "threads will wait for each other" in caplog.text
    caplog.clear()
    cfg.train.num_threads = 1
    with caplog.at_level("WARNING", logger="astrodet.engine.defaults"):
        assert configure_cpu_threads(cfg) == 1 == torch.get_num_threads()
    assert "threads will wait" not in caplog.text
    cfg.train.num_threads = 0
    with pytest.raises(ValueError, match="train.num_threads must be a positive integer"):
        configure_cpu_threads(cfg)
