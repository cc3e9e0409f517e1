"""Background maps and source measurement on synthetic Gaussians of known flux and shape."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.wcs import WCS

from astrodet.sky.field import Beam
from astrodet.sky.measure import background_map, measure_sources

K = 2.0 * math.sqrt(2.0 * math.log(2.0))  # FWHM / sigma
SCALE = 2.0  # arcsec per pixel
BEAM = Beam(6.0, 6.0, 0.0)  # 3 pixels


def _wcs(flip_x=False):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    w.wcs.crval = [150.0, -30.0]
    w.wcs.crpix = [64.0, 64.0]
    w.wcs.cdelt = [(1 if flip_x else -1) * SCALE / 3600, SCALE / 3600]
    return w


def _gaussian(shape, x0, y0, peak, maj_arcsec, min_arcsec, pa_deg, *, east_sign=-1):
    """A Gaussian whose major axis points ``pa`` east of north; north is +y, east is
    ``east_sign`` * x."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    sa, sb = maj_arcsec / SCALE / K, min_arcsec / SCALE / K
    pa = math.radians(pa_deg)
    ux, uy = east_sign * math.sin(pa), math.cos(pa)  # major axis in pixels
    dx, dy = xx - x0, yy - y0
    a = dx * ux + dy * uy
    b = -dx * uy + dy * ux
    return peak * np.exp(-0.5 * ((a / sa) ** 2 + (b / sb) ** 2))


def _total(peak, maj, mn):
    beam_area = 2 * math.pi * BEAM.maj * BEAM.min / K**2 / SCALE**2
    return peak * 2 * math.pi * (maj / SCALE / K) * (mn / SCALE / K) / beam_area


@pytest.mark.parametrize("pa", [0.0, 30.0, 100.0, 150.0])
def test_elongated_gaussian_flux_shape_and_pa(pa):
    rng = np.random.default_rng(1)
    img = _gaussian((128, 128), 60.3, 70.6, 0.05, 20.0, 10.0, pa) + rng.normal(0, 5e-4, (128, 128))
    img += 0.002  # a background level
    bkg, rms = background_map(img, beam_pixels=3.0)
    assert np.nanmedian(rms) == pytest.approx(5e-4, rel=0.15)
    box = np.array([[50, 60, 71, 81]])
    t = measure_sources(img, box, rms=rms, bkg=bkg, beam=BEAM, pixel_scale=SCALE, wcs=_wcs())
    (s,) = t
    assert s["x"] == pytest.approx(60.3, abs=0.1) and s["y"] == pytest.approx(70.6, abs=0.1)
    assert s["peak_flux"] == pytest.approx(0.05, rel=0.05)
    assert s["total_flux"] == pytest.approx(_total(0.05, 20.0, 10.0), rel=0.05)
    assert s["maj"] == pytest.approx(20.0, rel=0.1) and s["min"] == pytest.approx(10.0, rel=0.1)
    assert abs((s["pa"] - pa + 90) % 180 - 90) < 3.0
    assert s["snr"] == pytest.approx(0.05 / 5e-4, rel=0.2)
    ra, dec = _wcs().all_pix2world(s["x"], s["y"], 0)
    assert (s["ra"], s["dec"]) == pytest.approx((float(ra), float(dec)))


def test_pa_follows_the_wcs_orientation():
    # East to the right (CDELT1 > 0): the same pixels mean the mirrored position angle.
    img = _gaussian((128, 128), 64, 64, 1.0, 20.0, 10.0, 30.0, east_sign=+1)
    rms = np.full(img.shape, 1e-3)
    (s,) = measure_sources(
        img,
        [[50, 50, 79, 79]],
        rms=rms,
        bkg=None,
        beam=BEAM,
        pixel_scale=SCALE,
        wcs=_wcs(flip_x=True),
    )
    assert s["pa"] == pytest.approx(30.0, abs=2.0)
    (s,) = measure_sources(
        img, [[50, 50, 79, 79]], rms=rms, bkg=None, beam=BEAM, pixel_scale=SCALE, wcs=None
    )
    assert s["pa"] == pytest.approx(150.0, abs=2.0)  # north up, east left assumed
    assert np.isnan(s["ra"])


