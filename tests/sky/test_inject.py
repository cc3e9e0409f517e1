"""Injected sources: deterministic for a seed, their pixels what the truth says (peak, total
flux, position, shape), placed off masks, edges and each other; fields written in their own
units and axes, the inverted field exactly minus the original."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from astropy.io import fits

from astrodet.sky import FieldError, open_field, read_catalogue
from astrodet.sky.inject import emission_mask, gaussian_model, inject_field, inject_sources

K = 2.0 * math.sqrt(2.0 * math.log(2.0))


def _moments(stamp, x0=0, y0=0):
    """Flux, centroid and FWHM/PA (deg from +y towards -x) of a noiseless stamp."""
    yy, xx = np.mgrid[: stamp.shape[0], : stamp.shape[1]]
    w = stamp.sum()
    cx, cy = (stamp * xx).sum() / w, (stamp * yy).sum() / w
    cxx = (stamp * (xx - cx) ** 2).sum() / w
    cyy = (stamp * (yy - cy) ** 2).sum() / w
    cxy = (stamp * (xx - cx) * (yy - cy)).sum() / w
    vals, vecs = np.linalg.eigh(np.array([[cxx, cxy], [cxy, cyy]]))
    v = vecs[:, 1]
    pa = math.degrees(math.atan2(-v[0], v[1])) % 180.0
    return w, cx + x0, cy + y0, K * math.sqrt(vals[1]), K * math.sqrt(vals[0]), pa


def _pa_close(a, b, tol=0.5):
    d = abs((a - b + 90.0) % 180.0 - 90.0)
    return d < tol


def test_same_seed_same_sources_other_seed_others():
    image = np.zeros((150, 150), np.float32)
    kw = dict(beam_pixels=(4.0, 3.0, 20.0), rms=1e-3, n=8, resolved_fraction=0.5)
    a_img, a = inject_sources(image, seed=3, **kw)
    b_img, b = inject_sources(image, seed=3, **kw)
    c_img, c = inject_sources(image, seed=4, **kw)
    np.testing.assert_array_equal(a_img, b_img)
    for col in ("x", "y", "peak_flux", "total_flux", "maj", "min", "pa", "snr"):
        np.testing.assert_array_equal(a[col], b[col])
    assert not np.allclose(a["x"], c["x"])
    assert not np.array_equal(a_img, c_img)
    assert image.max() == 0  # the input is left alone


def test_model_pixels_are_what_the_truth_says():
    """Each source measured on the noiseless model: flux, centre, peak and shape."""
    image = np.zeros((500, 500), np.float32)
    bmaj, bmin, bpa = 4.5, 3.0, 30.0
    # far apart, so that each stamp holds one source whole
    injected, truth = inject_sources(
        image,
        beam_pixels=(bmaj, bmin, bpa),
        rms=2e-4,
        n=10,
        seed=1,
        resolved_fraction=0.5,
        pixel_scale=2.0,
        min_separation_beams=18,
    )
    assert len(truth) == 10 and truth.meta["N_PLACED"] == 10
    assert set(truth["resolved"]) == {0, 1}
    beam_area = 2 * math.pi * bmaj * bmin / K**2
    model = injected.astype(np.float64)
    for row in truth:
        x, y = float(row["x"]), float(row["y"])
        r = 22
        x0, y0 = int(round(x)) - r, int(round(y)) - r
        stamp = model[y0 : y0 + 2 * r + 1, x0 : x0 + 2 * r + 1]
        flux, cx, cy, maj, mn, pa = _moments(stamp, x0, y0)
        assert flux / beam_area == pytest.approx(row["total_flux"], rel=1e-3)
        assert (cx, cy) == pytest.approx((x, y), abs=1e-3)
        # maj/min in arcsec at 2"/px, the position angle north up
        assert maj * 2.0 == pytest.approx(row["maj"], rel=1e-3)
        assert mn * 2.0 == pytest.approx(row["min"], rel=1e-3)
        assert _pa_close(pa, row["pa"])
        # total = peak x (maj min) / (bmaj bmin): the beam's own shape for unresolved ones
        assert row["total_flux"] == pytest.approx(
            row["peak_flux"] * row["maj"] * row["min"] / (4 * bmaj * bmin), rel=1e-9
        )
        if not row["resolved"]:
            assert (row["maj"], row["min"]) == pytest.approx((2 * bmaj, 2 * bmin))
            assert _pa_close(row["pa"], bpa)
        else:
            assert row["maj"] > 2 * bmaj * 1.3  # at least a beam of intrinsic size added
        # the pixels are the truth's Gaussian (peak, centre, shape) to float32 rounding
        one = gaussian_model(
            (2 * r + 1, 2 * r + 1),
            x=[x - x0],
            y=[y - y0],
            peak=[row["peak_flux"]],
            maj=[row["maj"] / 2.0],
            min=[row["min"] / 2.0],
            pa=[row["pa"]],
        )
        np.testing.assert_allclose(stamp, one, rtol=0, atol=1e-6 * row["peak_flux"])
        assert stamp.max() <= row["peak_flux"] * (1 + 1e-6)
        assert row["snr"] == pytest.approx(row["peak_flux"] / 2e-4)
    assert np.all((truth["snr"] >= 3) & (truth["snr"] < 100))


def test_sources_avoid_mask_edges_blanks_and_each_other():
    rng = np.random.default_rng(0)
    image = rng.normal(0, 1.0, (300, 300)).astype(np.float32)
    image[:40, 200:] = np.nan  # a blanked corner
    avoid = np.zeros(image.shape, bool)
    avoid[100:200, 100:200] = True
    beam = 3.0
    _, truth = inject_sources(
        image, beam_pixels=beam, rms=1.0, n=60, seed=2, avoid_mask=avoid, resolved_fraction=0.0
    )
    x, y = np.asarray(truth["x"]), np.asarray(truth["y"])
    assert len(truth) > 20
    ix, iy = np.rint(x).astype(int), np.rint(y).astype(int)
    assert not avoid[iy, ix].any()
    edge = 3 * beam
    assert (x >= edge).all() and (y >= edge).all()
    assert (x <= 299 - edge).all() and (y <= 299 - edge).all()
    # at least 3 beams from the blanked corner
    dx = np.maximum(200 - x, 0)
    dy = np.maximum(y - 39, 0)
    assert (np.hypot(dx, dy) >= edge - 1).all()
    d = np.hypot(x[:, None] - x[None], y[:, None] - y[None])
    assert d[np.triu_indices(len(x), 1)].min() >= 5 * beam


def test_more_sources_than_fit_places_what_fits_and_says_so(caplog):
    image = np.zeros((64, 64), np.float32)
    with caplog.at_level(logging.WARNING, logger="astrodet.sky.inject"):
        injected, truth = inject_sources(image, beam_pixels=3.0, rms=1.0, n=100, seed=0)
    assert 0 < len(truth) < 100
    assert truth.meta["N_ASKED"] == 100 and truth.meta["N_PLACED"] == len(truth)
    assert f"{len(truth)} of 100 sources placed" in caplog.text
    # the placed ones are all in the image
    beam_area = 2 * math.pi * 9 / K**2
    assert injected.sum() / beam_area == pytest.approx(float(truth["total_flux"].sum()), rel=1e-4)


def test_bad_arguments_are_named():
    image = np.zeros((50, 50))
    with pytest.raises(ValueError, match="snr_range"):
        inject_sources(image, beam_pixels=3, rms=1, n=1, snr_range=(5, 3))
    with pytest.raises(ValueError, match="avoid_mask"):
        inject_sources(image, beam_pixels=3, rms=1, n=1, avoid_mask=np.zeros((5, 5), bool))
    with pytest.raises(ValueError, match="2-D"):
        inject_sources(np.zeros((2, 50, 50)), beam_pixels=3, rms=1, n=1)


def test_emission_mask_grows_bright_pixels_by_beams():
    image = np.zeros((60, 60))
    image[30, 30] = 10.0
    mask = emission_mask(image, background=0.0, rms=1.0, beam_pixels=2.0, snr=4, grow_beams=3)
    assert mask[30, 36] and not mask[30, 37] and mask.sum() == pytest.approx(math.pi * 36, rel=0.1)
    assert not emission_mask(image * 0.1, background=0.0, rms=1.0, beam_pixels=2.0).any()


# --------------------------------------------------------------------------- fields
def _header(*, cdelt1=-2.0, bunit="Jy/beam", beam=True, axes4=False):
    h = fits.Header()
    h["CTYPE1"], h["CRVAL1"], h["CRPIX1"], h["CDELT1"] = "RA---SIN", 150.0, 60.0, cdelt1 / 3600
    h["CTYPE2"], h["CRVAL2"], h["CRPIX2"], h["CDELT2"] = "DEC--SIN", 30.0, 60.0, 2.0 / 3600
    if axes4:
        h["CTYPE3"], h["CRVAL3"], h["CRPIX3"], h["CDELT3"] = "FREQ", 1.4e9, 1.0, 1e6
        h["CTYPE4"], h["CRVAL4"], h["CRPIX4"], h["CDELT4"] = "STOKES", 1.0, 1.0, 1.0
    if beam:
        h["BMAJ"], h["BMIN"], h["BPA"] = 8.0 / 3600, 5.0 / 3600, 30.0
    h["BUNIT"] = bunit
    h["OBSERVER"] = "someone"
    return h


def _field(path, *, shape=(120, 120), scale=1.0, bright=True, **kw):
    rng = np.random.default_rng(5)
    data = rng.normal(0, 1e-4 / scale, shape).astype(np.float32)
    if bright:
        yy, xx = np.mgrid[: shape[-2], : shape[-1]]
        data[..., :, :] += (5e-2 / scale) * np.exp(-((xx - 60) ** 2 + (yy - 60) ** 2) / 4.0)
    fits.PrimaryHDU(data, _header(**kw)).writeto(path)
    return path


def test_inject_field_writes_injected_inverted_and_truth(tmp_path):
    path = _field(tmp_path / "f.fits", bunit="mJy/beam", scale=1e3)
    out = tmp_path / "out"
    with open_field(path) as field:
        assert field.flux_scale == 1e-3
        res = inject_field(field, n=6, seed=7, output_dir=out, resolved_fraction=0.0)
        ra, dec = field.pixel_to_world(res.truth["x"], res.truth["y"])
    truth = res.truth
    assert len(truth) == 6
    np.testing.assert_allclose(truth["ra"], ra)
    np.testing.assert_allclose(truth["dec"], dec)
    original = fits.getdata(path)
    with fits.open(res.injected) as h:
        injected, header = h[0].data, h[0].header
    # the original header, the file's own units (mJy/beam): the difference is the model x 1000
    assert header["OBSERVER"] == "someone" and header["BUNIT"] == "mJy/beam"
    assert header["INJECTN"] == 6 and header["INJSEED"] == 7
    diff = injected.astype(np.float64) - original
    for row in truth:
        ix, iy = int(round(row["x"])), int(round(row["y"]))
        assert diff[iy, ix] == pytest.approx(1e3 * row["peak_flux"], rel=0.2)
    beam_area = 2 * math.pi * 4 * 2.5 / K**2  # 8" x 5" at 2"/px
    assert diff.sum() / 1e3 / beam_area == pytest.approx(float(truth["total_flux"].sum()), rel=1e-3)
    # the bright source in the middle is masked: nothing injected within 3 beams of it
    assert (np.hypot(truth["x"] - 60, truth["y"] - 60) > 3 * field.beam_pixels()).all()
    # the inverted field: exactly minus the original
    np.testing.assert_array_equal(fits.getdata(res.inverted), -original)
    # unresolved sources: the beam's shape on the sky
    np.testing.assert_allclose(truth["maj"], 8.0, rtol=1e-3)
    np.testing.assert_allclose(truth["min"], 5.0, rtol=1e-3)
    assert all(_pa_close(p, 30.0) for p in truth["pa"])
    # the truth files, read back
    back = read_catalogue(out / "truth.fits")
    np.testing.assert_allclose(back["total_flux"], truth["total_flux"])
    assert len(read_catalogue(out / "truth.csv")) == 6
    # the same seed, the same sources; an existing output is refused without overwrite
    with open_field(path) as field:
        with pytest.raises(FileExistsError, match="overwrite"):
            inject_field(field, n=6, seed=7, output_dir=out, resolved_fraction=0.0)
        again = inject_field(
            field, n=6, seed=7, output_dir=out, resolved_fraction=0.0, overwrite=True
        )
    np.testing.assert_array_equal(again.truth["x"], truth["x"])
    np.testing.assert_array_equal(fits.getdata(again.injected), injected)


def test_east_to_the_right_mirrors_the_pixels_not_the_sky(tmp_path):
    """A field with CDELT1 > 0: the beam's PA on the sky stays, its pixel image mirrors."""
    path = _field(tmp_path / "f.fits", cdelt1=2.0, bright=False)
    with open_field(path) as field:
        res = inject_field(field, n=3, seed=0, output_dir=tmp_path / "o", resolved_fraction=0.0)
    assert all(_pa_close(p, 30.0) for p in res.truth["pa"])
    diff = fits.getdata(res.injected).astype(np.float64) - fits.getdata(path)
    row = res.truth[0]
    x0, y0 = int(round(row["x"])) - 10, int(round(row["y"])) - 10
    *_, pa_pixels = _moments(diff[y0 : y0 + 21, x0 : x0 + 21])
    assert _pa_close(pa_pixels, 150.0, tol=2.0)  # 30 deg east of north, east to the right


