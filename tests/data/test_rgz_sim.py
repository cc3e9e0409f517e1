"""Simulated radio galaxies: the class follows the components and peaks, boxes enclose every
component, the draws are seeded, and the training set mixes real and simulated images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from astrodet.data import rgz_sim as rs
from astrodet.data.rgz import RGZ_CLASSES


@pytest.mark.parametrize(
    ("components", "peaks", "cls"),
    [(1, 1, "1C_1P"), (1, 2, "1C_2P"), (1, 5, "1C_3P"), (2, 1, "2C_2P"), (2, 2, "2C_2P"),
     (2, 4, "2C_3P"), (3, 3, "3C_3P"), (5, 7, "3C_3P")],
)  # fmt: skip
def test_class_from_components_and_peaks(components, peaks, cls):
    assert rs.rgz_class(components, peaks) == cls


def test_no_component_is_an_error():
    with pytest.raises(ValueError, match="at least one component"):
        rs.rgz_class(0, 0)


def _gaussians(x, y, peak, size=3.0):
    n = len(x)
    return {
        "x": np.asarray(x, float),
        "y": np.asarray(y, float),
        "peak": np.asarray(peak, float),
        "maj": np.full(n, size),
        "min": np.full(n, size),
        "pa": np.zeros(n),
    }


def test_components_and_peaks_are_measured_on_the_model():
    # a lone Gaussian between pixel centres: one component, one peak (four equal pixels)
    one = rs.describe_source(_gaussians([20.5], [20.5], [10.0]), (40, 40), rms=1.0)
    assert one["class"] == "1C_1P" and one["n_peaks"] == 1
    # two Gaussians 4 px apart joined above 3 rms, each its own maximum: one island
    pair = rs.describe_source(_gaussians([18, 22], [20, 20], [10.0, 8.0]), (40, 40), rms=1.0)
    assert pair["class"] == "1C_2P"
    # far apart: two islands, each placed at its brightest pixel
    double = rs.describe_source(_gaussians([8, 30], [20, 21], [10.0, 8.0]), (40, 40), rms=1.0)
    assert double["class"] == "2C_2P"
    np.testing.assert_allclose(sorted(map(tuple, double["components"])), [(8, 20), (30, 21)])
    # a double with a core: three islands
    triple = rs.describe_source(
        _gaussians([5, 20, 35], [20, 20, 20], [10.0, 5.0, 9.0]), (40, 40), rms=1.0
    )
    assert triple["class"] == "3C_3P"
    # below the level: no component, no class
    assert rs.describe_source(_gaussians([20], [20], [2.0]), (40, 40), rms=1.0)["class"] is None


@pytest.mark.parametrize("morphology", rs.MORPHOLOGIES)
def test_simulated_images_box_every_component_and_are_seeded(morphology):
    from astrodet.data.rgz_consensus import consensus_box, emission_regions

    noise = np.random.default_rng(1).normal(0.0, 1.0, (100, 100))
    made = [
        rs.simulate_image(noise, rng=np.random.default_rng(7), rms=1.0, morphology=morphology)
        for _ in range(2)
    ]
    assert made[0] is not None
    (image, sources), (again, sources2) = made
    np.testing.assert_array_equal(image, again)  # the same seed, the same sky
    assert [s["class"] for s in sources] == [s["class"] for s in sources2]
    assert sources[0]["morphology"] == morphology and not sources[0]["neighbour"]
    assert all(s["neighbour"] for s in sources[1:])
    labels = emission_regions(image, clipped=False, nsigma=3.0)
    for s in sources:
        assert s["class"] in RGZ_CLASSES
        n_c = len(s["components"])
        assert s["class"].startswith(f"{min(n_c, 3)}C")
        x0, y0, x1, y1 = consensus_box(
            labels=labels, components=s["components"], ang_extent_px=s["extent"]
        )
        x, y = s["components"].T
        assert (x0 <= x).all() and (x + 1 <= x1).all() and (y0 <= y).all() and (y + 1 <= y1).all()
    # neighbours are separate sources: no pixel of emission shared with the galaxy
    masks = [s["mask"] for s in sources]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            assert not (masks[i] & masks[j]).any()
    other = rs.simulate_image(noise, rng=np.random.default_rng(8), rms=1.0, morphology=morphology)
    assert other is None or not np.array_equal(other[0], image)


def test_galaxies_keep_off_the_holes():
    noise = np.random.default_rng(2).normal(0.0, 1.0, (100, 100))
    avoid = np.zeros((100, 100), bool)
    avoid[:, :50] = True  # the left half is a real source's hole
    for seed in range(5):
        made = rs.simulate_image(noise, rng=np.random.default_rng(seed), rms=1.0, avoid=avoid)
        if made is None:
            continue
        for s in made[1]:
            assert not (s["mask"] & avoid).any()


def test_clipped_like_the_pngs():
    image = np.array([[0.5, 2.0], [4.0, 10.0]])
    np.testing.assert_allclose(rs._clip_like_png(image, 1.0), [[0, 0], [0.4, 1.0]], atol=1 / 255)


def _tiny_set(tmp_path, monkeypatch):
    """A few simulated images over noise images of our own (no real data needed)."""
    fields = [(f"f{i}", np.random.default_rng(i).normal(0, 1e-4, (120, 120))) for i in range(3)]
    monkeypatch.setattr(rs, "_noise_images", lambda real, exclude: fields)
    test_json = tmp_path / "test.json"
    test_json.write_text(json.dumps({"images": []}))
    return test_json


def test_set_is_seeded_and_kept(tmp_path, monkeypatch):
    test_json = _tiny_set(tmp_path, monkeypatch)
    a = rs.build_rgz_sim(tmp_path / "a", real_data=tmp_path, test_json=test_json, n_images=6)
    b = rs.build_rgz_sim(tmp_path / "b", real_data=tmp_path, test_json=test_json, n_images=6)
    ca, cb = (json.loads((r / "train" / "annotations.json").read_text()) for r in (a, b))
    assert ca["annotations"] == cb["annotations"] and len(ca["images"]) == 6
    assert [c["name"] for c in ca["categories"]] == list(RGZ_CLASSES)
    for ann in ca["annotations"]:
        x, y, w, h = ann["bbox"]
        for cx, cy in ann["sim"]["components"]:
            assert x <= cx <= x + w and y <= cy <= y + h
    summary = json.loads((a / "summary.json").read_text())
    assert sum(summary["per_class"].values()) == len(ca["annotations"])
    mtime = (a / "summary.json").stat().st_mtime_ns
    rs.build_rgz_sim(a, real_data=tmp_path, test_json=test_json, n_images=6)
    assert (a / "summary.json").stat().st_mtime_ns == mtime  # the same settings: kept
    first = np.load(a / "train" / "images" / "sim_00000.npy")
    assert first.shape == (100, 100) and first.dtype == np.float32


def test_training_mixes_real_and_simulated(tmp_path, monkeypatch):
    from astrodet.data.coco import save_coco_json

    test_json = _tiny_set(tmp_path, monkeypatch)
    sim = rs.build_rgz_sim(tmp_path / "sim", real_data=tmp_path, test_json=test_json, n_images=4)
    real = tmp_path / "real"
    (real / "images").mkdir(parents=True)
    np.save(real / "images" / "r.npy", np.zeros((100, 100), np.float32))
    dicts = [{"file_name": "r.npy", "height": 100, "width": 100, "image_id": 0,
              "annotations": [{"bbox": [10, 10, 20, 20], "category_id": 3}]}]  # fmt: skip
    save_coco_json(real / "annotations.json", dicts, RGZ_CLASSES)
    kw = dict(
        json_file=real / "annotations.json",
        image_root=real / "images",
        sim_json_file=sim / "train" / "annotations.json",
        sim_image_root=sim / "train" / "images",
    )
    assert len(rs.load_rgz_first_training(**kw, training="real")) == 1
    assert len(rs.load_rgz_first_training(**kw, training="sim")) == 4
    both = rs.load_rgz_first_training(**kw, training="both")
    assert len(both) == 5 and len({d["image_id"] for d in both}) == 5
    with pytest.raises(ValueError, match="training must be one of"):
        rs.load_rgz_first_training(**kw, training="fake")


def test_config_selects_the_training_images():
    from pathlib import Path

    from astrodet.config import LazyConfig

    cfg = LazyConfig.load(Path(__file__).parents[2] / "configs" / "rgz_first_vit_small.py")
    assert cfg.dataloader.train.dataset.training == "both"
    LazyConfig.apply_overrides(cfg, ["dataloader.train.dataset.training=real"])
    assert cfg.dataloader.train.dataset.training == "real"
    paper = LazyConfig.load(Path(__file__).parents[2] / "configs" / "rgz_first_dino_vitdet.py")
    assert paper.dataloader.train.dataset.training == "real"