def test_point_source_in_an_mgcls_fwhm_box_gets_its_full_flux():
    rng = np.random.default_rng(2)
    img = _gaussian((96, 96), 40.0, 50.0, 0.01, 6.0, 6.0, 0.0) + rng.normal(0, 2e-4, (96, 96))
    bkg, rms = background_map(img, beam_pixels=3.0)
    # The bounding box of the FWHM ellipse: 3 x 3 pixels about the centre (COCO convention).
    box = np.array([[40.5 - 1.5, 50.5 - 1.5, 40.5 + 1.5, 50.5 + 1.5]])
    (s,) = measure_sources(
        img, box, rms=rms, bkg=bkg, beam=BEAM, pixel_scale=SCALE, offset=(100, 200)
    )
    assert s["total_flux"] == pytest.approx(0.01, rel=0.1)  # a point source: total = peak
    assert (s["x"], s["y"]) == pytest.approx((140.0, 250.0), abs=0.15)
    assert s["maj"] == pytest.approx(6.0, rel=0.15)
    assert s["score"] == 1.0
    assert (s["ra"], s["dec"]) != (s["ra"], s["dec"])  # NaN without a WCS


def test_background_map_follows_a_gradient_and_masks_nan():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:256, :256]
    img = 0.01 * xx / 255 + rng.normal(0, 1e-3, (256, 256))
    img[:20, :20] = np.nan
    bkg, rms = background_map(img, box=32)
    assert np.isnan(bkg[5, 5]) and np.isnan(rms[5, 5])
    assert bkg[128, 240] - bkg[128, 16] == pytest.approx(0.01 * 224 / 255, rel=0.15)
    assert np.nanmedian(rms) == pytest.approx(1e-3, rel=0.1)


def test_small_image_falls_back_to_a_global_estimate():
    rng = np.random.default_rng(4)
    img = 1.0 + rng.normal(0, 0.1, (20, 20))
    bkg, rms = background_map(img, box=16)
    assert np.ptp(bkg) == 0 and bkg[0, 0] == pytest.approx(1.0, abs=0.03)
    assert rms[0, 0] == pytest.approx(0.1, rel=0.2)


def test_field_background_is_read_tile_by_tile(tmp_path):
    from astropy.io import fits

    from astrodet.sky.field import open_field

    rng = np.random.default_rng(5)
    img = (rng.normal(0, 1e-3, (300, 260)) + 0.5).astype(np.float32)
    h = _wcs().to_header()
    h["BMAJ"] = h["BMIN"] = 6.0 / 3600
    h["BPA"] = 0.0
    fits.PrimaryHDU(img, h).writeto(tmp_path / "f.fits")
    with open_field(tmp_path / "f.fits") as f:
        bkg, rms = background_map(f, box=24, tile=100)
    assert bkg.shape == (300, 260) and np.isfinite(bkg).all()
    assert np.abs(bkg - 0.5).max() < 5e-4 and np.median(rms) == pytest.approx(1e-3, rel=0.1)


def test_position_from_the_box_not_a_neighbour_in_the_same_island():
    """Two sources 4 beams apart whose light joins above 3 rms: each one's position comes
    from its own box, not the flux-weighted centre of the joined island."""
    rng = np.random.default_rng(3)
    img = _gaussian((96, 96), 40.0, 48.0, 0.05, 18.0, 18.0, 0.0)
    img += _gaussian((96, 96), 52.0, 48.0, 0.02, 18.0, 18.0, 0.0)
    img += rng.normal(0, 5e-4, img.shape)
    bkg, rms = background_map(img, beam_pixels=3.0)
    boxes = np.array([[35.5, 43.5, 45.5, 53.5], [47.5, 43.5, 57.5, 53.5]])  # FWHM boxes
    t = measure_sources(img, boxes, rms=rms, bkg=bkg, beam=BEAM, pixel_scale=SCALE, wcs=_wcs())
    # each box holds the near wing of its neighbour: the centroid stays within 0.2 beam
    assert t["x"][0] == pytest.approx(40.0, abs=0.6) and t["x"][1] == pytest.approx(52.0, abs=0.6)
    assert t["y"][0] == pytest.approx(48.0, abs=0.1) and t["y"][1] == pytest.approx(48.0, abs=0.1)


