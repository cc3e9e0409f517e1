"""PyBDSF as a finder on real images: the PyBDSF test image (its own beam and frequency
axis) and a FIRST cutout without beam keywords (beam given)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

pytest.importorskip("bdsf")

from astrodet.sky import open_field, read_catalogue  # noqa: E402
from astrodet.sky.finders import build_finder  # noqa: E402
from astrodet.sky.finders.pybdsf import run_pybdsf  # noqa: E402


def test_pybdsf_test_image_finds_its_reference_sources(real_data, tmp_path, caplog):
    folder = real_data / "pybdsf_test"
    image = folder / "ch0_I.fits"
    with open_field(image) as field, caplog.at_level(logging.INFO):
        table = build_finder("pybdsf").find(field)
    # PyBDSF's step-by-step log stays out of the caller's (it sets its own levels)
    chatter = [r for r in caplog.records if r.name.startswith("PyBDSF")]
    assert not [r for r in chatter if r.levelno < logging.WARNING]
    assert logging.getLogger("PyBDSF").propagate
    assert any(r.name == "astrodet.sky.finders.pybdsf" for r in caplog.records)
    reference = read_catalogue(folder / "catalogue.srl.FITS")
    # the reference list was made with options of PyBDSF's own test (not recorded in it):
    # default thresholds find most of its sources, nothing else
    assert 0.6 * len(reference) <= len(table) <= 1.1 * len(reference)
    assert np.all(np.asarray(table["score"]) == 1.0)
    # pixel positions in the field's grid, from the source list's sky positions
    assert np.isfinite(np.asarray(table["x"], float)).all()
    assert np.all((np.asarray(table["x"]) > -1) & (np.asarray(table["x"]) < 129))
    dra = (np.asarray(table["ra"])[:, None] - np.asarray(reference["ra"])[None]) * np.cos(
        np.deg2rad(64.13)
    )
    ddec = np.asarray(table["dec"])[:, None] - np.asarray(reference["dec"])[None]
    nearest = np.hypot(dra, ddec).min(axis=1) * 3600.0
    # within a third of the 54" beam
    assert np.mean(nearest < 18.0) >= 0.9
    assert table.meta["FINDER"] == "pybdsf" and table.meta["SECONDS"] > 0
    # the image folder is left as it was (PyBDSF writes its log beside a linked copy)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [
            "catalogue.gaul",
            "catalogue.gaul.FITS",
            "catalogue.srl",
            "catalogue.srl.FITS",
            "ch0_I.fits",
        ]
    )


def test_first_cutout_without_beam_needs_one(real_data, tmp_path):
    image = sorted((real_data / "mirabest" / "FITS_subset").glob("*.fits"))[0]
    with pytest.raises(ValueError, match="--beam MAJ MIN PA"):
        run_pybdsf(image, out_file=tmp_path / "a.fits")
    info = run_pybdsf(image, out_file=tmp_path / "a.fits", beam=(5.4, 5.4, 0.0))
    table = read_catalogue(tmp_path / "a.fits")
    assert info["n_sources"] == len(table) >= 1
    # every source lies in the 300 x 300 px (9 arcmin) cutout
    with open_field(image, beam=(5.4, 5.4, 0.0)) as field:
        x, y = field.world_to_pixel(table["ra"], table["dec"])
    assert np.all((x > -1) & (x < 300) & (y > -1) & (y < 300))


def test_cd_matrix_header_is_read_as_cdelt_and_pc(real_data, tmp_path):
    from astropy.io import fits
    from astropy.wcs import WCS

    from astrodet.sky.finders.pybdsf import cdelt_header

    image = real_data / "pybdsf_test" / "ch0_I.fits"
    with fits.open(image) as hdul:
        data, header = hdul[0].data, hdul[0].header.copy()
    # the same WCS as a rotated CD matrix: CDELT dropped, as mosaicking tools write it
    scale, turn = header["CDELT2"], np.deg2rad(20.0)
    cd = scale * np.array([[-np.cos(turn), np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    for k in ("CDELT1", "CDELT2"):
        del header[k]
    for i in range(2):
        for j in range(2):
            header[f"CD{i + 1}_{j + 1}"] = cd[i, j]
    fits.PrimaryHDU(data, header).writeto(tmp_path / "cd.fits")
    rewritten = cdelt_header(header)
    assert "CD1_1" not in rewritten and rewritten["CDELT1"] < 0 < rewritten["CDELT2"]
    xy = np.array([[0.0, 0, 0, 0], [100.0, 40.0, 0, 0]])
    np.testing.assert_allclose(
        WCS(rewritten).all_pix2world(xy, 0), WCS(header).all_pix2world(xy, 0)
    )
    assert cdelt_header(fits.getheader(image)) is None
    # PyBDSF runs on it (it fails on a bare CD matrix) and places the sources on the sky
    # through the rotated WCS
    with open_field(tmp_path / "cd.fits") as field:
        table = build_finder("pybdsf").find(field)
        x, y = field.world_to_pixel(table["ra"], table["dec"])
    assert len(table) >= 10
    np.testing.assert_allclose(x, table["x"], atol=0.5)
    np.testing.assert_allclose(y, table["y"], atol=0.5)


def test_millijansky_image_gives_fluxes_in_jansky(real_data, tmp_path):
    from astropy.io import fits

    image = real_data / "pybdsf_test" / "ch0_I.fits"
    with fits.open(image) as hdul:
        data, header = hdul[0].data, hdul[0].header.copy()
    header["BUNIT"] = "mJy/beam"
    fits.PrimaryHDU(data * 1000.0, header).writeto(tmp_path / "mjy.fits")
    finder = build_finder("pybdsf")
    with open_field(image) as field:
        jy = finder.find(field)
    with open_field(tmp_path / "mjy.fits") as field:
        mjy = finder.find(field)
    # the same sources (PyBDSF reads both as Jy/beam; the thresholds are in rms units) with
    # the same fluxes once the BUNIT is taken into account (a fit or two of a thousand times
    # larger numbers converges a little differently)
    assert len(mjy) == len(jy) >= 10
    for name in ("peak_flux", "total_flux", "rms"):
        ratio = np.asarray(mjy[name], float) / np.asarray(jy[name], float)
        assert abs(np.median(ratio) - 1.0) < 1e-3, name
        assert np.mean(np.abs(ratio - 1.0) < 1e-2) >= 0.9, name


def test_galactic_image_gives_icrs_positions(real_data, tmp_path):
    from astropy.coordinates import SkyCoord
    from astropy.io import fits
    from astropy.table import Table
    from astropy.wcs import WCS

    image = real_data / "pybdsf_test" / "ch0_I.fits"
    with fits.open(image) as hdul:
        data, header = hdul[0].data[0, 0], hdul[0].header
    # the same pixels on an equatorial and on a Galactic grid of the same layout: PyBDSF
    # fits the same pixels in both
    grids = {}
    for name, ctype, crval in (("eq", "RA---SIN", 150.0), ("gal", "GLON-SIN", 30.0)):
        w = WCS(naxis=2)
        w.wcs.ctype = [ctype, {"eq": "DEC--SIN", "gal": "GLAT-SIN"}[name]]
        w.wcs.crval, w.wcs.crpix = [crval, 0.5], [65.0, 65.0]
        w.wcs.cdelt = [header["CDELT1"], header["CDELT2"]]
        h = w.to_header()
        for key in ("BMAJ", "BMIN", "BPA"):
            h[key] = header[key]
        fits.PrimaryHDU(data, h).writeto(tmp_path / f"{name}.fits")
        run_pybdsf(tmp_path / f"{name}.fits", out_file=tmp_path / f"{name}.srl.fits")
        grids[name] = w
    eq, gal = (Table.read(tmp_path / f"{n}.srl.fits") for n in ("eq", "gal"))
    assert len(gal) == len(eq) >= 10
    x, y = grids["eq"].all_world2pix(eq["RA"], eq["DEC"], 0)  # PyBDSF's pixel positions
    # the Galactic run's RA/DEC are ICRS: those pixels through the Galactic grid, converted
    lon, lat = grids["gal"].all_pix2world(x, y, 0)
    expected = SkyCoord(lon, lat, unit="deg", frame="galactic").icrs
    sep = SkyCoord(gal["RA"], gal["DEC"], unit="deg").separation(expected).arcsec
    assert np.max(sep) < 0.5
    assert np.min(np.abs(np.asarray(gal["RA"]) - 30.0)) > 1.0  # not the longitudes
    # position angles east of ICRS north: the same fits, turned by the frames' angle
    centre = SkyCoord(30.0, 0.5, unit="deg", frame="galactic")
    turn = centre.icrs.position_angle(SkyCoord(30.0, 0.501, unit="deg", frame="galactic").icrs)
    fitted = np.abs(np.asarray(eq["Maj"]) - np.asarray(eq["Min"])) > 0.2 * np.asarray(eq["Maj"])
    diff = (np.asarray(gal["PA"]) - np.asarray(eq["PA"]) - turn.deg)[fitted]
    assert fitted.sum() >= 3
    np.testing.assert_allclose((diff + 90.0) % 180.0 - 90.0, 0.0, atol=1.0)
    # the finder places them back on the Galactic grid at PyBDSF's pixels
    with open_field(tmp_path / "gal.fits") as field:
        table = build_finder("pybdsf").find(field)
    order = np.argsort(np.asarray(table["x"]))
    np.testing.assert_allclose(np.asarray(table["x"])[order], np.sort(x), atol=0.05)


@pytest.mark.slow
def test_cube_uses_the_plane_field_reads(real_data, tmp_path):
    """A cube of 2 channels x Stokes (V, I): PyBDSF used to average the channels (and take
    the first Stokes plane); it reads channel 0's Stokes I, as Field does, and says so."""
    from astropy.io import fits

    image = real_data / "pybdsf_test" / "ch0_I.fits"
    with fits.open(image) as hdul:
        plane, header = hdul[0].data[0, 0], hdul[0].header.copy()
    # NAXIS3 STOKES (V at index 0, I at index 1), NAXIS4 FREQ: two channels
    cube = np.empty((2, 2) + plane.shape, np.float32)
    cube[:] = plane[:, ::-1]  # the other planes: the sky mirrored
    cube[0, 1] = plane
    header["CRVAL3"], header["CDELT3"], header["CRPIX3"] = 4.0, -3.0, 1.0
    fits.PrimaryHDU(cube, header).writeto(tmp_path / "cube.fits")
    with open_field(tmp_path / "cube.fits") as field:
        np.testing.assert_array_equal(field.read(0, 129, 0, 129), plane)
        found = build_finder("pybdsf").find(field)
    with open_field(image) as field:
        expected = build_finder("pybdsf").find(field)
    assert len(found) == len(expected) >= 10
    for name in ("ra", "dec", "peak_flux", "total_flux"):
        np.testing.assert_allclose(
            np.sort(np.asarray(found[name])), np.sort(np.asarray(expected[name])), rtol=1e-4
        )
    # the source list's header says which plane (read into the catalogue's meta)
    assert (found.meta["CHANNEL"], found.meta["NCHAN"]) == (0, 2)
    assert found.meta["PLANE"] == "FREQ 0 of 2, STOKES 1 of 2"
    assert (expected.meta["CHANNEL"], expected.meta["NCHAN"]) == (0, 1)


