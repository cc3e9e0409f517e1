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
