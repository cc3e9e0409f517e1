"""Reading PNG/JPEG/NPY/FITS into float32 HWC arrays, and the NaN policy."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
from astropy.io import fits

from astrodet.data.io import check_image_file, fill_non_finite, load_dict_image, read_image


def test_png_8bit_grey_scaled(tmp_path):
    arr = np.array([[0, 128], [255, 51]], np.uint8)
    path = tmp_path / "grey8.png"
    cv2.imwrite(str(path), arr)
    img = read_image(path)
    assert img.shape == (2, 2, 1) and img.dtype == np.float32
    np.testing.assert_allclose(img[..., 0], arr / 255.0, atol=1e-7)


def test_png_16bit_grey_scaled(tmp_path):
    arr = np.array([[0, 1000], [65535, 30000]], np.uint16)
    path = tmp_path / "grey16.png"
    cv2.imwrite(str(path), arr)
    img = read_image(path)
    assert img.shape == (2, 2, 1)
    np.testing.assert_allclose(img[..., 0], arr / 65535.0, atol=1e-7)
    assert img.max() == pytest.approx(1.0)


def test_png_rgb_channel_order(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    path = tmp_path / "red.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    img = read_image(path)
    assert img.shape == (4, 5, 3)
    np.testing.assert_allclose(img[..., 0], 1.0)
    np.testing.assert_allclose(img[..., 1:], 0.0)


def test_png_16bit_rgb(tmp_path):
    rgb = np.zeros((3, 4, 3), np.uint16)
    rgb[..., 1] = 65535  # pure green
    rgb[0, 0, 2] = 6553
    path = tmp_path / "rgb16.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    img = read_image(path)
    assert img.shape == (3, 4, 3)
    np.testing.assert_allclose(img[..., 1], 1.0)
    assert img[0, 0, 2] == pytest.approx(0.1, abs=1e-4) and img[..., 0].max() == 0.0


def test_png_alpha_dropped(tmp_path):
    bgra = np.zeros((3, 3, 4), np.uint8)
    bgra[..., 2] = 255  # red in BGR order
    bgra[..., 3] = 10
    path = tmp_path / "rgba.png"
    cv2.imwrite(str(path), bgra)
    img = read_image(path)
    assert img.shape == (3, 3, 3)
    np.testing.assert_allclose(img[..., 0], 1.0)


def test_jpeg_rgb(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 2] = 200  # blue
    path = tmp_path / "blue.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    img = read_image(path)
    assert img.shape == (16, 16, 3) and img.dtype == np.float32
    assert abs(img[..., 2].mean() - 200 / 255) < 0.02  # lossy
    assert img[..., 0].mean() < 0.02


def test_npy_float_raw_and_integer_scaled(tmp_path):
    arr = np.arange(12, dtype=np.float64).reshape(3, 4) * 1e-3
    np.save(tmp_path / "f.npy", arr)
    img = read_image(tmp_path / "f.npy")
    assert img.shape == (3, 4, 1) and img.dtype == np.float32
    np.testing.assert_allclose(img[..., 0], arr, rtol=1e-6)

    np.save(tmp_path / "u8.npy", np.full((2, 2, 3), 255, np.uint8))
    np.testing.assert_allclose(read_image(tmp_path / "u8.npy"), 1.0)


def test_npy_signed_integers_raw(tmp_path):
    np.save(tmp_path / "i16.npy", np.array([[-5, 300]], np.int16))
    assert read_image(tmp_path / "i16.npy")[..., 0].tolist() == [[-5.0, 300.0]]


def test_npy_bad_shape_names_file(tmp_path):
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 5), np.float32))
    with pytest.raises(ValueError, match="cube.npy"):
        read_image(tmp_path / "cube.npy")


def _radio_fits(path, data, **header):
    hdu = fits.PrimaryHDU(data)
    for k, v in header.items():
        hdu.header[k] = v
    hdu.writeto(path)
    return path


def test_fits_degenerate_stokes_freq_axes_dropped(tmp_path):
    data = np.arange(20, dtype=np.float32).reshape(1, 1, 4, 5)
    path = _radio_fits(tmp_path / "radio.fits", data, CTYPE3="FREQ", CTYPE4="STOKES")
    img = read_image(path)
    assert img.shape == (4, 5, 1)
    np.testing.assert_array_equal(img[..., 0], data[0, 0])


def test_fits_gz(tmp_path):
    path = _radio_fits(tmp_path / "img.fits.gz", np.full((1, 3, 2), 4.0, np.float32))
    img = read_image(path)
    assert img.shape == (3, 2, 1) and img.mean() == 4.0


def test_fits_named_and_numbered_hdu(tmp_path):
    primary = fits.PrimaryHDU()  # no data: the default skips it
    sci = fits.ImageHDU(np.full((3, 3), 2.0, np.float32), name="SCI")
    err = fits.ImageHDU(np.full((3, 3), 7.0, np.float32), name="ERR")
    path = tmp_path / "multi.fits"
    fits.HDUList([primary, sci, err]).writeto(path)
    assert read_image(path).mean() == 2.0  # first HDU with data
    assert read_image(path, hdu="ERR").mean() == 7.0
    assert read_image(path, hdu=2).mean() == 7.0
    with pytest.raises(ValueError, match="no HDU 'NOPE'.*SCI"):
        read_image(path, hdu="NOPE")


def test_fits_big_endian_is_native_float32(tmp_path):
    path = _radio_fits(tmp_path / "be.fits", np.ones((2, 2), ">f8"))
    img = read_image(path)
    assert img.dtype == np.float32 and img.dtype.isnative


def test_fits_cube_needs_plane(tmp_path):
    data = np.stack([np.full((4, 4), i, np.float32) for i in range(3)])[None]  # (1, 3, 4, 4)
    path = _radio_fits(tmp_path / "cube.fits", data)
    with pytest.raises(ValueError, match=r"cube\.fits.*3 planes.*plane="):
        read_image(path)
    assert read_image(path, plane=2).mean() == 2.0
    with pytest.raises(ValueError, match="out of range"):
        read_image(path, plane=5)


def test_nan_filled_counted_and_logged(tmp_path, caplog):
    data = np.ones((1, 1, 4, 4), np.float32)
    data[0, 0, 0, :] = np.nan
    data[0, 0, 1, 0] = np.inf
    path = _radio_fits(tmp_path / "blanked.fits", data)
    with caplog.at_level(logging.WARNING, logger="astrodet.data.io"):
        img, count = read_image(path, fill_value=-1.0, return_nan_count=True)
    assert count == 5
    assert np.isfinite(img).all()
    assert (img == -1.0).sum() == 5
    assert "blanked.fits" in caplog.text and "5 NaN/inf" in caplog.text
    # default fill value is 0 and the plain call returns the array alone
    assert read_image(path)[0, 0, 0] == 0.0


def test_all_nan_is_error_naming_file(tmp_path):
    path = tmp_path / "empty.npy"
    np.save(path, np.full((3, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"empty\.npy.*NaN"):
        read_image(path)


def test_missing_unreadable_and_unknown_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        read_image(tmp_path / "nothere.png")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match="broken.png"):
        read_image(bad)
    badfits = tmp_path / "broken.fits"
    badfits.write_bytes(b"garbage" * 100)
    with pytest.raises(ValueError, match="broken.fits"):
        read_image(badfits)
    other = tmp_path / "table.csv"
    other.write_text("a,b\n")
    with pytest.raises(ValueError, match=r"table\.csv.*supported"):
        read_image(other)


def test_hdu_on_non_fits_is_error(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 2)))
    with pytest.raises(ValueError, match="FITS files only"):
        read_image(tmp_path / "a.npy", hdu=1)


def test_load_dict_image_array_and_file(tmp_path):
    d = {"image_id": 3, "image": np.full((4, 4), 0.5, np.float64)}
    img = load_dict_image(d)
    assert img.shape == (4, 4, 1) and img.dtype == np.float32
    assert load_dict_image({"image": np.full((2, 2, 3), 255, np.uint8)}).max() == 1.0
    np.save(tmp_path / "x.npy", np.full((5, 6), 3.0, np.float32))
    img = load_dict_image({"image_id": 1, "file_name": str(tmp_path / "x.npy")})
    assert img.shape == (5, 6, 1) and img.mean() == 3.0
    with pytest.raises(KeyError, match="neither 'image' nor 'file_name'"):
        load_dict_image({"image_id": 7})


def test_load_dict_image_nan_policy_does_not_modify_input():
    arr = np.ones((3, 3), np.float32)
    arr[0, 0] = np.nan
    img = load_dict_image({"image_id": 9, "image": arr})
    assert img[0, 0, 0] == 0.0 and np.isnan(arr[0, 0])
    with pytest.raises(ValueError, match="item 9"):
        load_dict_image({"image_id": 9, "image": np.full((2, 2), np.nan)})


def test_fill_non_finite_counts():
    out, n = fill_non_finite(np.array([1.0, np.nan, -np.inf]), fill_value=2.0)
    assert n == 2 and out.tolist() == [1.0, 2.0, 2.0]


def test_real_pybdsf_fits(real_data):
    path = real_data / "pybdsf_test" / "ch0_I.fits"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    img, count = read_image(path, return_nan_count=True)
    # (1, 1, 129, 129) Stokes/frequency axes dropped
    assert img.shape == (129, 129, 1) and img.dtype == np.float32
    assert np.isfinite(img).all() and count == 0
    assert img.max() > 10 * np.median(np.abs(img))  # bright sources over the noise


def _corrupt_files(tmp_path):
    """Good and broken files of each kind: name -> whether check_image_file should pass it."""
    rng = np.random.default_rng(0)
    a = rng.random((48, 40)).astype(np.float32)
    files = {}
    np.save(tmp_path / "good.npy", a)
    raw = (tmp_path / "good.npy").read_bytes()
    (tmp_path / "truncated.npy").write_bytes(raw[: len(raw) // 2])
    fits.PrimaryHDU(a).writeto(tmp_path / "good.fits")
    raw = (tmp_path / "good.fits").read_bytes()
    (tmp_path / "truncated.fits").write_bytes(raw[:-3000])  # the last data block cut
    (tmp_path / "header_only.fits").write_bytes(raw[:1000])
    cv2.imwrite(str(tmp_path / "good.png"), (a * 255).astype(np.uint8))
    cv2.imwrite(str(tmp_path / "good.jpg"), (a * 255).astype(np.uint8))
    # a valid PNG signature and garbage after it
    (tmp_path / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(400))
    raw = (tmp_path / "good.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(raw[: len(raw) // 2])
    raw = (tmp_path / "good.jpg").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(raw[: len(raw) // 2])
    for name in ("good.npy", "good.fits", "good.png", "good.jpg"):
        files[name] = True
    for name in ("truncated.npy", "truncated.fits", "header_only.fits", "garbage.png"):
        files[name] = False
    files["truncated.png"] = files["truncated.jpg"] = False
    return files


def test_check_image_file_finds_corrupt_and_truncated_files(tmp_path):
    for name, whole in _corrupt_files(tmp_path).items():
        problem = check_image_file(tmp_path / name)
        assert (problem is None) == whole, (name, problem)
        if whole:
            read_image(tmp_path / name)
        else:
            # what the check refuses, the reader cannot read either
            with pytest.raises(ValueError, match=name.replace(".", r"\.")):
                read_image(tmp_path / name)
    assert "truncated" in check_image_file(tmp_path / "truncated.fits")
    assert check_image_file(tmp_path / "absent.npy") == "not found"
