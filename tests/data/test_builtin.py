"""Every built-in name is registered on import, lazily, with its metadata."""

from __future__ import annotations

import numpy as np
import pytest

import astrodet.data  # noqa: F401  (registers the sets)
from astrodet.data import DatasetCatalog, MetadataCatalog
from astrodet.data.builtin import BUILTIN_DATASETS

NAMES = [
    "gmnist",
    "rgz",
    "rgz_cls",
    "mgcls",
    "first_radio_galaxy",
    "mirabest",
    "frdeep_first",
    "frdeep_nvss",
    "decals_rings",
    "rgz_first",
    "synthetic_sky",
    "synthetic_rgz",
    "synthetic_galaxies",
]


def test_all_names_registered_with_metadata():
    registered = set(DatasetCatalog.list())
    assert set(BUILTIN_DATASETS) == set(NAMES)
    for base in NAMES:
        for split in ("train", "test"):
            name = f"{base}_{split}"
            assert name in registered
            meta = MetadataCatalog.get(name)
            assert meta.task in ("classification", "detection")
            assert len(meta.thing_classes) >= 1
            assert meta.stretch in (None, "zscale")
    assert "first_radio_galaxy_valid" in registered
    assert MetadataCatalog.get("gmnist_train").thing_classes[0] == "smooth_round"
    assert MetadataCatalog.get("rgz_train").task == "detection"
    assert MetadataCatalog.get("rgz_cls_test").task == "classification"
    assert MetadataCatalog.get("rgz_first_train").stretch == "zscale"
    assert MetadataCatalog.get("mirabest_train").stretch is None
    assert MetadataCatalog.get("mgcls_train").thing_classes == ["source"]
    assert len(MetadataCatalog.get("synthetic_rgz_train").thing_classes) == 6


def test_user_sets_missing_point_to_readme(tmp_path, monkeypatch):
    monkeypatch.setenv("ASTRODET_DATASETS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="prepare_mgcls.py.*datasets/README.md"):
        DatasetCatalog.get("mgcls_train")
    with pytest.raises(FileNotFoundError, match="prepare_rgz.py"):
        DatasetCatalog.get("rgz_cls_test")
    with pytest.raises(FileNotFoundError, match="GalaxyMNIST/raw/train_dataset.hdf5"):
        DatasetCatalog.get("gmnist_train")
    assert list(tmp_path.iterdir()) == []  # nothing was created


def test_synthetic_generated_on_first_use(tmp_path, monkeypatch):
    monkeypatch.setenv("ASTRODET_DATASETS", str(tmp_path))
    dicts = DatasetCatalog.get("synthetic_galaxies_test")
    assert len(dicts) == 200
    assert np.bincount([d["label"] for d in dicts]).tolist() == [50] * 4
    assert (tmp_path / "synthetic/galaxies/.complete.json").is_file()
    rgz = DatasetCatalog.get("synthetic_rgz_test")
    assert len(rgz) == 150 and all(len(d["annotations"]) == 1 for d in rgz)
    assert rgz[0]["file_name"].startswith(str(tmp_path))


def test_real_set_through_catalog(real_data, monkeypatch):
    monkeypatch.setenv("ASTRODET_REAL_DATA", str(real_data))
    test = DatasetCatalog.get("rgz_first_test")
    assert len(test) == 44 and {"image_id", "label", "image"} <= set(test[0])
    valid = DatasetCatalog.get("first_radio_galaxy_valid")
    assert len(valid) == 200 and "file_name" in valid[0]


def test_rgz_cls_from_prepared_rgz(tmp_path, monkeypatch):
    from astrodet.data.coco import save_coco_json
    from astrodet.structures import BoxMode

    monkeypatch.setenv("ASTRODET_DATASETS", str(tmp_path))
    folder = tmp_path / "rgz" / "train"
    (folder / "images").mkdir(parents=True)
    dicts = []
    for i, boxes in enumerate([[(5, [1, 1, 10, 10])], [(0, [1, 1, 5, 5]), (3, [20, 20, 30, 30])]]):
        name = f"{i}.npy"
        np.save(folder / "images" / name, np.ones((64, 64), np.float32))
        anns = [{"bbox": b, "bbox_mode": BoxMode.XYWH_ABS, "category_id": c} for c, b in boxes]
        dicts.append(
            {"file_name": name, "height": 64, "width": 64, "image_id": i, "annotations": anns}
        )
    save_coco_json(
        folder / "annotations.json", dicts, MetadataCatalog.get("rgz_train").thing_classes
    )
    cls = DatasetCatalog.get("rgz_cls_train")
    assert [d["label"] for d in cls] == [5]  # the two-galaxy image is left out
    assert len(DatasetCatalog.get("rgz_train")) == 2
