"""The injected training set: noise correlated like the beam, real sources taken out of the
inverted background, labels where the injected sources are, and the registered set built
from the real FIRST fields with first_pybdsf's split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from astrodet.sky import open_field
from astrodet.sky.truth_set import build_first_injected, correlated_noise, inject_over_noise


def test_correlated_noise_has_unit_variance_and_the_beams_autocorrelation():
    rng = np.random.default_rng(0)
    fwhm = 6.0
    noise = correlated_noise((400, 400), beam_pixels=(fwhm, fwhm, 0.0), rng=rng)
    assert noise.shape == (400, 400)
    assert noise.std() == pytest.approx(1.0, abs=0.05)
    # a Gaussian beam's autocorrelation: 0.5 at half the FWHM, 1/16 at one FWHM
    half = int(fwhm / 2)
    r_half = np.mean(noise[:, :-half] * noise[:, half:]) / noise.var()
    r_full = np.mean(noise[:, : -int(fwhm)] * noise[:, int(fwhm) :]) / noise.var()
    assert r_half == pytest.approx(0.5, abs=0.05)
    assert r_full == pytest.approx(0.0625, abs=0.04)


def _field(path, *, source_at=(60, 60)):
    rng = np.random.default_rng(1)
    data = rng.normal(0, 1e-4, (160, 160)).astype(np.float32)
    yy, xx = np.mgrid[:160, :160]
    data += 5e-2 * np.exp(-((xx - source_at[0]) ** 2 + (yy - source_at[1]) ** 2) / 4.0)
    h = fits.Header()
    h["CTYPE1"], h["CRVAL1"], h["CRPIX1"], h["CDELT1"] = "RA---SIN", 150.0, 80.0, -1.8 / 3600
    h["CTYPE2"], h["CRVAL2"], h["CRPIX2"], h["CDELT2"] = "DEC--SIN", 30.0, 80.0, 1.8 / 3600
    h["BMAJ"], h["BMIN"], h["BPA"] = 5.4 / 3600, 5.4 / 3600, 0.0
    h["BUNIT"] = "Jy/beam"
    fits.PrimaryHDU(data, h).writeto(path)
    return path


@pytest.mark.parametrize("background", ["inverted", "noise"])
def test_backgrounds_hold_no_real_source_and_the_truth_is_in_the_pixels(tmp_path, background):
    field = open_field(_field(tmp_path / "f.fits"))
    image, truth = inject_over_noise(field, background=background, n=12, seed=(0, 1))
    assert image.shape == field.shape and len(truth) == 12
    # the real source (peak 0.05 Jy/beam at x=y=60) is gone: a hole, or noise only
    assert image[60, 60] < 0.01
    if background == "inverted":
        assert image[60, 60] < -0.04
        # no injected source on the hole or its wings (3 beams around its emission)
        d = np.hypot(truth["x"] - 60, truth["y"] - 60)
        assert d.min() > 3 * 3.0
    # each injected peak stands at its place above the background it was put on
    xi, yi = np.round(truth["x"]).astype(int), np.round(truth["y"]).astype(int)
    assert np.all(image[yi, xi] > 0.5 * np.asarray(truth["peak_flux"]))
    again, truth2 = inject_over_noise(field, background=background, n=12, seed=(0, 1))
    np.testing.assert_array_equal(image, again)
    np.testing.assert_array_equal(truth["x"], truth2["x"])
    with pytest.raises(ValueError, match="background"):
        inject_over_noise(field, background="residual", n=1, seed=(0,))
    field.close()


def test_first_injected_set_is_built_with_first_pybdsfs_split(tmp_path, real_data):
    from astrodet.data.coco import load_coco_json
    from astrodet.sky.labels import first_items, first_split

    root = build_first_injected(
        tmp_path / "set", real_data=real_data, copies=1, area_per_source=5000, progress=False
    )
    settings = json.loads((root / "settings.json").read_text())
    assert settings["background"] == "inverted"
    split = first_split(first_items(real_data))
    for side in ("train", "test"):
        stems = {p.name.rsplit("_c", 1)[0] for p in (root / "fields" / side).glob("*.fits")}
        assert stems and all(split[s] == side for s in stems)
        assert not list((root / "fields" / side).glob(".*"))  # no original left behind
    held_out = sorted(p.stem for p in (root / "fields" / "held_out").glob("*.fits"))
    assert held_out and all(split[s] == "test" for s in held_out)
    train = load_coco_json(str(root / "train/annotations.json"), str(root / "train/images"))
    n_boxes = sum(len(d["annotations"]) for d in train)
    assert n_boxes >= settings["counts"]["train"]["injected"]  # overlapping tiles: seen again
    # the same settings: kept as it is; other settings: rebuilt
    mtime = (root / "settings.json").stat().st_mtime_ns
    build_first_injected(root, real_data=real_data, copies=1, area_per_source=5000, progress=False)
    assert (root / "settings.json").stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="background"):
        build_first_injected(root, real_data=real_data, background="residual")


def test_first_injected_root_and_loader_follow_the_tile(tmp_path, monkeypatch):
    from astrodet.sky import truth_set

    monkeypatch.setenv("ASTRODET_DATASETS", str(tmp_path))
    assert truth_set.first_injected_root() == tmp_path / "first_injected"
    assert truth_set.first_injected_root(64) == tmp_path / "first_injected_t64"
    built = []

    def fake_build(root, **kwargs):
        built.append((Path(root), kwargs))
        raise RuntimeError("stop after the build")

    monkeypatch.setattr(truth_set, "build_first_injected", fake_build)
    root = truth_set.first_injected_root(64)
    with pytest.raises(RuntimeError, match="stop after the build"):
        truth_set.load_first_injected_coco(
            root / "train" / "annotations.json", root / "train" / "images", tile=64
        )
    assert built == [(root.resolve(), {"size": 64, "train_stride": 32})]
    # a json file elsewhere is read as it is, never built
    elsewhere = tmp_path / "mine" / "train" / "annotations.json"
    with pytest.raises(FileNotFoundError):
        truth_set.load_first_injected_coco(elsewhere, elsewhere.parent / "images", tile=64)
    assert len(built) == 1


def test_first_injected_dataloader_config_carries_the_tile():
    from astrodet.config import LazyConfig

    root = Path(__file__).resolve().parents[2] / "configs"
    cfg = LazyConfig.load(str(root / "common" / "data" / "first_injected.py"))
    assert cfg.dataloader.tile_size == 48 and cfg.dataloader.train.dataset.tile == 48
    assert cfg.dataloader.tile_overlap == 16
