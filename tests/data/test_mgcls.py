"""MGCLS: PyBDSF catalogues -> tiles + COCO boxes that land on the sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from astrodet.data.mgcls import (
    prepare_mgcls,
    read_protege_catalogue,
    read_source_catalog,
)


def _load(out):
    data = json.loads((out / "annotations.json").read_text())
    boxes = {im["id"]: [] for im in data["images"]}
    for a in data["annotations"]:
        boxes[a["image_id"]].append(a["bbox"])
    return [(np.load(out / "images" / im["file_name"]), boxes[im["id"]]) for im in data["images"]]


@pytest.mark.parametrize("cat", ["catalogue.srl.FITS", "catalogue.srl"])
def test_real_pybdsf_boxes_land_on_sources(real_data, tmp_path, cat):
    folder = real_data / "pybdsf_test"
    out = tmp_path / "out"
    summary = prepare_mgcls(
        image=folder / "ch0_I.fits",
        catalog=folder / cat,
        out_dir=out,
        size=64,
        max_major_beams=None,
    )
    assert summary["tiles"] == 4 and summary["skipped_nan_tiles"] == 0
    # 43 sources; those centred in the 129th row/column belong to no tile
    assert summary["boxes"] + summary["sources_outside"] == 43
    assert summary["boxes"] >= 38
    near = []
    for img, boxes in _load(out):
        assert img.shape == (64, 64) and img.dtype == np.float32
        for x, y, w, h in boxes:
            assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 64 and y + h <= 64
            if w < 2 or h < 2:  # clipped at a tile edge
                continue
            x0, y0 = int(np.floor(x)), int(np.floor(y))
            sub = img[y0 : int(np.ceil(y + h)), x0 : int(np.ceil(x + w))]
            j, i = np.unravel_index(np.argmax(sub), sub.shape)
            near.append(np.hypot(x0 + i + 0.5 - (x + w / 2), y0 + j + 0.5 - (y + h / 2)))
    near = np.asarray(near)
    assert len(near) >= 30
    # the brightest pixel in each box is the catalogued source, at the box centre
    assert np.median(near) < 1.0 and np.mean(near <= 2.0) >= 0.9


def test_real_boxes_in_display_orientation(real_data, tmp_path):
    """North up: the source with the highest Dec is nearest the top of the image."""
    folder = real_data / "pybdsf_test"
    cat = read_source_catalog(folder / "catalogue.srl.FITS")
    out = tmp_path / "o"
    prepare_mgcls(
        image=folder / "ch0_I.fits",
        catalog=folder / "catalogue.srl.FITS",
        out_dir=out,
        size=128,
        max_major_beams=None,
    )
    ((img, boxes),) = _load(out)
    data = fits.getdata(folder / "ch0_I.fits")[0, 0]
    np.testing.assert_array_equal(img, data[::-1][:128, :128])
    wcs = WCS(fits.getheader(folder / "ch0_I.fits")).celestial
    _, py = wcs.all_world2pix(cat["ra"], cat["dec"], 0)
    top = np.argmax(py)  # largest FITS row = top of the displayed image
    ys = [b[1] + b[3] / 2 for b in boxes]
    assert min(ys) == pytest.approx(129 - (py[top] + 0.5), abs=2.0)


def _fake_field(path, *, nan_block=False):
    """A TAN image with east to the left (CDELT1 < 0), 1 arcsec pixels, a 3" beam."""
    h = fits.Header()
    h.update(
        CTYPE1="RA---TAN",
        CTYPE2="DEC--TAN",
        CRVAL1=150.0,
        CRVAL2=2.0,
        CRPIX1=64.5,
        CRPIX2=64.5,
        CDELT1=-1 / 3600,
        CDELT2=1 / 3600,
        BMAJ=3 / 3600,
        BMIN=3 / 3600,
    )
    data = np.zeros((128, 128), np.float32)
    if nan_block:
        data[64:, :64] = np.nan  # top-left tile once flipped: fully blank
        data[0:5, 100:110] = np.nan  # a few blank pixels elsewhere
    fits.PrimaryHDU(data, h).writeto(path)
    return WCS(h)