def test_galactic_image_gives_icrs_positions_and_equatorial_pa():
    from astropy.coordinates import SkyCoord

    # a Galactic-plane image (l, b axes; +y is Galactic north): a source elongated along b
    w = WCS(naxis=2)
    w.wcs.ctype = ["GLON-SIN", "GLAT-SIN"]
    w.wcs.crval = [30.0, 0.5]
    w.wcs.crpix = [65.0, 65.0]
    w.wcs.cdelt = [-SCALE / 3600, SCALE / 3600]
    img = _gaussian((128, 128), 64, 64, 1.0, 20.0, 10.0, 0.0)
    (s,) = measure_sources(
        img,
        [[50, 50, 79, 79]],
        rms=np.full(img.shape, 1e-3),
        bkg=None,
        beam=BEAM,
        pixel_scale=SCALE,
        wcs=w,
    )
    centre = SkyCoord(30.0, 0.5, unit="deg", frame="galactic")
    assert SkyCoord(s["ra"], s["dec"], unit="deg").separation(centre).arcsec < 0.5
    assert s["ra"] == pytest.approx(centre.icrs.ra.deg, abs=1e-4)
    # Galactic north seen from ICRS at that point: far from 0 there
    up = SkyCoord(30.0, 0.51, unit="deg", frame="galactic")
    expected = centre.icrs.position_angle(up.icrs).deg % 180.0
    assert abs(expected) > 20.0
    assert abs((s["pa"] - expected + 90) % 180 - 90) < 2.0


def _beam_box(x, y, maj, mn=None):
    """The bounding box of a circular-ish source's FWHM ellipse (the MGCLS convention),
    COCO pixel edges."""
    h = max(maj, mn or maj) / SCALE / 2.0
    return [x + 0.5 - h, y + 0.5 - h, x + 0.5 + h, y + 0.5 + h]


