"""A user's folder of class subfolders as a classification set: layouts, split, stretch,
registration and the errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from astrodet.data import DatasetCatalog, MetadataCatalog
from astrodet.data.image_folder import load_image_folder, register_image_folder


def _fits(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.writeto(path, np.full((8, 8), value, np.float32))


def _png(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)


@pytest.fixture
def flat_folder(tmp_path):
    """ROOT/<class>/: 10 FR-I and 5 FR-II FITS files, a stray text file."""
    root = tmp_path / "My Radio Set"
    for i in range(10):
        _fits(root / "FRI" / f"a{i}.fits", i)
    for i in range(5):
        _fits(root / "FRII" / "deeper" / f"b{i}.fits", 100 + i)
    (root / "FRI" / "notes.txt").write_text("not an image")
    return root


def test_flat_folder_is_split_by_class(flat_folder, caplog):
    with caplog.at_level(logging.WARNING):
        splits, classes = load_image_folder(flat_folder)
    assert classes == ["FRI", "FRII"]
    assert "skipped 1 files that are not images, e.g. notes.txt" in caplog.text
    train, test = splits["train"], splits["test"]
    assert [sum(d["label"] == c for d in test) for c in (0, 1)] == [2, 1]  # 20 % of each
    assert len(train) + len(test) == 15
    assert not {d["file_name"] for d in train} & {d["file_name"] for d in test}
    # labels follow the folders (nested files included), values are read back
    for d in train + test:
        value = fits.getdata(d["file_name"])[0, 0]
        assert (value >= 100) == (d["label"] == 1)
    again, _ = load_image_folder(flat_folder)
    assert again == splits  # seeded
    other, _ = load_image_folder(flat_folder, seed=1)
    assert other["test"] != splits["test"]


def test_register_names_the_folder_and_picks_the_stretch(flat_folder, tmp_path):
    name = register_image_folder(flat_folder)
    try:
        assert name == "my_radio_set"
        meta = MetadataCatalog.get(f"{name}_train")
        assert meta.task == "classification" and meta.thing_classes == ["FRI", "FRII"]
        assert meta.stretch == "zscale"  # FITS: raw fluxes
        assert len(DatasetCatalog.get(f"{name}_test")) == 3
        assert register_image_folder(flat_folder) == name  # same folder: same name
        clash = tmp_path / "elsewhere" / "My Radio Set"
        _fits(clash / "A" / "x.fits", 0)
        _fits(clash / "B" / "y.fits", 1)
        with pytest.raises(ValueError, match="'my_radio_set' is taken"):
            register_image_folder(clash)
        pngs = tmp_path / "pngs"
        for c in ("spiral", "elliptical"):
            for i in range(3):
                _png(pngs / "train" / c / f"{i}.png", 40 * i)
            _png(pngs / "test" / c / "t.png", 7)
        png_name = register_image_folder(pngs, name="my_pngs")
        assert MetadataCatalog.get("my_pngs_train").stretch is None  # already display images
        assert [len(DatasetCatalog.get(f"my_pngs_{s}")) for s in ("train", "test")] == [6, 2]
        assert MetadataCatalog.get("my_pngs_test").thing_classes == ["elliptical", "spiral"]
    finally:
        for n in (name, "my_pngs"):
            for s in ("train", "test"):
                if f"{n}_{s}" in DatasetCatalog.list():
                    DatasetCatalog.remove(f"{n}_{s}")
                    MetadataCatalog.remove(f"{n}_{s}")
    assert png_name == "my_pngs"


def test_bad_folders_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no class subfolders"):
        load_image_folder(tmp_path / "empty")
    _fits(tmp_path / "one" / "only" / "a.fits", 1)
    _fits(tmp_path / "one" / "only" / "b.fits", 2)
    with pytest.raises(ValueError, match="two or more class subfolders, found 1"):
        load_image_folder(tmp_path / "one")
    split = tmp_path / "split"
    _fits(split / "train" / "a" / "x.fits", 0)
    _fits(split / "test" / "a" / "x.fits", 0)
    _fits(split / "test" / "zz" / "y.fits", 0)
    with pytest.raises(ValueError, match="classes the training split lacks: zz"):
        load_image_folder(split)
    (split / "test" / "zz" / "y.fits").unlink()
    (split / "test" / "zz").rmdir()
    (split / "train" / "a" / "x.fits").unlink()
    with pytest.raises(ValueError, match="the train split has no images"):
        load_image_folder(split)
