"""DatasetCatalog / MetadataCatalog / register_coco_instances with Detectron2's behaviour."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from astrodet.data.catalog import (
    DatasetCatalog,
    Metadata,
    MetadataCatalog,
    register_coco_instances,
)
from astrodet.structures import BoxMode


@pytest.fixture
def names():
    """Unique names, removed from both catalogs afterwards."""
    used = []

    def make(name):
        name = f"_test_catalog_{name}"
        used.append(name)
        return name

    yield make
    for name in used:
        DatasetCatalog.pop(name, None)
        MetadataCatalog.pop(name, None)


def test_register_get_list(names):
    name = names("toy")
    DatasetCatalog.register(name, lambda: [{"image_id": 1}])
    assert name in DatasetCatalog.list()
    assert DatasetCatalog.get(name) == [{"image_id": 1}]
    with pytest.raises(AssertionError, match="already registered"):
        DatasetCatalog.register(name, lambda: [])
    with pytest.raises(AssertionError, match="callable"):
        DatasetCatalog.register(names("notcallable"), [1, 2])
    DatasetCatalog.remove(name)
    assert name not in DatasetCatalog.list()


def test_unknown_dataset_lists_registered(names):
    name = names("known")
    DatasetCatalog.register(name, lambda: [])
    with pytest.raises(KeyError, match=f"'nope' is not registered.*{name}"):
        DatasetCatalog.get("nope")


def test_metadata_attribute_bag(names):
    name = names("meta")
    meta = MetadataCatalog.get(name)
    assert meta is MetadataCatalog.get(name) and meta.name == name
    meta.thing_classes = ["a", "b"]
    meta.set(stretch="zscale", task="detection")
    assert meta.thing_classes == ["a", "b"] and meta.stretch == "zscale"
    meta.thing_classes = ("a", "b")  # an equal value is fine
    meta.set(stretch="zscale")
    with pytest.raises(AssertionError, match=r"thing_classes.*different value"):
        meta.thing_classes = ["a", "c"]
    with pytest.raises(AssertionError, match="stretch"):
        meta.set(stretch="log")
    assert meta.get("evaluator_type") is None
    assert meta.get("evaluator_type", "coco") == "coco"
    assert meta.get("task") == "detection"
    with pytest.raises(AttributeError, match=r"'missing'.*available"):
        _ = meta.missing
    assert getattr(meta, "missing", 5) == 5
    d = meta.as_dict()
    assert d["thing_classes"] == ["a", "b"] and d["name"] == name
    d["task"] = "changed"  # a copy
    assert meta.task == "detection"
    assert "stretch" in meta and "missing" not in meta
    assert name in MetadataCatalog.list()


def test_metadata_standalone_and_pickle():
    meta = Metadata(thing_classes=["x"], stretch=None)
    assert meta.name == "N/A" and meta.stretch is None
    copy = pickle.loads(pickle.dumps(meta))
    assert copy.thing_classes == ["x"]
    meta.mapping = np.arange(3)
    meta.mapping = meta.mapping  # same object: allowed even for arrays


def test_register_coco_instances(names, tmp_path):
    from astrodet.data.coco import save_coco_json

    np.save(tmp_path / "a.npy", np.zeros((10, 10), np.float32))
    dicts = [
        {
            "file_name": "a.npy",
            "height": 10,
            "width": 10,
            "image_id": 1,
            "annotations": [
                {"bbox": [1, 1, 3, 3], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 1}
            ],
        }
    ]
    json_file = tmp_path / "ann.json"
    save_coco_json(json_file, dicts, ["compact", "extended"])
    name = names("coco")
    register_coco_instances(name, {"stretch": "zscale"}, str(json_file), str(tmp_path))
    meta = MetadataCatalog.get(name)
    assert meta.evaluator_type == "coco" and meta.stretch == "zscale"
    assert meta.json_file == str(json_file) and meta.image_root == str(tmp_path)
    assert not hasattr(meta, "thing_classes")  # set lazily on load, as in Detectron2
    out = DatasetCatalog.get(name)
    assert len(out) == 1 and out[0]["annotations"][0]["category_id"] == 1
    assert out[0]["file_name"] == str(tmp_path / "a.npy")
    assert meta.thing_classes == ["compact", "extended"]
    assert meta.thing_dataset_id_to_contiguous_id == {1: 0, 2: 1}
    DatasetCatalog.get(name)  # loading again sets equal values: no error
    with pytest.raises(AssertionError, match="already registered"):
        register_coco_instances(name, {}, str(json_file), str(tmp_path))
