"""The supervised baseline: a couple of tiny epochs, checkpoint, resume, skip finished runs."""

import json

import pytest
import torch
from sklearn.metrics import f1_score

from probe import supervised
from probe.results import read_predictions


def run(tmp_path, **kw):
    args = dict(
        model="resnet18",
        dataset="probe_toy",
        fractions=[1.0],
        seeds=1,
        epochs=2,
        image_size=16,
        batch_size=8,
        lr=1e-3,
        output=tmp_path / "sup",
        device="cpu",
    )
    args.update(kw)
    return supervised.run_supervised(**args)


def test_checkpoint_resume_and_skip(toy_dataset, tmp_path, monkeypatch):
    assert run(tmp_path, stop_after=1) is None
    ckpt = tmp_path / "sup" / "runs" / "resnet18" / "f1_s0" / "last.pth"
    saved = torch.load(ckpt, weights_only=False)
    assert saved["state"]["epoch"] == 1 and len(saved["state"]["history"]) == 1
    with pytest.raises(FileExistsError):
        run(tmp_path)
    res = run(tmp_path, resume=True)
    (r,) = res["runs"]
    assert res["protocol"] == "supervised" and res["dataset"] == "probe_toy"
    assert r["epochs"] == 2 and r["resumed_from"] == [1]
    assert r["n_train"] == 26
    record = json.loads((ckpt.parent / "record.json").read_text())
    assert [h["epoch"] for h in record["history"]] == [1, 2]
    assert not ckpt.exists() and (ckpt.parent / "model_final.pth").exists()
    y_true, y_pred = read_predictions(tmp_path / "sup" / r["predictions"])
    assert r["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))

    def no_training(**kw):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(supervised, "train_one", no_training)
    again = run(tmp_path, resume=True)
    assert again["runs"][0]["macro_f1"] == r["macro_f1"]


def test_resume_refuses_other_epochs(toy_dataset, tmp_path):
    tiny = {
        "model": "dino",
        "model_kwargs": {"embed_dim": 32, "depth": 1, "num_heads": 2, "patch_size": 8},
    }
    assert run(tmp_path, stop_after=1, epochs=3, **tiny) is None
    with pytest.raises(ValueError, match="--epochs 3, not 2"):
        run(tmp_path, resume=True, epochs=2, **tiny)


def test_augment_rot90_is_exact_and_keeps_shape():
    x = torch.rand(6, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    y = supervised.augment(x, g, max_degrees=0.0)
    assert y.shape == x.shape
    for a, b in zip(x, y):  # each output is one of the 8 dihedral images of its input
        images = [torch.rot90(a, k, (1, 2)) for k in range(4)]
        images += [torch.flip(i, (2,)) for i in images]
        assert min(float((i - b).abs().max()) for i in images) < 1e-5


def test_cli_tiny_vit(toy_dataset, tmp_path, capsys):
    argv = [
        "--model",
        "dino",
        "--dataset",
        "probe_toy",
        "--fractions",
        "0.5",
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--image-size",
        "16",
        "--batch-size",
        "8",
        "--device",
        "cpu",
        "--model-kwargs",
        '{"embed_dim": 32, "depth": 1, "num_heads": 2, "patch_size": 8}',
        "--output",
        str(tmp_path / "vit"),
    ]
    assert supervised.main(argv) == 0
    res = json.loads((tmp_path / "vit" / "results.json").read_text())
    assert res["runs"][0]["n_train"] == 13 and res["runs"][0]["epochs"] == 1
    assert "probe_toy (supervised, linear)" in capsys.readouterr().out
