"""Pictures of whole fields: sky axes where there is a WCS, a stretch that keeps the noise
faint, ids that stay legible on crowded fields, a second table, binned survey fields."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from astrodet.sky import open_field
from astrodet.sky.catalogue import new_catalogue
from astrodet.visualize import (
    FIELD_COLOR,
    TRUTH_COLOR,
    draw_field,
    field_stretch,
    save_field_picture,
)

matplotlib.use("Agg")

PIXEL, BEAM, NOISE = 1.8, 5.4, 1e-4  # arcsec, arcsec, Jy/beam


def _write(path, *, ny=128, nx=128, sky=True, cd=False, east_right=False, sources=(), seed=0):
    """A FIRST-like field: Gaussian noise and Gaussian sources ``(x, y, peak)``."""
    rng = np.random.default_rng(seed)
    data = rng.normal(0.0, NOISE, (ny, nx)).astype(np.float32)
    yy, xx = np.mgrid[:ny, :nx]
    sigma = BEAM / PIXEL / 2.3548
    for x, y, peak in sources:
        data += peak * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    h = fits.Header()
    if sky:
        cdelt1 = (1 if east_right else -1) * PIXEL / 3600
        h["CTYPE1"], h["CTYPE2"] = "RA---SIN", "DEC--SIN"
        h["CRVAL1"], h["CRVAL2"], h["CRPIX1"], h["CRPIX2"] = 150.0, 30.0, nx / 2, ny / 2
        if cd:
            h["CD1_1"], h["CD2_2"], h["CD1_2"], h["CD2_1"] = cdelt1, PIXEL / 3600, 0.0, 0.0
        else:
            h["CDELT1"], h["CDELT2"] = cdelt1, PIXEL / 3600
        h["RADESYS"] = "ICRS"
    h["BMAJ"], h["BMIN"], h["BPA"] = BEAM / 3600, BEAM / 3600, 0.0
    h["BUNIT"] = "JY/BEAM"
    fits.PrimaryHDU(data, h).writeto(path)
    return path


def _open(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a field without WCS or pixel scale warns on open
        return open_field(path, **kwargs)


def _by_gid(ax, gid):
    return [a for a in ax.get_children() if a.get_gid() == gid]


def _ids(ax):
    return [t.get_text() for t in ax.texts if t.get_gid() == "source_id"]


SOURCES = [(40.0, 60.0, 0.05), (90.0, 30.0, 0.005), (70.0, 100.0, 0.001)]


def test_sky_axes_stretch_and_ellipses(tmp_path):
    from astropy.visualization.wcsaxes import WCSAxes

    path = _write(tmp_path / "sky.fits", sources=SOURCES)
    table = new_catalogue(
        x=[s[0] for s in SOURCES],
        y=[s[1] for s in SOURCES],
        peak_flux=[s[2] for s in SOURCES],
        maj=[9.0, 5.4, 5.4],
        min=[5.4, 5.4, 5.4],
        pa=[0.0, 90.0, 45.0],
    )
    with _open(path) as field:
        fig = draw_field(field, table)
    ax = fig.axes[0]
    assert isinstance(ax, WCSAxes)
    assert ax.coords[0].get_axislabel() == "RA (ICRS)"
    assert ax.coords[1].get_axislabel() == "Dec (ICRS)"
    assert "sky.fits" in ax.get_title() and "3 sources" in ax.get_title()
    assert fig.axes[1].get_ylabel() == "mJy/beam"  # the colourbar
    # the stretch starts 2 sigma below the background; the noise sits low in the range
    norm = ax.images[0].norm
    assert norm.vmin == pytest.approx(-2 * NOISE * 1e3, rel=0.1, abs=0.02)
    assert float(norm(0.0)) < 0.12
    assert float(norm(NOISE * 1e3)) == pytest.approx(0.15, abs=0.02)
    assert float(norm(0.05e3)) > 0.9  # the bright source near the top
    # ellipses where the sources are, sized in pixels; north up, east left: PA 0 is
    # vertical (90 deg from +x), PA 90 points to -x
    (ellipses,) = _by_gid(ax, "sources")
    np.testing.assert_allclose(ellipses.get_offsets(), [s[:2] for s in SOURCES], atol=1e-6)
    np.testing.assert_allclose(ellipses.get_widths(), [5.0, 3.0, 3.0], atol=1e-6)
    angles = ellipses.get_angles() % 180
    np.testing.assert_allclose(angles, [90.0, 0.0, 135.0], atol=0.05)
    assert matplotlib.colors.same_color(ellipses.get_edgecolor()[0], FIELD_COLOR)
    assert _ids(ax) == ["0", "1", "2"]  # few sources: every id, brightest first
    assert len(_by_gid(ax, "beam")) == 1


def test_stretch_of_noise_and_of_a_flat_image():
    rng = np.random.default_rng(1)
    noise = rng.normal(5.0, 2.0, (200, 200))
    norm, median, sigma = field_stretch(noise)
    assert median == pytest.approx(5.0, abs=0.05) and sigma == pytest.approx(2.0, rel=0.05)
    # a field of noise does not fill the range: its brightest pixels stay below mid-grey
    assert norm.vmax >= median + 30 * sigma - 1e-9
    assert float(norm(np.max(noise))) < 0.5
    flat, _, _ = field_stretch(np.full((10, 10), 3.0))
    assert flat.vmin == 3.0 and flat.vmax > 3.0
    with pytest.raises(ValueError, match="no finite pixels"):
        field_stretch(np.full((4, 4), np.nan))


def test_east_right_field_turns_the_ellipses(tmp_path):
    path = _write(tmp_path / "flipped.fits", east_right=True)
    table = new_catalogue(x=[64.0], y=[64.0], maj=[9.0], min=[5.4], pa=[90.0])
    with _open(path) as field:
        ax = draw_field(field, table).axes[0]
    (ellipses,) = _by_gid(ax, "sources")
    assert ellipses.get_angles()[0] % 180 == pytest.approx(0.0, abs=0.05)  # east is +x


def test_pixel_axes_without_wcs(tmp_path, caplog):
    path = _write(tmp_path / "pix.fits", sky=False, sources=SOURCES[:1])
    with _open(path, beam=(3.0, 3.0, 0.0)) as field:
        assert field.wcs is None
        fig = draw_field(field, new_catalogue(x=[40.0], y=[60.0]))
    ax = fig.axes[0]
    assert not hasattr(ax, "coords")
    assert ax.get_xlabel() == "x (pixel)" and ax.get_ylabel() == "y (pixel)"
    (ellipses,) = _by_gid(ax, "sources")
    np.testing.assert_allclose(ellipses.get_offsets(), [[40.0, 60.0]])
    # sky positions cannot be placed without a WCS: counted, reported, not drawn
    sky = new_catalogue(ra=[150.0, 150.1], dec=[30.0, 30.0], x=[12.0, np.nan], y=[5.0, np.nan])
    with _open(path, beam=(3.0, 3.0, 0.0)) as field, caplog.at_level("WARNING"):
        ax = draw_field(field, sky).axes[0]
    assert "pix.fits: 1 of 2 sources have no pixel position" in caplog.text
    assert "2 sources (1 without a pixel position)" in ax.get_title()
    assert len(_by_gid(ax, "sources")[0].get_offsets()) == 1


def test_crowded_field_saves_and_labels_at_most_n(tmp_path):
    rng = np.random.default_rng(2)
    n = 500
    path = _write(tmp_path / "crowded.fits", ny=256, nx=256)
    peak = rng.uniform(1e-3, 1e-2, n)
    peak[123] = 1.0  # the brightest: its id must be written
    table = new_catalogue(x=rng.uniform(0, 255, n), y=rng.uniform(0, 255, n), peak_flux=peak)
    with _open(path) as field:
        out = save_field_picture(field, table, tmp_path / "out" / "crowded.png")
        ax = draw_field(field, table, max_labels=12).axes[0]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "out").glob(".*"))  # written atomically
    ids = _ids(ax)
    assert 0 < len(ids) <= 12 and ids[0] == "123"
    assert len(_by_gid(ax, "sources")[0].get_offsets()) == n


def test_binned_field_keeps_coordinates_and_wcs(tmp_path):
    path = _write(tmp_path / "wide.fits", ny=200, nx=300, cd=True, sources=[(152.0, 77.0, 0.02)])
    table = new_catalogue(x=[152.0], y=[77.0], peak_flux=[0.02])
    with _open(path) as field:
        ax = draw_field(field, table, max_pixels=64).axes[0]
        k = 5  # ceil(300 / 64)
        image = ax.images[0].get_array()
        assert image.shape == (40, 60)
        # block means, in mJy/beam
        assert image[0, 0] == pytest.approx(np.mean(field.read(0, k, 0, k)) * 1e3, rel=1e-5)
        # drawn pixel i is the block of original pixels [i k, i k + k): same sky
        i, j = np.array([0.0, 17.0, 59.0]), np.array([0.0, 33.0, 39.0])
        ra, dec = ax.wcs.all_pix2world(i, j, 0)
        ra0, dec0 = field.wcs.all_pix2world(i * k + (k - 1) / 2, j * k + (k - 1) / 2, 0)
        np.testing.assert_allclose(ra, ra0, atol=1e-9)
        np.testing.assert_allclose(dec, dec0, atol=1e-9)
    (ellipses,) = _by_gid(ax, "sources")
    np.testing.assert_allclose(ellipses.get_offsets(), [[(152 - 2) / 5, (77 - 2) / 5]])
    assert "5x5 binned" in ax.get_title()


def test_truth_boxes_and_sky_positions(tmp_path):
    path = _write(tmp_path / "truth.fits", sources=SOURCES)
    table = new_catalogue(x=[40.0], y=[60.0])
    boxes = Table({"x_min": [30.0], "y_min": [50.0], "x_max": [51.0], "y_max": [71.0]})
    with _open(path) as field:
        ax = draw_field(field, table, truth=boxes, truth_name="physical sources").axes[0]
        (rects,) = _by_gid(ax, "truth")
        corners = rects.get_paths()[0].vertices  # in drawn pixels: pixel i spans [i, i + 1)
        np.testing.assert_allclose(corners.min(axis=0), [29.5, 49.5])
        np.testing.assert_allclose(corners.max(axis=0), [50.5, 70.5])
        assert matplotlib.colors.same_color(rects.get_edgecolor()[0], TRUTH_COLOR)
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == ["sources (1)", "physical sources (1)"]
        # a truth table with sky positions only is placed through the WCS
        ra, dec = field.pixel_to_world([90.0], [30.0])
        sky = Table({"ra": ra, "dec": dec})
        ax = draw_field(field, table, truth=sky).axes[0]
    (ellipses,) = _by_gid(ax, "truth")
    np.testing.assert_allclose(ellipses.get_offsets(), [[90.0, 30.0]], atol=1e-6)
    assert "1 truth" in ax.get_title()


def test_old_import_path_and_bad_input(tmp_path):
    import astrodet.visualize
    from astrodet.sky.finders.detector import save_field_picture as old

    assert old is astrodet.visualize.save_field_picture
    path = _write(tmp_path / "bad.fits")
    with _open(path) as field:
        with pytest.raises(ValueError, match=r"neither x, y nor ra, dec.*'flux'"):
            draw_field(field, Table({"flux": [1.0]}))
        with pytest.raises(ValueError, match="max_pixels"):
            draw_field(field, new_catalogue(x=[1.0], y=[1.0]), max_pixels=4)
        with pytest.raises(TypeError, match="truth table must be an astropy Table"):
            draw_field(field, new_catalogue(x=[1.0], y=[1.0]), truth=42)