def test_position_angle_convention(tmp_path):
    wcs = _fake_field(tmp_path / "f.fits")
    ra, dec = wcs.all_pix2world([40.0, 90.0], [40.0, 90.0], 0)
    csv_path = tmp_path / "cat.csv"
    # 8" x 2" sources: PA 0 (major axis north-south), PA 90 (east-west)
    csv_path.write_text(f"RA,DEC,Maj,Min,PA\n{ra[0]},{dec[0]},8,2,0\n{ra[1]},{dec[1]},8,2,90\n")
    out = tmp_path / "o"
    prepare_mgcls(
        image=tmp_path / "f.fits", catalog=csv_path, out_dir=out, size=128, size_unit="arcsec"
    )
    ((_, boxes),) = _load(out)
    boxes = sorted(boxes, key=lambda b: b[0])
    ns, ew = boxes
    assert ns[3] == pytest.approx(8, abs=0.3) and ns[2] == pytest.approx(2, abs=0.3)
    assert ew[2] == pytest.approx(8, abs=0.3) and ew[3] == pytest.approx(2, abs=0.3)
    # FITS pixel (40, 40) -> display row 128 - 40.5
    assert ns[1] + ns[3] / 2 == pytest.approx(128 - 40.5, abs=0.05)
    assert ns[0] + ns[2] / 2 == pytest.approx(40.5, abs=0.05)


def test_pa_45_box_is_square(tmp_path):
    """A diagonal ellipse: the box is the projected extent of both axes."""
    from astrodet.data.mgcls import ellipse_pixel_boxes

    wcs = _fake_field(tmp_path / "f.fits")
    ra, dec = wcs.all_pix2world([64.0], [64.0], 0)
    (tmp_path / "c.csv").write_text(f"RA,DEC,Maj,Min,PA\n{ra[0]},{dec[0]},8,2,45\n")
    cat = read_source_catalog(tmp_path / "c.csv", size_unit="arcsec")
    _, box = ellipse_pixel_boxes(wcs, cat)
    side = 2 * np.sqrt((4 * np.sqrt(0.5)) ** 2 + (1 * np.sqrt(0.5)) ** 2)
    assert box[0, 2] - box[0, 0] == pytest.approx(side, abs=0.05)
    assert box[0, 3] - box[0, 1] == pytest.approx(side, abs=0.05)


def test_icrs_catalogue_on_a_galactic_image():
    """Catalogues are ICRS: on an image gridded in l, b the box lands on the source's
    pixel, and a source elongated north-south (ICRS) is drawn turned by the angle between
    equatorial and Galactic north."""
    from astropy.coordinates import SkyCoord
    from astropy.wcs import WCS

    from astrodet.data.mgcls import ellipse_pixel_boxes

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["GLON-SIN", "GLAT-SIN"]
    wcs.wcs.crval, wcs.wcs.crpix = [30.0, 0.5], [65.0, 65.0]
    wcs.wcs.cdelt = [-1.0 / 3600, 1.0 / 3600]
    c = SkyCoord(30.0, 0.5, unit="deg", frame="galactic").icrs
    cat = {
        "ra": np.array([c.ra.deg]),
        "dec": np.array([c.dec.deg]),
        "maj": np.array([20.0 / 3600]),
        "min": np.array([2.0 / 3600]),
        "pa": np.array([0.0]),
    }
    centres, box = ellipse_pixel_boxes(wcs, cat)
    assert centres[0] == pytest.approx([64.0, 64.0], abs=1e-6)
    # equatorial north is about 62 deg from Galactic north there: the box is wide, not tall
    turn = np.deg2rad(c.position_angle(SkyCoord(30.0, 0.51, unit="deg", frame="galactic")).deg)
    assert box[0, 2] - box[0, 0] == pytest.approx(20 * abs(np.sin(turn)), abs=0.3)
    assert box[0, 3] - box[0, 1] == pytest.approx(20 * abs(np.cos(turn)), abs=0.3)


def test_nan_tiles_skipped_and_filled(tmp_path):
    wcs = _fake_field(tmp_path / "f.fits", nan_block=True)
    ra, dec = wcs.all_pix2world([100.0, 20.0], [20.0, 100.0], 0)
    (tmp_path / "c.csv").write_text(
        f"RA,DEC,Maj,Min,PA\n{ra[0]},{dec[0]},4,3,0\n{ra[1]},{dec[1]},4,3,0\n"
    )
    out = tmp_path / "o"
    s = prepare_mgcls(
        image=tmp_path / "f.fits",
        catalog=tmp_path / "c.csv",
        out_dir=out,
        size=64,
        size_unit="arcsec",
        max_nan_fraction=0.5,
    )
    assert s["tiles"] == 3 and s["skipped_nan_tiles"] == 1
    assert s["filled_pixels"] == 50
    assert s["boxes"] == 1 and s["sources_outside"] == 1  # the second sits in the blank tile
    for img, _ in _load(out):
        assert np.isfinite(img).all()


