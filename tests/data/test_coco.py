"""COCO json reading with validation, writing, round trips, label-fraction subsets."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from astrodet.data.catalog import MetadataCatalog
from astrodet.data.coco import (
    CocoLoadSummary,
    get_load_summary,
    label_fraction_indices,
    load_coco_json,
    save_coco_json,
    subset_dicts,
)
from astrodet.structures import BoxMode


def _image(root, name, h=20, w=30):
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / name, np.zeros((h, w), np.float32))
    return name


def _write(path, images, annotations, categories=None):
    categories = categories or [{"id": 1, "name": "compact"}, {"id": 3, "name": "extended"}]
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return path


def _img(i, name, h=20, w=30):
    return {"id": i, "file_name": name, "height": h, "width": w}


def _ann(i, image_id, bbox, cat=1):
    return {"id": i, "image_id": image_id, "bbox": bbox, "category_id": cat}


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "images"
    for n in ("a.npy", "b.npy", "c.npy"):
        _image(root, n)
    return root


def test_good_file_to_detectron2_dicts(tmp_path, root):
    js = _write(
        tmp_path / "ok.json",
        [_img(10, "a.npy"), _img(11, "b.npy")],
        [_ann(1, 10, [1, 2, 3, 4], 3), _ann(2, 10, [5, 5, 2, 2], 1), _ann(3, 11, [0, 0, 30, 20])],
    )
    dicts, summary = load_coco_json(js, root, return_summary=True)
    assert [d["image_id"] for d in dicts] == [10, 11]
    d = dicts[0]
    assert d["file_name"] == str(root / "a.npy") and (d["height"], d["width"]) == (20, 30)
    assert d["annotations"][0] == {
        "bbox": [1.0, 2.0, 3.0, 4.0],
        "bbox_mode": BoxMode.XYWH_ABS,
        "category_id": 1,  # id 3 -> contiguous 1 (sorted ids 1, 3)
    }
    assert d["annotations"][1]["category_id"] == 0
    assert summary.images == 2 and summary.annotations == 3 and not summary.has_problems
    assert get_load_summary(js) is summary
    assert isinstance(summary, CocoLoadSummary)


def test_sets_metadata(tmp_path, root):
    js = _write(tmp_path / "m.json", [_img(1, "a.npy")], [])
    name = "_test_coco_meta"
    try:
        load_coco_json(js, root, dataset_name=name)
        meta = MetadataCatalog.get(name)
        assert meta.thing_classes == ["compact", "extended"]
        assert meta.thing_dataset_id_to_contiguous_id == {1: 0, 3: 1}
    finally:
        MetadataCatalog.pop(name, None)


def test_missing_and_malformed_json(tmp_path, root):
    with pytest.raises(FileNotFoundError, match="absent.json"):
        load_coco_json(tmp_path / "absent.json", root)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json.*not valid json"):
        load_coco_json(bad, root)
    noimages = tmp_path / "noimages.json"
    noimages.write_text(json.dumps({"categories": []}))
    with pytest.raises(ValueError, match=r"noimages\.json.*'images'"):
        load_coco_json(noimages, root)
    cats = [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]
    with pytest.raises(ValueError, match=r"duplicated category ids \[1\]"):
        load_coco_json(_write(tmp_path / "dupcat.json", [], [], cats), root)


def test_missing_images_dropped_and_counted(tmp_path, root, caplog):
    js = _write(
        tmp_path / "miss.json",
        [_img(1, "a.npy"), _img(2, "gone.npy"), _img(3, "gone2.npy")],
        [_ann(1, 1, [1, 1, 2, 2]), _ann(2, 2, [1, 1, 2, 2])],
    )
    with caplog.at_level(logging.WARNING, logger="astrodet.data.coco"):
        dicts, s = load_coco_json(js, root, return_summary=True)
    assert [d["image_id"] for d in dicts] == [1]
    assert s.missing_images == 2 and s.images == 1 and s.annotations == 1
    assert "missing_images=2" in caplog.text and "gone.npy" in caplog.text
    assert len([r for r in caplog.records if r.name == "astrodet.data.coco"]) == 1  # one line


def test_duplicated_image_ids_error(tmp_path, root):
    js = _write(tmp_path / "dupimg.json", [_img(1, "a.npy"), _img(1, "b.npy")], [])
    with pytest.raises(ValueError, match=r"duplicated image id 1 \(a\.npy and b\.npy\)"):
        load_coco_json(js, root)


def test_duplicated_annotation_ids(tmp_path, root):
    same = _ann(7, 1, [1, 1, 2, 2])
    js = _write(tmp_path / "dupann.json", [_img(1, "a.npy")], [same, dict(same)])
    dicts, s = load_coco_json(js, root, return_summary=True)
    assert s.duplicate_annotations == 1 and len(dicts[0]["annotations"]) == 1
    js = _write(tmp_path / "clash.json", [_img(1, "a.npy")], [same, _ann(7, 1, [5, 5, 2, 2])])
    with pytest.raises(ValueError, match="annotation id 7 is used by two different"):
        load_coco_json(js, root)


def test_boxes_clipped_dropped_counted(tmp_path, root):
    anns = [
        _ann(1, 1, [-2, -3, 6, 6]),  # partly outside: clipped
        _ann(2, 1, [25, 15, 10, 10]),  # partly outside: clipped
        _ann(3, 1, [4, 4, 0, 5]),  # zero width
        _ann(4, 1, [4, 4, 5, -1]),  # negative height
        _ann(5, 1, [40, 40, 5, 5]),  # wholly outside
        _ann(6, 1, [1, 1, 2]),  # not 4 numbers
        _ann(7, 1, [1, 1, float("nan"), 2]) | {"bbox": [1, 1, "x", 2]},  # not numbers
        _ann(8, 1, [1, 1, 2, 2], cat=99),  # unknown category
        _ann(9, 42, [1, 1, 2, 2]),  # unknown image
        _ann(10, 1, [2, 2, 3, 3]),  # fine
    ]
    js = _write(tmp_path / "boxes.json", [_img(1, "a.npy"), _img(2, "b.npy")], anns)
    dicts, s = load_coco_json(js, root, return_summary=True)
    boxes = [a["bbox"] for a in dicts[0]["annotations"]]
    assert boxes == [[0.0, 0.0, 4.0, 3.0], [25.0, 15.0, 5.0, 5.0], [2.0, 2.0, 3.0, 3.0]]
    assert s.clipped_boxes == 2
    assert s.degenerate_boxes == 2
    assert s.outside_boxes == 1
    assert s.invalid_boxes == 2
    assert s.unknown_category == 1
    assert s.unknown_image == 1
    assert s.images_without_boxes == 1 and len(dicts) == 2  # b.npy kept without boxes
    assert dicts[1]["annotations"] == []
    text = str(s)
    assert "clipped_boxes=2" in text and "unknown_category=1" in text


def test_size_read_from_image_when_absent(tmp_path, root):
    _image(root, "wide.npy", h=7, w=11)
    js = _write(tmp_path / "nosize.json", [{"id": 1, "file_name": "wide.npy"}], [])
    dicts, s = load_coco_json(js, root, return_summary=True)
    assert (dicts[0]["height"], dicts[0]["width"]) == (7, 11) and s.sizes_read == 1


def _dicts(root):
    return [
        {
            "file_name": str(root / "a.npy"),
            "height": 20,
            "width": 30,
            "image_id": 5,
            "annotations": [
                {"bbox": [1.0, 2.0, 3.0, 4.0], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0},
                {"bbox": [2.0, 2.0, 6.0, 8.0], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 1},
            ],
        },
        {
            "file_name": "b.npy",
            "height": 20,
            "width": 30,
            "image_id": np.int64(6),
            "annotations": [],
        },
    ]


def test_save_round_trip_and_pycocotools(tmp_path, root):
    out = tmp_path / "out" / "annotations.json"
    save_coco_json(out, _dicts(root), ["compact", "extended"], image_root=root)
    raw = json.loads(out.read_text())
    assert [c["id"] for c in raw["categories"]] == [1, 2]
    assert raw["images"][0]["file_name"] == "a.npy"  # made relative to image_root
    a0, a1 = raw["annotations"]
    assert a0 == {
        "id": 1,
        "image_id": 5,
        "category_id": 1,
        "bbox": [1.0, 2.0, 3.0, 4.0],
        "area": 12.0,
        "iscrowd": 0,
    }
    assert a1["bbox"] == [2.0, 2.0, 4.0, 6.0] and a1["category_id"] == 2  # XYXY -> XYWH
    assert not list(out.parent.glob("*.tmp"))  # atomic: no leftovers

    back = load_coco_json(out, root)
    assert [d["image_id"] for d in back] == [5, 6]
    assert back[0]["annotations"][1]["bbox"] == [2.0, 2.0, 4.0, 6.0]
    assert back[0]["annotations"][1]["category_id"] == 1
    assert back[1]["file_name"] == str(root / "b.npy")

    from pycocotools.coco import COCO

    coco = COCO(str(out))
    assert sorted(coco.getImgIds()) == [5, 6]
    assert len(coco.getAnnIds(imgIds=[5])) == 2
    assert coco.loadCats([2])[0]["name"] == "extended"


def test_save_errors(tmp_path, root):
    bad_cat = _dicts(root)
    bad_cat[0]["annotations"][0]["category_id"] = 2
    with pytest.raises(ValueError, match=r"image 5 has category_id 2, outside 0\.\.1"):
        save_coco_json(tmp_path / "x.json", bad_cat, ["a", "b"])
    dup = _dicts(root)
    dup[1]["image_id"] = 5
    with pytest.raises(ValueError, match="duplicated image_id 5"):
        save_coco_json(tmp_path / "x.json", dup, ["a", "b"])
    nosize = _dicts(root)
    del nosize[0]["height"]
    with pytest.raises(ValueError, match=r"image 5 lacks \['height'\]"):
        save_coco_json(tmp_path / "x.json", nosize, ["a", "b"])
    assert not (tmp_path / "x.json").exists()


# ------------------------------------------------------------------------ label fractions
def _labels():
    return np.array([0] * 60 + [1] * 30 + [2] * 10)


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5])
def test_fraction_stratified(fraction):
    labels = _labels()
    idx = label_fraction_indices(labels, fraction, seed=0)
    assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
    counts = np.bincount(labels[idx], minlength=3)
    expected = [round(fraction * n) for n in (60, 30, 10)]
    assert counts.tolist() == expected


def test_fraction_reproducible_and_nested():
    labels = _labels()
    a = label_fraction_indices(labels, 0.3, seed=1)
    assert np.array_equal(a, label_fraction_indices(labels, 0.3, seed=1))
    assert not np.array_equal(a, label_fraction_indices(labels, 0.3, seed=2))
    small = label_fraction_indices(labels, 0.1, seed=1)
    assert set(small) <= set(a)  # 10 % within 30 % for one seed


def test_fraction_one_returns_all():
    labels = _labels()
    assert np.array_equal(label_fraction_indices(labels, 1.0, seed=3), np.arange(100))


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("nan"), "half"])
def test_fraction_out_of_range(fraction):
    with pytest.raises(ValueError, match=r"fraction must be .*\(0, 1\]"):
        label_fraction_indices(_labels(), fraction, seed=0)
    with pytest.raises(ValueError, match="fraction"):
        subset_dicts([{"image_id": 1}], fraction, seed=0)


def test_fraction_raises_rare_class_with_warning(caplog):
    labels = np.array([0] * 50 + [1] * 50 + [2] * 2)
    with caplog.at_level(logging.WARNING, logger="astrodet.data.coco"):
        idx = label_fraction_indices(labels, 0.1, seed=0)
    assert set(labels[idx]) == {0, 1, 2}
    assert np.bincount(labels[idx]).tolist() == [5, 5, 1]
    assert "raised to one example per class" in caplog.text and "2" in caplog.text


def test_fraction_unstratified_keeps_every_class(caplog):
    labels = np.array([0] * 95 + [1] * 5)
    with caplog.at_level(logging.WARNING, logger="astrodet.data.coco"):
        found = [
            set(labels[label_fraction_indices(labels, 0.05, seed=s, stratify=False)])
            for s in range(10)
        ]
    assert all(f == {0, 1} for f in found)
    assert "raised to one example per class" in caplog.text


def test_subset_dicts():
    dicts = [{"image_id": i} for i in range(40)]
    sub = subset_dicts(dicts, 0.25, seed=0)
    assert len(sub) == 10
    ids = [d["image_id"] for d in sub]
    assert ids == sorted(ids)  # original order kept
    assert sub == subset_dicts(dicts, 0.25, seed=0)
    assert sub != subset_dicts(dicts, 0.25, seed=1)
    assert subset_dicts(dicts, 1.0, seed=0) == dicts
    assert len(subset_dicts(dicts, 0.001, seed=0)) == 1
    with pytest.raises(ValueError, match="empty"):
        subset_dicts([], 0.5, seed=0)


def test_corrupt_images_dropped_and_counted(tmp_path, root, caplog):
    """A corrupt PNG, a truncated .npy and a truncated FITS are found when the set is loaded,
    dropped and counted, not met in the middle of training."""
    from astropy.io import fits

    (root / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 2)
    raw = (root / "a.npy").read_bytes()
    (root / "cut.npy").write_bytes(raw[: len(raw) - 100])
    fits.PrimaryHDU(np.zeros((100, 100), np.float32)).writeto(root / "cut.fits")
    raw = (root / "cut.fits").read_bytes()
    (root / "cut.fits").write_bytes(raw[:-5000])
    names = ["a.npy", "bad.png", "cut.npy", "cut.fits"]
    js = _write(
        tmp_path / "corrupt.json",
        [_img(i + 1, n) for i, n in enumerate(names)],
        [_ann(i + 1, i + 1, [1, 1, 4, 4]) for i in range(len(names))],
    )
    with caplog.at_level(logging.WARNING, logger="astrodet.data.coco"):
        dicts, s = load_coco_json(js, root, return_summary=True)
    assert [d["image_id"] for d in dicts] == [1]
    assert s.corrupt_images == 3 and s.images == 1 and s.annotations == 1 and s.has_problems
    assert "corrupt_images=3" in caplog.text
    assert all(n in caplog.text for n in ("bad.png", "cut.npy", "cut.fits"))
    assert get_load_summary(js).corrupt_images == 3
    # the check can be left out (then the files are met when read)
    assert len(load_coco_json(js, root, check_images=False)) == 4
