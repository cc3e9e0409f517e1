"""The peak between pixels, the beam on the pixel grid, Gaussians fitted together."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.wcs import WCS

from astrodet.sky.field import Beam
from astrodet.sky.fitting import beam_shape_pixels, fit_gaussians, interpolated_peak

K = 2.0 * math.sqrt(2.0 * math.log(2.0))


def _gauss(shape, x0, y0, peak, sa, sb, theta):
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    dx, dy = xx - x0, yy - y0
    a = dx * math.cos(theta) + dy * math.sin(theta)
    b = -dx * math.sin(theta) + dy * math.cos(theta)
    return peak * np.exp(-0.5 * ((a / sa) ** 2 + (b / sb) ** 2))


@pytest.mark.parametrize("sa, sb, theta", [(1.27, 1.27, 0.0), (2.5, 1.3, 0.6), (4.0, 1.5, 2.2)])
def test_interpolated_peak_is_exact_for_any_gaussian(sa, sb, theta):
    rng = np.random.default_rng(0)
    for _ in range(20):
        x0, y0 = 10 + rng.uniform(-0.5, 0.5, 2)
        img = _gauss((21, 21), x0, y0, 2.0, sa, sb, theta)
        r, c = np.unravel_index(np.argmax(img), img.shape)
        peak, x, y = interpolated_peak(img, row=r, column=c)
        assert (peak, x, y) == pytest.approx((2.0, x0, y0), rel=1e-6, abs=1e-6)


def test_interpolated_peak_falls_back_at_edges_and_on_non_positive_pixels():
    img = _gauss((9, 9), 0.3, 4.0, 1.0, 1.3, 1.3, 0.0)
    assert interpolated_peak(img, row=4, column=0) == (img[4, 0], 0.0, 4.0)  # the edge
    img = _gauss((9, 9), 4.2, 4.0, 1.0, 1.3, 1.3, 0.0)
    img[3, 3] = -0.1  # a corner below zero: the two axes apart, still the true peak
    peak, x, _ = interpolated_peak(img, row=4, column=4)
    assert peak == pytest.approx(1.0, rel=1e-6) and x == pytest.approx(4.2, abs=1e-6)
    img[4, 5] = np.nan  # a NaN beside it: the pixel
    assert interpolated_peak(img, row=4, column=4)[0] == img[4, 4]


def _wcs(east_left=True):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 0.0]
    w.wcs.crpix = [50.0, 50.0]
    w.wcs.cdelt = [(-1 if east_left else 1) * 1.8 / 3600, 1.8 / 3600]
    return w


@pytest.mark.parametrize("east_left", [True, False])
def test_beam_on_the_pixel_grid_follows_north_and_east(east_left):
    sa, sb, theta = beam_shape_pixels(
        Beam(6.4, 5.4, 0.0), pixel_scale=1.8, wcs=_wcs(east_left), x=49, y=49
    )
    assert (sa, sb) == pytest.approx((6.4 / 1.8 / K, 5.4 / 1.8 / K))
    assert math.cos(theta) == pytest.approx(0.0, abs=1e-3) and math.sin(theta) > 0  # north: +y
    _, _, theta = beam_shape_pixels(Beam(9.0, 5.0, 30.0), pixel_scale=1.8, wcs=_wcs(east_left))
    east = -1.0 if east_left else 1.0
    assert abs(math.sin(theta - math.atan2(math.cos(math.radians(30)), east * 0.5))) < 1e-3
    # without a WCS: north up, east left
    _, _, theta = beam_shape_pixels(Beam(9.0, 5.0, 30.0), pixel_scale=1.8)
    assert abs(math.sin(theta - math.atan2(math.cos(math.radians(30)), -0.5))) < 1e-9


def test_gaussians_sharing_an_island_are_fitted_together():
    shape = (40, 40)
    a = (15.3, 20.0, 1.0, 1.27, 1.27, 0.0)
    b = (20.6, 20.4, 0.5, 2.5, 1.5, 0.7)
    img = _gauss(shape, *a) + _gauss(shape, *b)
    yy, xx = np.nonzero(img > 0.02)
    initial = [
        dict(amplitude=0.9, x=15, y=20, sigma_major=1.3, sigma_minor=1.3, theta=0.0,
             fixed_shape=True),
        dict(amplitude=0.4, x=21, y=20, sigma_major=2.0, sigma_minor=2.0, theta=0.0,
             fixed_shape=False),
    ]  # fmt: skip
    fits = fit_gaussians(
        img[yy, xx], xx.astype(float), yy.astype(float), weights=np.ones(len(xx)),
        initial=initial, beam_shape=(1.27, 1.27, 0.0), max_sigma=10.0,
    )  # fmt: skip
    for fit, truth in zip(fits, (a, b)):
        got = [fit[k] for k in ("x", "y", "amplitude", "sigma_major", "sigma_minor")]
        assert got == pytest.approx(truth[:5], abs=1e-3)
    assert math.sin(fits[1]["theta"] - 0.7) == pytest.approx(0.0, abs=1e-3)
    # too few pixels for the free parameters: nothing fitted
    few = fit_gaussians(
        img[yy[:8], xx[:8]], xx[:8].astype(float), yy[:8].astype(float), weights=np.ones(8),
        initial=initial, beam_shape=(1.27, 1.27, 0.0), max_sigma=10.0,
    )  # fmt: skip
    assert few == [None, None]