def test_extended_sources_not_labelled(tmp_path):
    wcs = _fake_field(tmp_path / "f.fits")
    ra, dec = wcs.all_pix2world([30.0, 90.0], [30.0, 90.0], 0)
    (tmp_path / "c.csv").write_text(
        f"RA,DEC,Maj,Min,PA\n{ra[0]},{dec[0]},4,3,0\n{ra[1]},{dec[1]},20,10,0\n"
    )
    s = prepare_mgcls(
        image=tmp_path / "f.fits",
        catalog=tmp_path / "c.csv",
        out_dir=tmp_path / "o",
        size=128,
        size_unit="arcsec",
    )
    assert s["boxes"] == 1 and s["extended_sources"] == 1


def test_pixel_columns(real_data):
    cat = read_source_catalog(
        real_data / "pybdsf_test/catalogue.gaul", columns={"x": "Xposn", "y": "Yposn"}
    )
    assert len(cat["x"]) == 48 and "ra" not in cat
    assert cat["maj"].max() < 0.1  # degrees


def test_bad_inputs(tmp_path):
    _fake_field(tmp_path / "f.fits")
    (tmp_path / "c.csv").write_text("ra,dec,Maj,Min,PA\n150,2,4,3,0\n")
    with pytest.raises(ValueError, match="column 'RA' .*available columns: ra, dec"):
        read_source_catalog(tmp_path / "c.csv")
    assert len(read_source_catalog(tmp_path / "c.csv", columns={"ra": "ra", "dec": "dec"})["ra"])
    with pytest.raises(ValueError, match="unknown column keys"):
        read_source_catalog(tmp_path / "c.csv", columns={"flux": "S"})
    with pytest.raises(FileNotFoundError, match="nope.srl"):
        read_source_catalog(tmp_path / "nope.srl")
    (tmp_path / "bad.srl").write_text("# a b c\n1 2\n")
    with pytest.raises(ValueError, match="row 1 has 2 fields"):
        read_source_catalog(tmp_path / "bad.srl", columns={"ra": "a"})
    with pytest.raises(ValueError, match="2 images but 1 catalogues"):
        prepare_mgcls(
            image=[tmp_path / "f.fits"] * 2, catalog=tmp_path / "c.csv", out_dir=tmp_path / "o"
        )
    (tmp_path / "full").mkdir()
    (tmp_path / "full/x").write_text("")
    with pytest.raises(FileExistsError, match="--overwrite"):
        prepare_mgcls(
            image=tmp_path / "f.fits",
            catalog=tmp_path / "c.csv",
            out_dir=tmp_path / "full",
            columns={"ra": "ra", "dec": "dec"},
        )


