"""Simulated skies: seeded, labelled correctly, fast, written as loadable COCO."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from scipy import ndimage

from astrodet.data import synthetic as syn


def test_sky_is_deterministic_by_seed():
    a_img, a_d = syn.generate_sky(3, seed=5)
    b_img, b_d = syn.generate_sky(3, seed=5)
    c_img, _ = syn.generate_sky(3, seed=6)
    for x, y in zip(a_img, b_img):
        np.testing.assert_array_equal(x, y)
    assert [d["annotations"] for d in a_d] == [d["annotations"] for d in b_d]
    assert not np.array_equal(a_img[0], c_img[0])


def test_sky_boxes_inside_and_on_sources():
    images, dicts = syn.generate_sky(20, seed=1)
    n = 0
    for img, d in zip(images, dicts):
        assert img.shape == (256, 256) and img.dtype == np.float32
        for a in d["annotations"]:
            x, y, w, h = a["bbox"]
            assert w > 0 and h > 0
            assert x >= 0 and y >= 0 and x + w <= 256 and y + h <= 256
            # FWHM box of a 5 px beam: a few pixels across
            assert 2.0 < max(w, h) < 12.0
            if a["snr"] > 30 and w > 3 and h > 3:
                # the brightest pixel inside the box is the source, near the box centre
                sub = img[int(y) : int(np.ceil(y + h)), int(x) : int(np.ceil(x + w))]
                j, i = np.unravel_index(np.argmax(sub), sub.shape)
                assert abs(int(x) + i + 0.5 - (x + w / 2)) <= 1.5
                assert abs(int(y) + j + 0.5 - (y + h / 2)) <= 1.5
                n += 1
    assert n > 10


def test_sky_snr_range_and_noise_level():
    _, dicts = syn.generate_sky(100, seed=2)
    snr = np.concatenate([d["info"]["snr"] for d in dicts])
    assert snr.min() >= 5.0 and snr.max() <= 300.0
    assert snr.min() < 7.0 and snr.max() > 100.0  # from a few to hundreds
    assert np.median(snr) < 20.0  # power law: faint sources dominate
    rng = np.random.default_rng(0)
    img, _, _ = syn.make_radio_field(rng, mean_compact=0, mean_extended=0, noise_rms=1e-5)
    robust = 1.4826 * np.median(np.abs(img - np.median(img)))
    assert robust == pytest.approx(1e-5, rel=0.15)
    # correlated on the beam scale: neighbouring pixels are alike
    corr = np.corrcoef(img[:, :-1].ravel(), img[:, 1:].ravel())[0, 1]
    assert corr > 0.7


def test_rgz_classes_balanced_and_structure_matches_label():
    images, dicts = syn.generate_rgz(60, seed=3)
    labels = [d["annotations"][0]["category_id"] for d in dicts]
    assert np.bincount(labels, minlength=6).tolist() == [10] * 6
    rng = np.random.default_rng(0)
    for label, name in enumerate(syn.RGZ_CLASSES):
        for _ in range(5):
            img, box, info = syn.make_rgz_cutout(rng, label, snr_range=(100.0, 150.0))
            peaks = (img == ndimage.maximum_filter(img, size=5)) & (img > 0.3 * img.max())
            lbl, n = ndimage.label(img > 5 * 1.5e-4)
            comps = len({lbl[int(y), int(x)] for x, y in info["peaks"]})
            assert (comps, int(peaks.sum())) == (int(name[0]), int(name[3])), name
            x, y, w, h = box
            assert 0 <= x and 0 <= y and x + w <= 132 and y + h <= 132
            for px, py in info["peaks"]:
                assert x <= px <= x + w and y <= py <= y + h


def _elongation(img):
    g = img.astype(np.float64).mean(-1)
    g = np.clip(g - np.median(g), 0, None)
    yy, xx = np.mgrid[: g.shape[0], : g.shape[1]]
    m = g.sum()
    cx, cy = (g * xx).sum() / m, (g * yy).sum() / m
    cov = np.cov(np.stack([xx.ravel() - cx, yy.ravel() - cy]), aweights=g.ravel())
    ev = np.linalg.eigvalsh(cov)
    return np.sqrt(ev[1] / ev[0])


def test_galaxies_balanced_uint8_and_classes_differ():
    images, labels = syn.generate_galaxies(40, seed=4)
    assert images.shape == (40, 64, 64, 3) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [10, 10, 10, 10]
    elong = {
        c: np.median([_elongation(images[i]) for i in np.flatnonzero(labels == k)])
        for k, c in enumerate(syn.GALAXY_CLASSES)
    }
    assert elong["edge_on_disk"] > elong["smooth_cigar"] > elong["smooth_round"]
    again, _ = syn.generate_galaxies(40, seed=4)
    np.testing.assert_array_equal(images, again)


def test_speed_100_fields():
    t0 = time.perf_counter()
    syn.generate_sky(100, seed=0)
    assert time.perf_counter() - t0 < 10.0


def test_cli_writes_loadable_coco(tmp_path, capsys):
    from astrodet.data.coco import load_coco_json

    out = tmp_path / "syn"
    assert syn.main(["--out", str(out), "--kind", "sky", "--n-train", "3", "--n-test", "2"]) == 0
    train = load_coco_json(str(out / "sky/train/annotations.json"), str(out / "sky/train/images"))
    assert len(train) == 3 and all(len(d["annotations"]) > 0 for d in train)
    img = np.load(train[0]["file_name"])
    assert img.shape == (256, 256)
    test = json.loads((out / "sky/test/annotations.json").read_text())
    assert len(test["images"]) == 2 and [c["name"] for c in test["categories"]] == ["source"]
    # an existing folder is refused without --overwrite
    assert syn.main(["--out", str(out), "--kind", "sky"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert syn.main(["--out", str(out), "--kind", "rgz", "--n-train", "6", "--n-test", "6"]) == 0
    rgz = load_coco_json(str(out / "rgz/test/annotations.json"), str(out / "rgz/test/images"))
    assert sorted(a["category_id"] for d in rgz for a in d["annotations"]) == list(range(6))


def test_galaxies_written_and_loaded(tmp_path):
    syn.write_synthetic(tmp_path, kind="galaxies", n_train=8, n_test=4, seed=0)
    lines = (tmp_path / "galaxies/train/labels.csv").read_text().splitlines()
    assert lines[0] == "index,label,class_name" and len(lines) == 9
    dicts = syn.load_synthetic("galaxies", "test", root=tmp_path, n_train=8, n_test=4)
    assert len(dicts) == 4
    assert dicts[0]["image"].shape == (64, 64, 3) and dicts[0]["image"].max() <= 1.0


def test_ensure_regenerates_half_written_set(tmp_path, monkeypatch):
    calls = []
    real = syn.write_synthetic

    def counting(*a, **k):
        calls.append(k)
        return real(*a, **k)

    monkeypatch.setattr(syn, "write_synthetic", counting)
    folder = syn.ensure_synthetic("rgz", root=tmp_path, n_train=6, n_test=6)
    syn.ensure_synthetic("rgz", root=tmp_path, n_train=6, n_test=6)
    assert len(calls) == 1  # cached
    (folder / ".complete.json").unlink()  # as if the first run had died
    syn.ensure_synthetic("rgz", root=tmp_path, n_train=6, n_test=6)
    assert len(calls) == 2
    syn.ensure_synthetic("rgz", root=tmp_path, n_train=6, n_test=6, seed=1)  # other settings
    assert len(calls) == 3
    assert not list(tmp_path.glob(".rgz.tmp-*"))


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown synthetic kind 'radio'"):
        syn.write_synthetic("unused", kind="radio")
    with pytest.raises(ValueError, match="n_train=-1"):
        syn.write_synthetic("unused", kind="sky", n_train=-1, n_test=1)
    with pytest.raises(ValueError, match="unknown split 'val'"):
        syn.load_synthetic("sky", "val")