def test_cube_keeps_its_axes_and_every_channel_gets_the_sources(tmp_path):
    path = _field(tmp_path / "cube.fits", shape=(1, 2, 120, 120), axes4=True, bright=False)
    with open_field(path) as field:
        res = inject_field(field, n=4, seed=1, output_dir=tmp_path / "o")
    original = fits.getdata(path)
    injected = fits.getdata(res.injected)
    assert injected.shape == original.shape == (1, 2, 120, 120)
    diff = injected.astype(np.float64) - original
    np.testing.assert_allclose(diff[0, 0], diff[0, 1], atol=1e-7)
    assert diff[0, 0].max() > 0
    with open_field(res.injected) as back:  # read back as a field, the same plane
        np.testing.assert_allclose(back.read(0, 120, 0, 120), injected[0, 0])


def test_field_without_beam_is_a_clear_error(tmp_path):
    path = _field(tmp_path / "nobeam.fits", beam=False)
    with pytest.raises(FieldError, match=r"nobeam\.fits.*BMAJ.*--beam"):
        open_field(path)
    # with the beam given, the written images carry it for the next reader
    with open_field(path, beam=(6.0, 6.0, 0.0)) as field:
        res = inject_field(field, n=2, seed=0, output_dir=tmp_path / "o")
    with open_field(res.injected) as back:
        assert (back.beam.maj, back.beam.min) == pytest.approx((6.0, 6.0))