def test_script(tmp_path, real_data):
    import subprocess
    import sys

    folder = real_data / "pybdsf_test"
    out = tmp_path / "o"
    cmd = [
        sys.executable,
        "datasets/prepare_mgcls.py",
        "--image",
        str(folder / "ch0_I.fits"),
        "--catalog",
        str(folder / "catalogue.srl.FITS"),
        "--out",
        str(out),
        "--size",
        "64",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tiles"] == 4
    assert len(list((out / "images").glob("*.npy"))) == 4
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2 and "--overwrite" in r.stderr


def test_protege_catalogue(real_data):
    boxes = read_protege_catalogue(real_data / "mgcls_protege/protege_catalogue.csv")
    assert len(boxes) == 115
    assert sum(len(v) for v in boxes.values()) == 6161
    b = boxes["Abell_22_aFix_pol_I_Farcsec_5pln_cor.FITS"][0]
    assert b["objid"] == "img42_isl2234"
    assert b["bbox"] == [1599 - 59.5, 1984 - 59.5, 119.0, 119.0]
    assert all(a["bbox"][2] > 0 for v in boxes.values() for a in v)


def test_protege_bad_file(tmp_path):
    (tmp_path / "p.csv").write_text("objid,x,y\na,1,2\n")
    with pytest.raises(ValueError, match="missing columns"):
        read_protege_catalogue(tmp_path / "p.csv")


def _script_main():
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "datasets" / "prepare_mgcls.py"
    spec = importlib.util.spec_from_file_location("prepare_mgcls_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def _field_with(path, data):
    """A 1 arcsec/px TAN field holding ``data`` and a catalogue of one source at its centre."""
    h = fits.Header()
    h.update(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRVAL1=150.0, CRVAL2=2.0, CDELT1=-1 / 3600)
    h.update(CDELT2=1 / 3600, CRPIX1=data.shape[1] / 2, CRPIX2=data.shape[0] / 2)
    fits.PrimaryHDU(data.astype(np.float32), h).writeto(path)
    path.with_suffix(".csv").write_text("RA,DEC,Maj,Min,PA\n150.0,2.0,4,3,0\n")
    return [
        "--image",
        str(path),
        "--catalog",
        str(path.with_suffix(".csv")),
        "--size-unit",
        "arcsec",
    ]


@pytest.mark.parametrize(
    "case, message",
    [
        ("all_nan", "every pixel is NaN or infinite"),
        ("too_small", "is 40x40 px, smaller than one 64 px tile"),
        ("blank_tiles", "no tile written: all 4 tiles of 64 px have more than 50% NaN"),
    ],
)
def test_script_refuses_an_image_without_tiles(tmp_path, capsys, case, message):
    data = {
        "all_nan": np.full((128, 128), np.nan),
        "too_small": np.zeros((40, 40)),
        # 60 % of every tile blank: finite pixels, yet no tile kept
        "blank_tiles": np.where(np.arange(128) % 64 < 39, np.nan, 0.0)[None, :].repeat(128, 0),
    }[case]
    out = tmp_path / "out"
    args = [*_field_with(tmp_path / f"{case}.fits", data), "--out", str(out), "--size", "64"]
    assert _script_main()(args) == 2
    err = capsys.readouterr().err
    assert ": error: " in err and err.count("\n") == 1  # one line, no traceback
    assert f"{tmp_path / case}.fits" in err and message in err
    assert not out.exists()  # no empty data set left behind


def test_script_second_image_without_tiles_leaves_nothing(tmp_path, capsys):
    """One good field and one blank: an error, and not a data set of the good field alone."""
    good = _field_with(tmp_path / "good.fits", np.zeros((128, 128)))
    blank = _field_with(tmp_path / "blank.fits", np.full((128, 128), np.nan))
    out = tmp_path / "out"
    out.mkdir()  # an existing, empty folder is kept, and stays empty
    args = ["--image", good[1], blank[1], "--catalog", good[3], blank[3], "--size-unit", "arcsec"]
    assert _script_main()([*args, "--out", str(out), "--size", "64"]) == 2
    assert "blank.fits: every pixel is NaN" in capsys.readouterr().err
    assert out.is_dir() and not any(out.iterdir())
    # the good field alone works
    assert _script_main()([*good, "--out", str(out), "--size", "64"]) == 0
    assert json.loads((out / "summary.json").read_text())["tiles"] == 4


def test_overlapping_tiles_with_a_stride(tmp_path):
    """Tiles every ``stride`` pixels, the last flush with the far edge: a source is labelled
    in every tile holding its centre."""
    wcs = _fake_field(tmp_path / "f.fits")
    ra, dec = wcs.all_pix2world([60.0], [60.0], 0)
    (tmp_path / "c.csv").write_text(f"RA,DEC,Maj,Min,PA\n{ra[0]},{dec[0]},4,3,0\n")
    out = tmp_path / "o"
    s = prepare_mgcls(
        image=tmp_path / "f.fits",
        catalog=tmp_path / "c.csv",
        out_dir=out,
        size=64,
        stride=48,
        size_unit="arcsec",
    )
    # starts 0, 48 and the flush 64 along each axis
    assert s["tiles"] == 9
    names = sorted(p.name for p in (out / "images").iterdir())
    assert names[0].endswith("_y00000_x00000.npy") and names[-1].endswith("_y00064_x00064.npy")
    # display x 60.5 lies in the tiles starting at 0, 48 (not 64); display y 128-60.5 = 67.5
    # in those starting at 48 and 64
    assert s["boxes"] == 4
    with pytest.raises(ValueError, match="stride must be in"):
        prepare_mgcls(
            image=tmp_path / "f.fits",
            catalog=tmp_path / "c.csv",
            out_dir=tmp_path / "o2",
            size=64,
            stride=65,
        )
