"""tools/bench/sky.py helpers: the mirrored field PyBDSF is scored on against itself."""

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
