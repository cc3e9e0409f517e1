"""tools/bench/sky.py helpers: the mirrored and the noisier fields PyBDSF is scored on
against itself."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from astrodet.sky.field import open_field

TOOL = Path(__file__).resolve().parents[2] / "tools" / "bench" / "sky.py"


@pytest.fixture(scope="module")
def sky():
    spec = importlib.util.spec_from_file_location("bench_sky", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("cd", [False, True])
def test_mirrored_field_keeps_the_sky(sky, tmp_path, cd):
    data = np.zeros((40, 50), np.float32)
    data[12, 7] = 1.0  # off centre in both axes
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval, w.wcs.crpix = [150.0, 20.0], [20.0, 15.0]
    if cd:
        w.wcs.cd = [[-1.8 / 3600, 0.3 / 3600], [0.2 / 3600, 1.8 / 3600]]
    else:
        w.wcs.cdelt = [-1.8 / 3600, 1.8 / 3600]
    h = w.to_header()
    h["BMAJ"] = h["BMIN"] = 5.4 / 3600
    h["BPA"] = 0.0
    fits.PrimaryHDU(data, h).writeto(tmp_path / "f.fits")
    out = sky.mirror_field(tmp_path / "f.fits", tmp_path / "m" / "f.fits")
    with open_field(tmp_path / "f.fits") as a, open_field(out) as b:
        ya, xa = np.unravel_index(np.argmax(a.read(0, 40, 0, 50)), (40, 50))
        yb, xb = np.unravel_index(np.argmax(b.read(0, 40, 0, 50)), (40, 50))
        assert (yb, xb) == (12, 49 - 7)
        np.testing.assert_allclose(a.pixel_to_world(xa, ya), b.pixel_to_world(xb, yb), atol=1e-9)
        assert b.beam == a.beam
    mtime = out.stat().st_mtime_ns
    sky.mirror_field(tmp_path / "f.fits", out)  # there already: left alone (cache key)
    assert out.stat().st_mtime_ns == mtime


def test_noisier_field_adds_beam_correlated_noise(sky, tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(0.0, 2e-4, (200, 240)).astype(np.float32)
    data[100, 120] = 0.05  # a bright source: the rms is sigma-clipped, it does not count
    data[:, :10] = np.nan  # blanked columns stay blank
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval, w.wcs.crpix, w.wcs.cdelt = [150.0, 2.0], [120.0, 100.0], [-1.8 / 3600, 1.8 / 3600]
    header = w.to_header()
    header["BMAJ"] = header["BMIN"] = 5.4 / 3600
    header["BPA"] = 0.0
    fits.PrimaryHDU(data, header).writeto(tmp_path / "f.fits")

    out = sky.noisier_field(tmp_path / "f.fits", tmp_path / "n" / "f.fits", fraction=0.5)
    with fits.open(out) as hdul:
        noisy, h = hdul[0].data, hdul[0].header
    assert h["CRVAL1"] == header["CRVAL1"] and h["BMAJ"] == header["BMAJ"]
    assert np.isnan(noisy[:, :10]).all() and np.isfinite(noisy[:, 10:]).all()
    added = (noisy - data)[:, 10:].astype(np.float64)
    assert added.std() == pytest.approx(0.5 * 2e-4, rel=0.1)
    # correlated like the 3 px beam (sigma 1.27 px): neighbours alike, unlike white noise,
    # as much as the beam makes them
    corr = np.corrcoef(added[:, :-1].ravel(), added[:, 1:].ravel())[0, 1]
    assert corr == pytest.approx(np.exp(-1.0 / (2 * (3.0 / 2.3548) ** 2)), abs=0.04)
    # the same noise on the same file name, another on another
    again = sky.noisier_field(tmp_path / "f.fits", tmp_path / "again" / "f.fits", fraction=0.5)
    np.testing.assert_array_equal(fits.getdata(again), noisy)
    (tmp_path / "g.fits").write_bytes((tmp_path / "f.fits").read_bytes())
    other = sky.noisier_field(tmp_path / "g.fits", tmp_path / "n" / "g.fits", fraction=0.5)
    assert not np.allclose(fits.getdata(other)[:, 10:], noisy[:, 10:])
    # there already: left alone (its PyBDSF run is cached by content)
    mtime = out.stat().st_mtime_ns
    sky.noisier_field(tmp_path / "f.fits", out, fraction=0.5)
    assert out.stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="fraction must be > 0"):
        sky.noisier_field(tmp_path / "f.fits", tmp_path / "z.fits", fraction=0.0)


def _correlation_width(noise: np.ndarray, lags=(1, 2, 3, 4)) -> float:
    """Gaussian width (pixels) of the noise's autocorrelation, from its values at a few
    lags along both axes: ln rho(L) = -L**2 / (2 width**2)."""
    rho = []
    for lag in lags:
        along_x = np.corrcoef(noise[:, :-lag].ravel(), noise[:, lag:].ravel())[0, 1]
        along_y = np.corrcoef(noise[:-lag].ravel(), noise[lag:].ravel())[0, 1]
        rho.append((along_x + along_y) / 2)
    lags = np.asarray(lags, float)
    slope = np.sum(lags**2 * -np.log(rho)) / np.sum(lags**4)  # least squares through 0
    return float(np.sqrt(1.0 / (2.0 * slope)))


def test_noisier_fields_noise_is_correlated_like_the_beam(sky, tmp_path):
    # a 6 px beam (10.8" at 1.8"/px): the added noise's autocorrelation has the beam's width
    # (sigma 2.55 px); a kernel of the beam's own sigma would give sqrt(2) times that
    data = np.random.default_rng(1).normal(0.0, 1e-4, (256, 256)).astype(np.float32)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval, w.wcs.crpix, w.wcs.cdelt = [150.0, 2.0], [128.0, 128.0], [-1.8 / 3600, 1.8 / 3600]
    header = w.to_header()
    header["BMAJ"] = header["BMIN"] = 10.8 / 3600
    header["BPA"] = 0.0
    fits.PrimaryHDU(data, header).writeto(tmp_path / "f.fits")
    out = sky.noisier_field(tmp_path / "f.fits", tmp_path / "n" / "f.fits", fraction=1.0)
    added = fits.getdata(out).astype(np.float64) - data
    beam_sigma = 6.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    assert _correlation_width(added) == pytest.approx(beam_sigma, rel=0.08)


@pytest.mark.parametrize("kwargs", [{"added_noise": -0.5}, {"split": "val"}])
def test_bad_heldout_options_fail_before_any_output(sky, tmp_path, kwargs):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="added-noise|split"):
        sky.score_first_heldout(weights=tmp_path / "w.pth", output=out, **kwargs)
    assert not out.exists()


def test_pooled_fields_keep_their_islands_apart_and_the_table_shows_them(sky, tmp_path):
    from astrodet.sky.catalogue import new_catalogue, write_catalogue

    # two fields whose PyBDSF islands are both numbered 0 and 1: four islands when pooled
    for name, dec in (("a", 2.0), ("b", 40.0)):
        ref = new_catalogue(
            ra=[150.0, 150.0 + 2 / 3600, 150.1],
            dec=[dec, dec, dec],
            snr=[30.0, 30.0, 12.0],
            island_id=[0, 0, 1],
        )
        found = new_catalogue(ra=[150.0 + 1 / 3600, 150.1], dec=[dec, dec], maj=[9.0, 6.0])
        found["min"], found["pa"] = [6.0, 6.0], [90.0, 0.0]
        write_catalogue(ref, tmp_path / "ref" / name, formats=["fits"])
        write_catalogue(found, tmp_path / "cat" / name, formats=["fits"])
    m = sky.compare_folders(
        reference_dir=tmp_path / "ref", catalog_dir=tmp_path / "cat", output=tmp_path / "out"
    )
    assert (m["n_islands"], m["n_islands_found"]) == (4, 4)
    assert m["island_completeness"] == 1.0 and m["island_reliability"] == 1.0
    # source level: each field's double is half matched
    assert m["n_matched"] == 4 and m["completeness"] == pytest.approx(4 / 6)
    summary = {"detector": {"metrics": m, "snr_ge_10": m["snr_ge_10"]}}
    table = sky.format_heldout(summary)
    assert "| islands | 4 | 1.00 | 1.00 (4) |" in table
    assert "| all | 6 | 0.67 | 1.00 (4) |" in table
