"""PyBDSF labels: cached catalogues (a second call is a lookup), COCO tiles from them, the
sky-overlap split of the FIRST set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("bdsf")

from astrodet.sky import labels  # noqa: E402


def test_pybdsf_catalogue_is_cached_by_file_and_options(real_data, tmp_path, monkeypatch):
    image = real_data / "pybdsf_test" / "ch0_I.fits"
    calls = []
    real_run = labels.run_pybdsf

    def counting_run(*args, **kwargs):
        calls.append(kwargs)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(labels, "run_pybdsf", counting_run)
    monkeypatch.setenv("ASTRODET_CACHE", str(tmp_path / "cache"))
    first = labels.pybdsf_catalogue(image, thresh_isl=3.0, thresh_pix=5.0)
    second = labels.pybdsf_catalogue(image, thresh_isl=3.0, thresh_pix=5.0)
    assert first == second and first.is_file() and len(calls) == 1
    assert first.parent == tmp_path / "cache" / "pybdsf"
    # other options are another entry
    other = labels.pybdsf_catalogue(image, thresh_isl=4.0, thresh_pix=6.0)
    assert other != first and len(calls) == 2
    # the key is the content: a copy elsewhere is found, a changed pixel is not
    import shutil

    from astropy.io import fits

    shutil.copy(image, tmp_path / "ch0_I.fits")
    assert labels.pybdsf_catalogue(tmp_path / "ch0_I.fits", thresh_isl=3.0, thresh_pix=5.0) == first
    assert len(calls) == 2
    with fits.open(tmp_path / "ch0_I.fits", mode="update") as hdul:
        hdul[0].data[0, 0, 10, 10] += 1.0
    changed = labels.pybdsf_catalogue(tmp_path / "ch0_I.fits", thresh_isl=3.0, thresh_pix=5.0)
    assert changed != first and len(calls) == 3


def test_prepare_mgcls_with_catalog_pybdsf_writes_coco_boxes(real_data, tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "prepare_mgcls", Path(__file__).resolve().parents[2] / "datasets" / "prepare_mgcls.py"
    )
    prepare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare)
    monkeypatch.setenv("ASTRODET_CACHE", str(tmp_path / "cache"))
    image = real_data / "pybdsf_test" / "ch0_I.fits"
    args = ["--image", str(image), "--catalog", "pybdsf", "--out", str(tmp_path / "coco")]
    assert prepare.main([*args, "--size", "64", "--max-major-beams", "0"]) == 0
    data = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    summary = json.loads((tmp_path / "coco" / "summary.json").read_text())
    assert summary["tiles"] == 4 == len(data["images"])  # 129 px -> 2 x 2 tiles of 64
    assert summary["boxes"] == len(data["annotations"]) >= 10
    boxes = np.array([a["bbox"] for a in data["annotations"]])
    assert np.all(boxes[:, 2:] > 0) and np.all(boxes[:, :2] >= 0)
    assert np.all(boxes[:, :2] + boxes[:, 2:] <= 64 + 1e-6)
    assert len(list((tmp_path / "cache" / "pybdsf").glob("ch0_I.*.srl.fits"))) == 1


def test_first_split_keeps_overlapping_images_together():
    items = [
        {"name": "a", "kind": "mirabest", "ra": 10.0, "dec": 0.0, "size": 300},
        {"name": "b", "kind": "rgz_first", "ra": 10.02, "dec": 0.0, "size": 100},
        {"name": "c", "kind": "mirabest", "ra": 50.0, "dec": 0.0, "size": 300},
        {"name": "d", "kind": "rgz_first", "ra": 90.0, "dec": 0.0, "size": 100},
        {"name": "e", "kind": "rgz_first", "ra": 90.0, "dec": 0.03, "size": 100},
        {"name": "f", "kind": "rgz_first", "ra": 120.0, "dec": 0.0, "size": 100},
    ]
    groups = labels._groups(items)
    assert [0, 1] in groups and [3, 4] in groups and [2] in groups and [5] in groups
    for seed in range(5):
        split = labels.first_split(items, test_fraction=0.5, seed=seed)
        assert split["a"] == split["b"] and split["d"] == split["e"]
        assert set(split.values()) == {"train", "test"}
    assert labels.first_split(items, seed=1) == labels.first_split(items, seed=1)


def test_first_set_is_rebuilt_only_when_its_settings_change(real_data, tmp_path, monkeypatch):
    calls = []

    def fake_label_fields(paths, *, out_dir, stride=None, **kwargs):
        calls.append((Path(out_dir).name, stride, len(paths)))
        return {"tiles": len(paths)}

    monkeypatch.setattr(labels, "label_fields", fake_label_fields)
    root = tmp_path / "first"
    labels.build_first_pybdsf(root, real_data=real_data)
    assert [(side, stride) for side, stride, _ in calls] == [
        ("train", labels.FIRST_TRAIN_STRIDE),
        ("test", None),  # held-out tiles side by side
    ]
    assert sum(n for *_, n in calls) == len(list((root / "fields").rglob("*.fits")))
    labels.build_first_pybdsf(root, real_data=real_data)
    assert len(calls) == 2  # complete with these settings: kept
    labels.build_first_pybdsf(root, real_data=real_data, train_stride=None)
    assert len(calls) == 4 and calls[2][1] is None
    assert json.loads((root / "split.json").read_text())["train_stride"] == labels.FIRST_TILE
    fields = {p.stem: p for p in (root / "fields").rglob("*.fits")}
    made = json.loads((root / "split.json").read_text())
    assert made["field_beams_arcsec"].keys() == fields.keys()
    # a set made before the beams followed the declination is rebuilt
    made.pop("beam")
    (root / "split.json").write_text(json.dumps(made))
    labels.build_first_pybdsf(root, real_data=real_data, train_stride=None)
    assert len(calls) == 6


def _tan_header(dec, shape=(100, 100)):
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, dec]
    w.wcs.crpix = [(shape[1] + 1) / 2.0, (shape[0] + 1) / 2.0]
    w.wcs.cdelt = [-labels.FIRST_PIXEL_SCALE / 3600.0, labels.FIRST_PIXEL_SCALE / 3600.0]
    return w.to_header()


@pytest.mark.parametrize("dec, maj", [(10.0, 5.4), (0.0, 6.4), (-5.0, 6.8)])
def test_first_set_fields_carry_the_beam_of_their_declination(dec, maj):
    h = labels._first_header(_tan_header(dec), (100, 100))
    assert (h["BMAJ"] * 3600, h["BMIN"] * 3600, h["BPA"]) == pytest.approx((maj, 5.4, 0.0))


def test_real_first_set_fields_have_southern_beams(real_data, tmp_path, monkeypatch):
    monkeypatch.setattr(labels, "label_fields", lambda paths, **kwargs: {"tiles": len(paths)})
    root = labels.build_first_pybdsf(tmp_path / "first", real_data=real_data)
    beams = json.loads((root / "split.json").read_text())["field_beams_arcsec"]
    from astropy.io import fits

    from astrodet.sky.field import first_beam

    for path in (root / "fields").rglob("*.fits"):
        h = fits.getheader(path)
        b = first_beam(h["CRVAL2"])  # the image centre
        assert beams[path.stem] == pytest.approx([b.maj, b.min, b.pa])
    assert {b[0] for b in beams.values()} == {5.4, 6.4, 6.8}


def test_pybdsf_gets_a_first_images_beam_and_the_cache_follows_it(tmp_path, monkeypatch):
    from astropy.io import fits

    runs = []

    def fake_run(image, *, out_file, beam=None, **options):
        runs.append(beam)
        Path(out_file).parent.mkdir(parents=True, exist_ok=True)
        Path(out_file).write_text("srl")
        return {"n_sources": 0, "seconds": 0.0}

    monkeypatch.setattr(labels, "run_pybdsf", fake_run)
    data = np.zeros((100, 100), np.float32)
    # a SkyView FIRST cutout at Dec -5: no beam keys, SURVEY = 'FIRST'
    h = _tan_header(-5.0)
    h["SURVEY"] = "FIRST"
    fits.PrimaryHDU(data, h).writeto(tmp_path / "skyview.fits")
    out = labels.pybdsf_catalogue(tmp_path / "skyview.fits", cache_dir=tmp_path / "cache")
    assert runs == [[6.8, 5.4, 0.0]]
    # the same pixels with the northern beam written in: another cache entry
    h5 = labels._first_header(_tan_header(-5.0), data.shape)
    h5["BMAJ"] = 5.4 / 3600.0
    fits.PrimaryHDU(data, h5).writeto(tmp_path / "north.fits")
    fits.PrimaryHDU(data, labels._first_header(_tan_header(-5.0), data.shape)).writeto(
        tmp_path / "south.fits"
    )
    north = labels.pybdsf_catalogue(tmp_path / "north.fits", cache_dir=tmp_path / "cache")
    south = labels.pybdsf_catalogue(tmp_path / "south.fits", cache_dir=tmp_path / "cache")
    assert len({out.name.split(".")[1], north.name.split(".")[1], south.name.split(".")[1]}) == 3
    assert runs[1:] == [None, None]  # beam keys in the header: PyBDSF reads them
