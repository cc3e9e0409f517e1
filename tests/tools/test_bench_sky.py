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
    # correlated over the 3 px beam: neighbours alike, unlike white noise
    corr = np.corrcoef(added[:, :-1].ravel(), added[:, 1:].ravel())[0, 1]
    assert corr > 0.7
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


@pytest.mark.parametrize("kwargs", [{"added_noise": -0.5}, {"split": "val"}])
def test_bad_heldout_options_fail_before_any_output(sky, tmp_path, kwargs):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="added-noise|split"):
        sky.score_first_heldout(weights=tmp_path / "w.pth", output=out, **kwargs)
    assert not out.exists()
