"""PCA(10) + UMAP pictures: a grid PNG with one panel per model, class-balanced samples."""

import json

import numpy as np

from probe import umap as pumap


def test_balanced_sample():
    labels = np.array([0] * 100 + [1] * 10 + [2] * 30)
    idx = pumap.balanced_sample(labels, 60, balanced=True, seed=0)
    assert np.bincount(labels[idx]).tolist() == [10, 10, 10]
    idx = pumap.balanced_sample(labels, 21, balanced=True, seed=0)
    assert np.bincount(labels[idx]).tolist() == [7, 7, 7]
    idx = pumap.balanced_sample(labels, 50, balanced=False, seed=0)
    assert len(idx) == 50 and len(set(idx)) == 50


def test_umap_grid_png(toy_dataset, tmp_path, capsys):
    argv = [
        "--model",
        "dino",
        "mae",
        "--dataset",
        "probe_toy",
        "--weights",
        "none",
        "--image-size",
        "32",
        "--device",
        "cpu",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--model-kwargs",
        '{"embed_dim": 32, "depth": 1, "num_heads": 2}',
        "--output",
        str(tmp_path / "out"),
        "--sample",
        "100",
    ]
    assert pumap.main(argv) == 0
    png = tmp_path / "out" / "umap_train.png"
    assert str(png) in capsys.readouterr().out
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.shape[1] > img.shape[0] > 200  # two panels side by side
    rgb = img[..., :3].reshape(-1, 3)
    # coloured points, not a blank canvas
    assert (rgb.max(1) - rgb.min(1) > 0.3).mean() > 0.002
    coords = json.loads((tmp_path / "out" / "umap_train.json").read_text())
    assert set(coords) == {"dino", "mae"}
    # the toy train split is unbalanced (12/8/6): the sample is balanced
    assert np.bincount(coords["dino"]["label"]).tolist() == [6, 6, 6]
    assert np.isfinite(np.array(coords["mae"]["xy"])).all()
