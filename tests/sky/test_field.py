"""FITS fields: Stokes-I plane, WCS, beam, NaN handling, tiles, memory-mapped reads."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
from astropy.io import fits

from astrodet.sky.field import Beam, FieldError, flux_unit_scale, open_field


def _header(nx=40, ny=30, *, beam=True, bpa=True, axes4=False):
    h = fits.Header()
    h["CTYPE1"], h["CRVAL1"], h["CRPIX1"], h["CDELT1"], h["CUNIT1"] = (
        "RA---SIN",
        150.0,
        21.0,
        -2.0 / 3600,
        "deg",
    )
    h["CTYPE2"], h["CRVAL2"], h["CRPIX2"], h["CDELT2"], h["CUNIT2"] = (
        "DEC--SIN",
        -30.0,
        16.0,
        2.0 / 3600,
        "deg",
    )
    if axes4:
        h["CTYPE3"], h["CRVAL3"], h["CRPIX3"], h["CDELT3"] = "FREQ", 1.28e9, 1.0, 1e6
        h["CTYPE4"], h["CRVAL4"], h["CRPIX4"], h["CDELT4"] = "STOKES", 1.0, 1.0, 1.0
    if beam:
        h["BMAJ"], h["BMIN"] = 8.0 / 3600, 6.0 / 3600
        if bpa:
            h["BPA"] = 30.0
    return h


def _write(path, data, header):
    fits.PrimaryHDU(data=data, header=header).writeto(path)
    return path


def test_four_axis_image_reads_stokes_i_plane_with_celestial_wcs(tmp_path):
    rng = np.random.default_rng(0)
    cube = rng.normal(size=(2, 3, 30, 40)).astype(np.float32)  # STOKES, FREQ, y, x
    path = _write(tmp_path / "cube.fits", cube, _header(axes4=True))
    with open_field(path) as f:
        assert f.shape == (30, 40)
        np.testing.assert_array_equal(f.read(0, 30, 0, 40), cube[0, 0])
        assert f.wcs.naxis == 2 and f.header["NAXIS1"] == 40
        assert (f.beam.maj, f.beam.min, f.beam.pa) == pytest.approx((8.0, 6.0, 30.0))
        assert f.pixel_scale == pytest.approx(2.0, rel=1e-6)
        # The reference pixel (CRPIX 21, 16 in 1-based FITS) is at 0-based (20, 15).
        ra, dec = f.pixel_to_world(20.0, 15.0)
        assert float(ra) == pytest.approx(150.0) and float(dec) == pytest.approx(-30.0)
        x, y = f.world_to_pixel(ra, dec)
        assert float(x) == pytest.approx(20.0) and float(y) == pytest.approx(15.0)
        # East is to the left: a larger RA sits at a smaller x.
        x_east, _ = f.world_to_pixel(150.01, -30.0)
        assert float(x_east) < 20.0


def test_stokes_axis_picks_stokes_i_when_it_is_not_first(tmp_path):
    cube = np.stack([np.full((30, 40), 5.0), np.full((30, 40), 1.0)]).astype(np.float32)[:, None]
    h = _header(axes4=True)
    h["CRVAL4"] = 0.0  # planes are Stokes 0 (not I) and 1 (I)
    path = _write(tmp_path / "q.fits", cube, h)
    with open_field(path) as f:
        assert f.read(0, 1, 0, 1)[0, 0] == 1.0
        assert f.plane == (1, 0)  # numpy order: STOKES (I is the second plane), FREQ
        with pytest.raises(AttributeError):
            f.plane = (0, 0)  # read-only


def test_plane_of_a_2d_image_is_empty(tmp_path):
    path = _write(tmp_path / "flat.fits", np.ones((30, 40), np.float32), _header())
    with open_field(path) as f:
        assert f.plane == ()


def test_beam_missing_bpa_warns_and_uses_zero(tmp_path):
    path = _write(tmp_path / "a.fits", np.ones((30, 40), np.float32), _header(bpa=False))
    with pytest.warns(UserWarning, match="BPA missing"):
        f = open_field(path)
    assert f.beam.pa == 0.0 and f.beam.maj == pytest.approx(8.0)
    f.close()


def test_no_beam_is_an_error_naming_file_and_option(tmp_path):
    path = _write(tmp_path / "nobeam.fits", np.ones((30, 40), np.float32), _header(beam=False))
    with pytest.raises(FieldError, match=r"nobeam\.fits.*--beam MAJ MIN PA"):
        open_field(path)
    with open_field(path, beam=(5.4, 5.4, 0.0)) as f:
        assert f.beam == Beam(5.4, 5.4, 0.0)
        assert f.beam_pixels() == pytest.approx(2.7)
        assert f.beam_area_pixels() == pytest.approx(2 * np.pi * 2.7**2 / (8 * np.log(2)))


@pytest.mark.parametrize(
    "dec, expected",
    [
        (10.0, (5.4, 5.4)),
        (4.6, (5.4, 5.4)),
        (0.0, (6.4, 5.4)),
        (-2.4, (6.4, 5.4)),
        (-5.0, (6.8, 5.4)),
    ],
)
def test_first_beam_follows_the_declination(dec, expected):
    from astrodet.sky.field import first_beam

    assert first_beam(dec) == Beam(*expected, 0.0)  # elongated north-south: PA 0


def test_first_beam_rejects_a_declination_off_the_sky():
    from astrodet.sky.field import first_beam

    with pytest.raises(ValueError, match="declination"):
        first_beam(float("nan"))
    with pytest.raises(ValueError, match="declination"):
        first_beam(95.0)


def _first_header(dec, **cards):
    h = _header(beam=False)
    h["CRVAL2"], h["CTYPE1"], h["CTYPE2"] = dec, "RA---TAN", "DEC--TAN"
    h["CRPIX1"], h["CRPIX2"] = 20.5, 15.5  # the image centre
    for key, value in cards.items():
        h[key] = value
    return h


@pytest.mark.parametrize(
    "dec, expected", [(10.0, (5.4, 5.4)), (0.0, (6.4, 5.4)), (-5.0, (6.8, 5.4))]
)
def test_first_image_without_beam_keys_gets_its_declinations_beam(tmp_path, dec, expected):
    # as SkyView writes FIRST cutouts: SURVEY = 'FIRST', no BMAJ/BMIN/BPA
    path = _write(
        tmp_path / "first.fits", np.ones((30, 40), np.float32), _first_header(dec, SURVEY="FIRST")
    )
    with open_field(path) as f:
        assert (f.beam.maj, f.beam.min, f.beam.pa) == pytest.approx((*expected, 0.0))
        assert f.header["BMAJ"] * 3600 == pytest.approx(expected[0])
    # the FIRST team's HISTORY line marks a FIRST image too
    h = _first_header(dec)
    h["HISTORY"] = "The FIRST VLA Survey: Copyright 1994 University of California"
    path = _write(tmp_path / "history.fits", np.ones((30, 40), np.float32), h)
    with open_field(path) as f:
        assert f.beam == Beam(*expected, 0.0)
    # a beam given, or in the header, still wins
    with open_field(tmp_path / "first.fits", beam=(5.0, 5.0, 0.0)) as f:
        assert f.beam == Beam(5.0, 5.0, 0.0)


def test_an_image_of_another_survey_without_beam_keys_is_still_an_error(tmp_path):
    h = _first_header(0.0, SURVEY="NVSS")
    path = _write(tmp_path / "nvss.fits", np.ones((30, 40), np.float32), h)
    with pytest.raises(FieldError, match=r"nvss\.fits: no beam.*BMAJ/BMIN/BPA.*--beam MAJ MIN PA"):
        open_field(path)


def test_real_first_cutouts_get_the_beam_of_their_declination(real_data):
    from astrodet.sky.field import first_beam

    paths = sorted((real_data / "mirabest" / "FITS_subset").glob("*.fits"))
    decs = []
    for path in paths:
        with open_field(path) as f:
            _, dec = f.pixel_to_world((f.shape[1] - 1) / 2, (f.shape[0] - 1) / 2)
            assert f.beam == first_beam(float(dec)), path.name
            decs.append(float(dec))
    # the set spans all three of FIRST's beams
    assert min(decs) < -2.5 < max(decs) and any(-2.5 < d < 4.55 for d in decs) and max(decs) > 4.55


def test_aips_history_beam(tmp_path):
    h = _header(beam=False)
    h["HISTORY"] = "AIPS   CLEAN BMAJ=  1.5000E-03 BMIN=  1.5000E-03 BPA=   0.00"
    path = _write(tmp_path / "aips.fits", np.ones((30, 40), np.float32), h)
    with open_field(path) as f:
        assert f.beam.maj == pytest.approx(5.4)


def test_all_nan_image_is_an_error(tmp_path):
    path = _write(tmp_path / "nan.fits", np.full((30, 40), np.nan, np.float32), _header())
    with pytest.raises(FieldError, match="nan.fits.*NaN"):
        open_field(path)


def test_nan_mask_and_one_finite_pixel_off_the_sample_grid(tmp_path, monkeypatch):
    import astrodet.sky.field as field_module

    monkeypatch.setattr(field_module, "_SAMPLE_PIXELS", 100)  # a 30-pixel stride, 100-pixel blocks
    data = np.full((300, 300), np.nan, np.float32)
    data[151, 77] = 2.5  # not on any coarse stride: found by the block scan
    path = _write(tmp_path / "sparse.fits", data, _header())
    with open_field(path) as f:
        mask = f.finite_mask(150, 153, 76, 79)
        assert mask.sum() == 1 and mask[1, 1]


def test_bscale_bzero_and_blank(tmp_path):
    raw = np.arange(12, dtype=np.int16).reshape(3, 4)
    h = _header()
    h["BSCALE"], h["BZERO"], h["BLANK"] = 0.5, 10.0, 3
    hdu = fits.PrimaryHDU(data=raw, header=h)
    hdu.header["BSCALE"], hdu.header["BZERO"], hdu.header["BLANK"] = 0.5, 10.0, 3
    hdu.writeto(tmp_path / "int.fits", output_verify="ignore")
    with open_field(tmp_path / "int.fits") as f:
        out = f.read(0, 3, 0, 4)
    assert out.dtype == np.float32
    assert np.isnan(out[0, 3])
    np.testing.assert_allclose(out[1, 1], 5 * 0.5 + 10.0)


@pytest.mark.parametrize(
    "bunit,scale",
    [
        ("JY/BEAM", 1.0),
        ("Jy beam-1", 1.0),
        ("mJy/beam", 1e-3),
        ("MJY/BEAM", 1e-3),
        ("uJy/beam", 1e-6),
        (None, 1.0),
    ],
)
def test_pixels_are_read_in_jy_per_beam(tmp_path, bunit, scale):
    data = np.full((30, 40), 2.5, np.float32)
    h = _header()
    if bunit is not None:
        h["BUNIT"] = bunit
    _write(tmp_path / "f.fits", data, h)
    with open_field(tmp_path / "f.fits") as f:
        assert f.flux_scale == scale
        np.testing.assert_allclose(f.read(0, 2, 0, 2), 2.5 * scale, rtol=1e-6)
        if bunit is not None:
            assert f.header["BUNIT"] == (bunit if scale == 1.0 else "Jy/beam")


def test_unit_that_is_not_per_beam_warns_and_keeps_values(tmp_path):
    h = _header()
    h["BUNIT"] = "K"
    h["BSCALE"], h["BZERO"] = 2.0, 1.0
    hdu = fits.PrimaryHDU(data=np.ones((30, 40), np.int16), header=h)
    hdu.header["BSCALE"], hdu.header["BZERO"] = 2.0, 1.0
    hdu.writeto(tmp_path / "k.fits")
    with pytest.warns(UserWarning, match=r"k.fits: BUNIT 'K' is not a flux density per beam"):
        f = open_field(tmp_path / "k.fits")
    with f:
        assert f.read(0, 1, 0, 1)[0, 0] == 3.0
    with pytest.warns(UserWarning, match="Jy/pixel"):
        assert flux_unit_scale("Jy/pixel") == 1.0


def test_millijansky_image_scales_with_bscale(tmp_path):
    raw = np.full((30, 40), 4, np.int16)
    h = _header()
    h["BUNIT"] = "mJy/beam"
    hdu = fits.PrimaryHDU(data=raw, header=h)
    hdu.header["BSCALE"], hdu.header["BZERO"] = 0.5, 1.0
    hdu.writeto(tmp_path / "m.fits")
    with open_field(tmp_path / "m.fits") as f:
        np.testing.assert_allclose(f.read(0, 1, 0, 1), (4 * 0.5 + 1.0) * 1e-3, rtol=1e-6)
        assert f.has_data()


@pytest.mark.parametrize("size,overlap", [(16, 4), (64, 0), (40, 10)])
def test_tiles_cover_the_image_and_end_flush(tmp_path, size, overlap):
    path = _write(tmp_path / "t.fits", np.ones((45, 70), np.float32), _header(nx=70, ny=45))
    with open_field(path) as f:
        tiles = list(f.tiles(size, overlap))
        covered = np.zeros(f.shape, int)
        for t in tiles:
            assert t.y1 - t.y0 <= size and t.x1 - t.x0 <= size
            covered[t.slices] += 1
        assert covered.min() >= 1
        assert max(t.x1 for t in tiles) == 70 and max(t.y1 for t in tiles) == 45
        # Full-size tiles wherever the image is large enough (the last one flush).
        if size <= 45:
            assert all(t.shape == (size, size) for t in tiles)


def test_read_clips_to_the_image(tmp_path):
    data = np.arange(30 * 40, dtype=np.float32).reshape(30, 40)
    path = _write(tmp_path / "c.fits", data, _header())
    with open_field(path) as f:
        np.testing.assert_array_equal(f.read(-5, 3, 38, 50), data[0:3, 38:40])


def test_no_wcs_gives_nan_world_positions(tmp_path):
    h = fits.Header()
    h["BMAJ"], h["BMIN"], h["BPA"] = 3 / 3600, 3 / 3600, 0.0
    path = _write(tmp_path / "nowcs.fits", np.ones((10, 10), np.float32), h)
    with pytest.warns(UserWarning, match="no celestial WCS"):
        f = open_field(path)
    ra, dec = f.pixel_to_world([1, 2], [3, 4])
    assert np.isnan(ra).all() and np.isnan(dec).all() and f.pixel_scale is None
    with pytest.raises(FieldError, match="no celestial WCS"):
        f.world_to_pixel(1.0, 2.0)
    f.close()


def test_large_field_is_memory_mapped(tmp_path):
    n = 4096  # 64 MiB of float32, read through a memory map
    path = tmp_path / "big.fits"
    hdu = fits.PrimaryHDU(header=_header(nx=n, ny=n))
    hdu.header["BITPIX"], hdu.header["NAXIS"] = -32, 2
    hdu.header["NAXIS1"], hdu.header["NAXIS2"] = n, n
    hdu.header.tofile(path)
    with open(path, "ab") as fh:  # data written in strips: the test itself stays small
        strip = np.full((256, n), 1.0, dtype=">f4")
        for _ in range(n // 256):
            fh.write(strip.tobytes())
        fh.write(b"\0" * ((2880 - (n * n * 4) % 2880) % 2880))
    tracemalloc.start()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = open_field(path)
    tile = f.read(1000, 1256, 2000, 2256)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    f.close()
    assert tile.shape == (256, 256) and float(tile.mean()) == 1.0
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.1f} MiB: the image was loaded whole"


def test_beam_from_args():
    assert Beam.from_args(None) is None
    assert Beam.from_args([5.4, 5.4, 0]) == Beam(5.4, 5.4, 0.0)
    with pytest.raises(ValueError, match="MAJ MIN PA"):
        Beam.from_args([5.4, 5.4])
    with pytest.raises(ValueError, match="positive"):
        Beam(0.0, 1.0, 0.0)


def test_galactic_and_b1950_wcs_convert_to_icrs(tmp_path):
    from astropy.coordinates import FK4, SkyCoord

    from astrodet.sky.field import non_equatorial_frame, pixel_to_radec, radec_to_pixel

    h = _header()
    h["CTYPE1"], h["CTYPE2"] = "GLON-SIN", "GLAT-SIN"
    h["CRVAL1"], h["CRVAL2"] = 30.0, 0.5
    _write(tmp_path / "gal.fits", np.zeros((30, 40), np.float32), h)
    with open_field(tmp_path / "gal.fits") as f:
        ra, dec = f.pixel_to_world(20.0, 15.0)  # the reference pixel (CRPIX 21, 16)
        expected = SkyCoord(30.0, 0.5, unit="deg", frame="galactic").icrs
        assert (float(ra), float(dec)) == pytest.approx((expected.ra.deg, expected.dec.deg))
        x, y = f.world_to_pixel(np.array([ra, 283.0]), np.array([dec, -2.0]))
        assert (x[0], y[0]) == pytest.approx((20.0, 15.0), abs=1e-6)
    # an old B1950 image: precessed to ICRS
    h = _header()
    h["EQUINOX"], h["RADESYS"] = 1950.0, "FK4"
    _write(tmp_path / "b1950.fits", np.zeros((30, 40), np.float32), h)
    with open_field(tmp_path / "b1950.fits") as f:
        assert isinstance(non_equatorial_frame(f.wcs), FK4)
        ra, dec = f.pixel_to_world(20.0, 15.0)
        expected = SkyCoord(150.0, -30.0, unit="deg", frame=FK4(equinox="B1950")).icrs
        assert SkyCoord(ra, dec, unit="deg").separation(expected).arcsec < 0.01
        assert abs(float(ra) - 150.0) > 0.3  # about 45 years of precession
        assert radec_to_pixel(f.wcs, ra, dec) == pytest.approx((20.0, 15.0), abs=1e-6)
    # equatorial J2000: as it is
    _write(tmp_path / "j2000.fits", np.zeros((30, 40), np.float32), _header())
    with open_field(tmp_path / "j2000.fits") as f:
        assert non_equatorial_frame(f.wcs) is None
        assert pixel_to_radec(f.wcs, 20.0, 15.0) == pytest.approx((150.0, -30.0))
