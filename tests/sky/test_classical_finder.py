"""The classical finder over a FITS field, tile by tile, through the finder registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from astrodet.sky.field import open_field
from astrodet.sky.finders import build_finder

K = 2.0 * math.sqrt(2.0 * math.log(2.0))


def _field(tmp_path, sources, shape=(300, 340), noise=1e-4):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    img = rng.normal(0, noise, shape) + 3e-4
    sigma = 3.0 / K  # beam 6" at 2"/px: 3 px FWHM
    for x, y, peak in sources:
        img += peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    img[:10, :] = np.nan  # a blanked edge, as mosaics have
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval = [150.0, -30.0]
    w.wcs.crpix = [170.0, 150.0]
    w.wcs.cdelt = [-2 / 3600, 2 / 3600]
    h = w.to_header()
    h["BMAJ"] = h["BMIN"] = 6.0 / 3600
    h["BPA"] = 0.0
    path = tmp_path / "field.fits"
    fits.PrimaryHDU(img.astype(np.float32)[None, None], h).writeto(path)
    return path


SOURCES = [
    (40.2, 50.7, 5e-3),
    (128.0, 128.0, 2e-3),
    (130.0, 250.0, 1e-3),
    (300.5, 200.2, 4e-3),
    (200.0, 131.0, 8e-4),
]


@pytest.mark.parametrize("tile_size", [2048, 128])
def test_each_source_found_once_with_flux_and_position(tmp_path, tile_size):
    path = _field(tmp_path, SOURCES)
    finder = build_finder("classical", tile_size=tile_size, overlap_beams=12)
    assert finder.name == "classical"
    with open_field(path) as f:
        cat = finder.find(f)
        ra, dec = f.pixel_to_world([s[0] for s in SOURCES], [s[1] for s in SOURCES])
    assert len(cat) == len(SOURCES)
    assert list(cat["source_id"]) == list(range(len(SOURCES)))
    assert (cat["score"] == 1).all() and cat.meta["BEAM_MAJ"] == 6.0
    for (x, y, peak), r, d in zip(SOURCES, ra, dec):
        k = int(np.argmin(np.hypot(cat["x"] - x, cat["y"] - y)))
        assert math.hypot(cat["x"][k] - x, cat["y"][k] - y) < 0.3
        # On the sky: within the 0.3 px (0.6") of the pixel position.
        dra = (cat["ra"][k] - r) * math.cos(math.radians(d))
        assert math.hypot(dra, cat["dec"][k] - d) * 3600 < 0.6
        assert cat["peak_flux"][k] == pytest.approx(peak, rel=0.15)
        # Point sources: total = peak; the sum over ~100 noisy pixels gives faint ones
        # (S/N 8) an error of about 15 %.
        assert cat["total_flux"][k] == pytest.approx(peak, rel=0.15 if peak >= 2e-3 else 0.45)
        assert cat["rms"][k] == pytest.approx(1e-4, rel=0.2)
        # Moment sizes are noisy near the threshold (S/N 8 here).
        assert cat["maj"][k] == pytest.approx(6.0, rel=0.25 if peak >= 1e-3 else 0.5)


def test_unknown_finder_lists_the_known_ones():
    with pytest.raises(ValueError, match="classical"):
        build_finder("sextractor")


def test_against_pybdsf_on_a_real_image(real_data, tmp_path):
    """The real PyBDSF test image and its source list: the classical finder recovers the
    bright sources with PyBDSF's fluxes (multi-Gaussian islands are not split, so faint
    neighbours are missed)."""
    from astrodet.sky.catalogue import write_catalogue
    from astrodet.sky.crossmatch import compare_catalogues

    folder = real_data / "pybdsf_test"
    with open_field(folder / "ch0_I.fits") as f:
        cat = build_finder("classical").find(f)
    write_catalogue(cat, tmp_path / "classical", formats=["fits"])
    m = compare_catalogues(
        reference=folder / "catalogue.srl.FITS",
        catalog=tmp_path / "classical.fits",
        output_dir=tmp_path / "cmp",
    )
    assert m["radius_arcsec"] == pytest.approx(27.0)  # half the 54" beam
    assert m["reliability"] > 0.8 and m["completeness"] > 0.6
    bright = [b for b in m["snr_bins"] if b["snr_min"] >= 20]
    assert sum(b["n_matched"] for b in bright) >= 0.85 * sum(b["n_reference"] for b in bright)
    # above S/N 10 (a field of mostly compact sources): both at least 0.9
    above = [b for b in m["snr_bins"] if b["snr_min"] >= 10]
    found = sum(b["n_catalog"] for b in above)
    in_reference = sum(round(b["reliability"] * b["n_catalog"]) for b in above if b["n_catalog"])
    assert sum(b["n_matched"] for b in above) >= 0.9 * sum(b["n_reference"] for b in above)
    assert in_reference >= 0.9 * found
    assert 0.85 < m["median_flux_ratio"] < 1.2


def test_real_first_field_gets_its_beam(real_data):
    path = sorted((real_data / "mirabest" / "FITS_subset").glob("*.fits"))[0]
    with open_field(path) as f:  # no beam keys: FIRST's beam at Dec -9.3
        assert (f.beam.maj, f.beam.min, f.beam.pa) == (6.8, 5.4, 0.0)
        assert f.pixel_scale == pytest.approx(1.8, rel=0.01)
        cat = build_finder("classical").find(f)
    # A MiraBest cutout is centred on a bright radio galaxy.
    assert len(cat) >= 1 and cat["snr"].max() > 20
    assert np.isfinite(cat["ra"]).all()