def test_peak_of_unresolved_sources_between_pixels_is_the_true_peak():
    """At 3 pixels per beam the brightest pixel is 0.86-1.00 of an unresolved source's
    peak, depending on where it falls on the grid: the measured peak is the true one."""
    rng = np.random.default_rng(7)
    positions = [(16.0 + 24 * (k % 6), 16.0 + 24 * (k // 6)) for k in range(36)]
    positions = [(x + rng.uniform(-0.5, 0.5), y + rng.uniform(-0.5, 0.5)) for x, y in positions]
    positions[0] = (16.5, 16.5)  # on a pixel corner: the brightest pixel is 0.86 of the peak
    peaks = rng.uniform(0.01, 0.1, len(positions))
    img = sum(_gaussian((160, 160), x, y, p, 6.0, 6.0, 0.0) for (x, y), p in zip(positions, peaks))
    rms = np.full(img.shape, 1e-4)
    boxes = [_beam_box(x, y, 6.0) for x, y in positions]
    t = measure_sources(img, boxes, rms=rms, bkg=None, beam=BEAM, pixel_scale=SCALE)
    brightest = np.array([img[int(round(y)), int(round(x))] for x, y in positions]) / peaks
    assert brightest.min() < 0.87  # what the brightest pixel gave
    assert np.asarray(t["peak_flux"]) / peaks == pytest.approx(1.0, abs=0.01)
    # the S/N (what a minimum-S/N cut reads) is the true peak's
    assert np.asarray(t["snr"]) == pytest.approx(peaks / 1e-4, rel=0.01)
    assert np.asarray(t["x"]) == pytest.approx([x for x, _ in positions], abs=0.02)
    assert np.asarray(t["y"]) == pytest.approx([y for _, y in positions], abs=0.02)


def test_total_flux_of_neighbours_is_each_ones_own():
    """Two point sources 2 beams apart: each one's box grown by a beam holds the other;
    each total flux is its own."""
    rng = np.random.default_rng(8)
    a, b = (40.3, 48.2, 0.02), (46.3, 48.6, 0.008)  # 6 px = 2 beams apart
    img = _gaussian((96, 96), *a, 6.0, 6.0, 0.0) + _gaussian((96, 96), *b, 6.0, 6.0, 0.0)
    img += rng.normal(0, 2e-4, img.shape)
    bkg, rms = background_map(img, beam_pixels=3.0)
    boxes = [_beam_box(a[0], a[1], 6.0), _beam_box(b[0], b[1], 6.0)]
    t = measure_sources(img, boxes, rms=rms, bkg=bkg, beam=BEAM, pixel_scale=SCALE)
    assert t["total_flux"][0] == pytest.approx(a[2], rel=0.05)  # point sources: total = peak
    assert t["total_flux"][1] == pytest.approx(b[2], rel=0.05)
    assert np.asarray(t["peak_flux"]) == pytest.approx([a[2], b[2]], rel=0.05)
    # a resolved neighbour 2.5 of its own FWHM away, brighter in total than the point source
    c = (47.5, 48.2, 0.01)
    img = _gaussian((96, 96), *a, 6.0, 6.0, 0.0) + _gaussian((96, 96), *c, 12.0, 9.0, 60.0)
    img += rng.normal(0, 2e-4, img.shape)
    boxes = [_beam_box(a[0], a[1], 6.0), _beam_box(c[0], c[1], 12.0)]
    t = measure_sources(
        img, boxes, rms=np.full(img.shape, 2e-4), bkg=None, beam=BEAM, pixel_scale=SCALE
    )
    assert t["total_flux"][0] == pytest.approx(a[2], rel=0.05)
    assert t["total_flux"][1] == pytest.approx(_total(c[2], 12.0, 9.0), rel=0.05)


def test_total_flux_of_isolated_and_resolved_sources():
    """An isolated point source within 3 %; elliptical sources of 1-3 beams within 5 %, at
    S/N 20-50 on a 3 px beam."""
    rng = np.random.default_rng(9)
    shapes = [
        (6.0, 6.0, 0.0),
        (9.0, 6.0, 20.0),
        (12.0, 8.0, 75.0),
        (18.0, 10.0, 140.0),
        (15.0, 15.0, 0.0),
    ]
    centres = [(30.3 + 48 * k, 40.6) for k in range(len(shapes))]
    peaks = [0.01, 0.008, 0.006, 0.005, 0.004]  # S/N 50 to 20 (noise 2e-4)
    img = rng.normal(0, 2e-4, (96, 256))
    for (x, y), p, (maj, mn, pa) in zip(centres, peaks, shapes):
        img += _gaussian(img.shape, x, y, p, maj, mn, pa)
    boxes = [_beam_box(x, y, maj) for (x, y), (maj, _, _) in zip(centres, shapes)]
    bkg, rms = background_map(img, beam_pixels=3.0)
    t = measure_sources(img, boxes, rms=rms, bkg=bkg, beam=BEAM, pixel_scale=SCALE, wcs=_wcs())
    truth = [_total(p, maj, mn) for p, (maj, mn, _) in zip(peaks, shapes)]
    assert t["total_flux"][0] == pytest.approx(truth[0], rel=0.03)
    assert np.asarray(t["total_flux"]) == pytest.approx(truth, rel=0.05)
    assert np.asarray(t["peak_flux"]) == pytest.approx(peaks, rel=0.05)
    for (maj, mn, pa), s in zip(shapes[1:4], t[1:4]):
        assert (s["maj"], s["min"]) == pytest.approx((maj, mn), rel=0.1)
        assert abs((s["pa"] - pa + 90) % 180 - 90) < 5.0


def test_a_source_that_is_not_one_gaussian_keeps_its_light():
    """Two blended components in one box, not deblended: one Gaussian fits them badly, and
    the total flux is still the light of both."""
    img = _gaussian((96, 96), 44.0, 48.0, 0.02, 6.0, 6.0, 0.0)
    img += _gaussian((96, 96), 48.5, 48.0, 0.015, 6.0, 6.0, 0.0)  # 1.5 beams apart
    rms = np.full(img.shape, 2e-4)
    (s,) = measure_sources(img, [[41, 45, 52, 52]], rms=rms, bkg=None, beam=BEAM, pixel_scale=SCALE)
    assert s["total_flux"] == pytest.approx(0.035, rel=0.03)
    assert s["peak_flux"] == pytest.approx(img.max(), rel=0.05)  # the light's own peak


def test_faint_point_source_is_fitted_with_the_elongated_beam():
    """FIRST's southern beam, 6.8" x 5.4" north-south, on 1.8" pixels: a faint point source
    (too few pixels for a free size) is fitted with the beam's own shape and orientation."""
    scale, beam = 1.8, Beam(6.8, 5.4, 0.0)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, -5.0]
    w.wcs.crpix = [32.0, 32.0]
    w.wcs.cdelt = [-scale / 3600, scale / 3600]
    yy, xx = np.mgrid[:64, :64].astype(float)
    sx, sy = 5.4 / scale / K, 6.8 / scale / K  # north is +y
    x0, y0, peak = 30.5, 31.4, 1.5e-3  # S/N 15, on a pixel edge
    img = peak * np.exp(-0.5 * (((xx - x0) / sx) ** 2 + ((yy - y0) / sy) ** 2))
    (s,) = measure_sources(
        img, [[28.5, 29, 33.5, 35]], rms=np.full(img.shape, 1e-4), bkg=None, beam=beam,
        pixel_scale=scale, wcs=w,
    )  # fmt: skip
    assert s["peak_flux"] == pytest.approx(peak, rel=0.01)
    assert s["total_flux"] == pytest.approx(peak, rel=0.01)  # unresolved: total = peak
    assert (s["maj"], s["min"], s["pa"]) == (6.8, 5.4, 0.0)  # the beam's