def test_pybdsf_collections_skip_the_callers_objects(real_data, tmp_path, monkeypatch):
    import gc

    import bdsf

    image = sorted((real_data / "mirabest" / "FITS_subset").glob("*.fits"))[0]
    seen = []
    real = bdsf.process_image

    def spy(*args, **kwargs):
        seen.append(gc.get_freeze_count())
        return real(*args, **kwargs)

    monkeypatch.setattr(bdsf, "process_image", spy)
    assert gc.get_freeze_count() == 0
    run_pybdsf(image, out_file=tmp_path / "a.fits", beam=(5.4, 5.4, 0.0))
    # the caller's objects were frozen while PyBDSF ran, and are collectable again after
    assert seen and seen[0] > 0
    assert gc.get_freeze_count() == 0

    def broken(*args, **kwargs):
        raise RuntimeError("no island")

    monkeypatch.setattr(bdsf, "process_image", broken)
    with pytest.raises(ValueError, match="PyBDSF failed: no island"):
        run_pybdsf(image, out_file=tmp_path / "b.fits", beam=(5.4, 5.4, 0.0))
    assert gc.get_freeze_count() == 0

    # a caller that froze its own objects keeps them frozen
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        monkeypatch.setattr(bdsf, "process_image", spy)
        run_pybdsf(image, out_file=tmp_path / "c.fits", beam=(5.4, 5.4, 0.0))
        assert frozen > 0 and gc.get_freeze_count() > 0  # not unfrozen by the run
    finally:
        gc.unfreeze()
