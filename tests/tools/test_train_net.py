"""tools/train_net.py end to end on a tiny simulated sky: outputs, eval-only, exact resume,
kill-and-resume, DDP with two CPU processes, and clear errors."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_project import make_tiny_project

REPO = Path(__file__).resolve().parents[2]
TRAIN_NET = REPO / "tools" / "train_net.py"

TINY_SETTINGS = """
model.backbone.freeze = "none"
model.rpn_pre_nms_top_n_train = 200
model.rpn_post_nms_top_n_train = 100
model.rpn_batch_size_per_image = 64
model.box_batch_size_per_image = 64

optimizer.lr = 1e-3
lr_multiplier.warmup_length = 0.0

train.max_iter = 6
train.eval_period = 4
train.checkpoint_period = 3
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    """A tiny config file next to a link to the real configs/common."""
    root = tmp_path_factory.mktemp("train_net")
    return make_tiny_project(root, n_train=8, n_test=4, settings=TINY_SETTINGS)


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _cmd(config: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, str(TRAIN_NET), "--config-file", str(config), *args,
            f"train.output_dir={out}"]  # fmt: skip


def _run(config: Path, out: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        _cmd(config, out, *args), env=_env(), capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def _run_here(config: Path, out: Path, *args: str) -> None:
    """Run the script's ``cli`` in this process (no interpreter start-up)."""
    assert _cli()(["--config-file", str(config), *args, f"train.output_dir={out}"]) == 0


@pytest.fixture(autouse=True)
def _quiet_single_thread():
    """One intra-op thread (as the subprocesses get) and no log handlers left behind."""
    import logging

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_astrodet", False):
            root.removeHandler(h)
            h.close()


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _loss_iterations(out: Path) -> list[int]:
    return [r["iteration"] for r in _records(out) if "total_loss" in r]


def _ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def trained(config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    _run(config, out)
    return out


def test_outputs(trained):
    out = trained
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("bbox/AP", "bbox/AP50", "bbox/AP75", "bbox/AP50-source"):
        assert key in metrics
        assert metrics[key] is None or 0.0 <= metrics[key] <= 1.0
    results = json.loads((out / "coco_instances_results.json").read_text())
    assert isinstance(results, list)
    for r in results[:5]:
        assert set(r) >= {"image_id", "category_id", "bbox", "score"} and len(r["bbox"]) == 4

    from astrodet.config import LazyConfig

    cfg = LazyConfig.load(out / "config.yaml")
    assert cfg.train.max_iter == 6 and cfg.train.output_dir == str(out)
    assert cfg.model.backbone.trunk_kwargs.embed_dim == 32

    assert _loss_iterations(out) == [1, 2, 3, 4, 5, 6]
    recs = _records(out)
    assert all(np.isfinite(r["total_loss"]) and r["lr"] > 0 for r in recs if "total_loss" in r)
    assert [r["iteration"] for r in recs if "bbox/AP50" in r] == [4, 6]  # periodic + final eval
    assert _ckpt(out / "model_0000003.pth")["iteration"] == 3
    final = _ckpt(out / "model_final.pth")
    assert final["iteration"] == 6 and final["trainer"]["data_loader"]["batches"] == 6
    assert (out / "last_checkpoint").read_text().strip() == "model_final.pth"
    assert list(out.glob("events.out.tfevents.*"))
    log = (out / "log.txt").read_text()
    assert "trainable" in log and "frozen" in log and "seed 0" in log


def test_eval_only_reproduces_final_metrics(config, trained):
    before = json.loads((trained / "metrics.json").read_text())
    (trained / "metrics.json").unlink()
    _run_here(config, trained, "--eval-only")
    assert json.loads((trained / "metrics.json").read_text()) == before
    assert (trained / "config_eval.yaml").exists()


def test_resume_equals_uninterrupted_run(config, trained, tmp_path):
    """3 iterations, a checkpoint, 3 more after --resume == 6 straight: same losses, weights."""
    out = tmp_path / "resumed"
    out.mkdir()
    shutil.copy(trained / "model_0000003.pth", out)
    (out / "last_checkpoint").write_text("model_0000003.pth\n")
    _run_here(config, out, "--resume")
    assert _loss_iterations(out) == [4, 5, 6]
    straight = {r["iteration"]: r for r in _records(trained) if "total_loss" in r}
    for r in _records(out):
        if "total_loss" in r:
            assert r["total_loss"] == pytest.approx(
                straight[r["iteration"]]["total_loss"], rel=1e-5
            )
    a, b = _ckpt(trained / "model_final.pth"), _ckpt(out / "model_final.pth")
    assert b["iteration"] == 6
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def _last_checkpoint_name(out):
    try:
        return (out / "last_checkpoint").read_text().strip()
    except OSError:
        return ""


def test_kill_and_resume_continues(config, tmp_path):
    out = tmp_path / "killed"
    args = ("train.max_iter=40", "train.checkpoint_period=2", "train.eval_period=0")
    proc = subprocess.Popen(
        _cmd(config, out, *args), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 240
    # the pointer is written after the checkpoint it names: wait for it, not the file
    while _last_checkpoint_name(out) < "model_0000004.pth":
        assert proc.poll() is None, proc.stderr.read().decode()[-4000:]
        assert time.time() < deadline, "no checkpoint within 240 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    killed_at = _ckpt(out / (out / "last_checkpoint").read_text().strip())["iteration"]
    assert 4 <= killed_at < 40

    _run(config, out, "--resume", *args)
    assert _loss_iterations(out) == list(range(1, 41))  # continued, not restarted
    final = _ckpt(out / "model_final.pth")
    assert final["iteration"] == 40
    # Adam's per-parameter step counts carried over: the optimizer state was restored
    assert {int(s["step"]) for s in final["optimizer"]["state"].values()} == {40}
    assert "bbox/AP50" in json.loads((out / "metrics.json").read_text())


def test_ddp_two_cpu_processes(config, tmp_path):
    out = tmp_path / "ddp"
    _run(config, out, "--num-gpus", "2", "train.max_iter=2", "train.eval_period=0")
    assert _loss_iterations(out) == [1, 2]
    final = _ckpt(out / "model_final.pth")
    assert final["iteration"] == 2 and len(final["rng"]) == 2  # both ranks' RNG states
    assert "processes: 2" in (out / "log.txt").read_text()
    assert "bbox/AP50" in json.loads((out / "metrics.json").read_text())


# ----------------------------------------------------------------------------- clear errors
def _cli():
    spec = importlib.util.spec_from_file_location("train_net_under_test", TRAIN_NET)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cli


def _fails(capsys, argv) -> str:
    with pytest.raises(SystemExit) as e:
        _cli()(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


def test_refuses_existing_output_dir(config, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "something").write_text("x")
    err = _fails(capsys, ["--config-file", str(config), f"train.output_dir={out}"])
    assert "exists and is not empty" in err and "--resume" in err
    assert (out / "something").exists()


def test_unknown_config_key(config, tmp_path, capsys):
    err = _fails(capsys, ["--config-file", str(config), "train.max_iters=5"])
    assert "train.max_iters" in err and "does not exist" in err


def test_missing_json_is_named(config, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "annotations.json"
    err = _fails(
        capsys,
        [
            "--config-file",
            str(config),
            f"train.output_dir={tmp_path / 'out'}",
            f"dataloader.train.dataset.json_file={missing}",
        ],
    )
    assert str(missing) in err


def test_eval_only_without_checkpoint(config, tmp_path, capsys):
    err = _fails(
        capsys, ["--config-file", str(config), "--eval-only", f"train.output_dir={tmp_path / 'e'}"]
    )
    assert "no checkpoint" in err


def test_image_size_mismatch_is_named(config, tmp_path):
    data = config.parent.parent / "data" / "train"
    bad = tmp_path / "bad"
    shutil.copytree(data, bad)
    np.save(bad / "images" / "0003.npy", np.zeros((60, 64), np.float32))
    with pytest.raises(ValueError, match=r"0003\.npy is 60x64 .* say 64x64"):
        _cli()(
            [
                "--config-file",
                str(config),
                f"train.output_dir={tmp_path / 'out'}",
                f"dataloader.train.dataset.json_file={bad / 'annotations.json'}",
                f"dataloader.train.dataset.image_root={bad / 'images'}",
                "dataloader.train.fraction=1.0",
            ]
        )


def test_synthetic_config_trains_on_another_coco_set(config, tmp_path, monkeypatch):
    """The CPU config pointed at the user's COCO set through the four data fields: it trains
    and evaluates on that set and simulates nothing."""
    monkeypatch.setenv("ASTRODET_DATASETS", str(tmp_path / "datasets"))
    data = config.parent.parent / "data"
    out = tmp_path / "own"
    fields = [
        f"dataloader.{s}.dataset.{k}={data / s / v}"
        for s in ("train", "test")
        for k, v in (("json_file", "annotations.json"), ("image_root", "images"))
    ]
    shrink = [
        "model.backbone.trunk_kwargs={embed_dim:32,depth:4,num_heads:2,img_size:64}",
        "model.backbone.out_channels=16",
        "model.representation_size=32",
        "model.image_size=64",
        "dataloader.train.image_size=64",
        "dataloader.test.image_size=64",
        "dataloader.train.total_batch_size=2",
        "train.max_iter=2",
        "train.eval_period=2",
        "train.checkpoint_period=2",
        "train.log_period=1",
        "train.device=cpu",
    ]
    assert (
        _cli()(
            [
                "--config-file",
                str(REPO / "configs" / "synthetic_vit_small.py"),
                *fields,
                *shrink,
                f"train.output_dir={out}",
            ]
        )  # fmt: skip
        == 0
    )
    assert not (tmp_path / "datasets").exists()
    assert _loss_iterations(out) == [1, 2]
    # the 4 test images of the tiny set were evaluated, under their own class name
    test_ids = {
        img["id"] for img in json.loads((data / "test" / "annotations.json").read_text())["images"]
    }
    results = json.loads((out / "coco_instances_results.json").read_text())
    assert {r["image_id"] for r in results} <= test_ids
    assert "bbox/AP50-source" in json.loads((out / "metrics.json").read_text())
    from astrodet.config import LazyConfig

    saved = LazyConfig.load(out / "config.yaml")
    assert saved.dataloader.train.dataset.json_file == str(data / "train" / "annotations.json")


def test_corrupt_training_image_is_dropped_at_load(config, tmp_path):
    """A PNG with a valid signature and garbage after it, with one box: dropped and counted
    when the set is loaded; training runs to the end on the other images."""
    data = config.parent.parent / "data" / "train"
    bad = tmp_path / "bad"
    shutil.copytree(data, bad)
    (bad / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
    coco = json.loads((bad / "annotations.json").read_text())
    coco["images"].append({"id": 999, "file_name": "broken.png", "height": 64, "width": 64})
    coco["annotations"].append(
        {"id": 9999, "image_id": 999, "category_id": coco["categories"][0]["id"],
         "bbox": [10, 10, 8, 8], "area": 64, "iscrowd": 0}
    )  # fmt: skip
    (bad / "annotations.json").write_text(json.dumps(coco))
    out = tmp_path / "out"
    _run_here(
        config,
        out,
        f"dataloader.train.dataset.json_file={bad / 'annotations.json'}",
        f"dataloader.train.dataset.image_root={bad / 'images'}",
        "train.max_iter=8",  # every image seen (8 good ones, batch 2)
        "train.eval_period=0",
    )
    assert _loss_iterations(out) == list(range(1, 9))
    log = (out / "log.txt").read_text()
    assert "corrupt_images=1" in log and "broken.png" in log


# a wider trunk: another architecture than the trained one's
WIDER = "model.backbone.trunk_kwargs.embed_dim=48"


def _assert_mismatch_error(err: str, checkpoint: Path, config_yaml: Path) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err, err  # one line
    assert ": error: checkpoint " in err and str(checkpoint) in err
    assert "does not match the model" in err and "shapes differ" in err
    # the config it was trained with, and what it holds
    assert f"it was trained with {config_yaml}" in err and "'embed_dim': 32" in err


def _copy_run(trained: Path, dest: Path) -> Path:
    shutil.copytree(trained, dest)
    return dest


def test_eval_only_with_another_architecture_is_a_clear_error(config, trained, tmp_path, capsys):
    run = _copy_run(trained, tmp_path / "run")
    before = sorted(p.name for p in run.iterdir())
    err = _fails(
        capsys, ["--config-file", str(config), "--eval-only", WIDER, f"train.output_dir={run}"]
    )
    _assert_mismatch_error(err, run / "model_final.pth", run / "config.yaml")
    assert sorted(p.name for p in run.iterdir()) == before  # nothing written


def test_resume_with_another_architecture_is_a_clear_error(config, trained, tmp_path, capsys):
    run = _copy_run(trained, tmp_path / "run")
    saved = (run / "config.yaml").read_text()
    err = _fails(
        capsys, ["--config-file", str(config), "--resume", WIDER, f"train.output_dir={run}"]
    )
    _assert_mismatch_error(err, run / "model_final.pth", run / "config.yaml")
    assert (run / "config.yaml").read_text() == saved  # the run's record is not overwritten


def test_init_checkpoint_of_another_architecture_is_a_clear_error(
    config, trained, tmp_path, capsys
):
    out = tmp_path / "fresh"
    ckpt = trained / "model_0000003.pth"
    err = _fails(
        capsys,
        [
            "--config-file",
            str(config),
            WIDER,
            f"train.init_checkpoint={ckpt}",
            f"train.output_dir={out}",
        ],
    )
    _assert_mismatch_error(err, ckpt, trained / "config.yaml")
    assert not out.exists()
    # without a config.yaml beside it, the error says what differs and nothing more
    alone = tmp_path / "alone" / "weights.pth"
    alone.parent.mkdir()
    shutil.copy(ckpt, alone)
    err = _fails(
        capsys,
        [
            "--config-file",
            str(config),
            WIDER,
            f"train.init_checkpoint={alone}",
            f"train.output_dir={out}",
        ],
    )
    assert str(alone) in err and "shapes differ" in err and "trained with" not in err
    # the same architecture loads: the check is no false alarm
    _run_here(
        config, out, f"train.init_checkpoint={alone}", "train.max_iter=1", "train.eval_period=0"
    )
    assert _loss_iterations(out) == [1]
