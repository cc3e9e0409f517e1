"""RGZ: COCO json / VOC XML -> the six classes; classification subset; relabelling."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from astrodet.data.rgz import (
    RGZ_CLASSES,
    normalize_rgz_label,
    prepare_rgz,
    read_rgz_annotations,
    read_rgz_catalogue,
    relabel,
    rgz_classification_dicts,
    scheme_classes,
)

_VOC = """<annotation>
  <filename>{name}.png</filename>
  <size><width>132</width><height>132</height><depth>3</depth></size>
  {objects}
</annotation>"""
_OBJ = "<object><name>{label}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"


def _voc(folder, name, objects):
    folder.mkdir(exist_ok=True)
    objs = "".join(_OBJ.format(label=lab, x0=b[0], y0=b[1], x1=b[2], y1=b[3]) for lab, b in objects)
    (folder / f"{name}.xml").write_text(_VOC.format(name=name, objects=objs))


def _png(folder, name):
    from PIL import Image

    folder.mkdir(exist_ok=True)
    Image.fromarray(np.zeros((132, 132, 3), np.uint8)).save(folder / f"{name}.png")


def test_label_spellings():
    assert normalize_rgz_label("1_1") == "1C_1P"
    assert normalize_rgz_label("2C_3P") == "2C_3P"
    assert normalize_rgz_label("3c3p") == "3C_3P"
    assert normalize_rgz_label("1C-2P") == "1C_2P"
    with pytest.raises(ValueError, match=r"a.xml: unknown RGZ label '3_1'"):
        normalize_rgz_label("3_1", source="a.xml")


def test_voc_dir(tmp_path):
    voc = tmp_path / "voc"
    _voc(voc, "a", [("1_1", (10, 20, 19, 29))])
    _voc(voc, "b", [("2C_3P", (1, 1, 60, 40)), ("1_2", (70, 70, 80, 90))])
    dicts = read_rgz_annotations(voc)
    assert [d["file_name"] for d in dicts] == ["a.png", "b.png"]
    a = dicts[0]["annotations"][0]
    assert a["bbox"] == [9.0, 19.0, 10.0, 10.0]  # 1-based inclusive -> COCO
    assert a["category_id"] == RGZ_CLASSES.index("1C_1P")
    assert [x["category_id"] for x in dicts[1]["annotations"]] == [4, 1]


def test_voc_unknown_label_names_file(tmp_path):
    voc = tmp_path / "voc"
    _voc(voc, "bad", [("4_4", (1, 1, 5, 5))])
    with pytest.raises(ValueError, match=r"bad\.xml: unknown RGZ label '4_4'"):
        read_rgz_annotations(voc)
    (voc / "bad.xml").write_text("<annotation><filename>x.png</filename></annotation>")
    with pytest.raises(ValueError, match=r"bad\.xml: missing or bad <size>"):
        read_rgz_annotations(voc)
    with pytest.raises(FileNotFoundError, match="no VOC .xml files"):
        read_rgz_annotations(tmp_path)
    with pytest.raises(FileNotFoundError, match="RGZ annotations .*none.json not found"):
        read_rgz_annotations(tmp_path / "none.json")


def _coco(path, names=("1_1", "2_2")):
    data = {
        "images": [
            {"id": 7, "file_name": "x.png", "height": 132, "width": 132},
            {"id": 8, "file_name": "y.png", "height": 132, "width": 132},
        ],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "bbox": [1, 2, 3, 4]},
            {"id": 2, "image_id": 8, "category_id": 2, "bbox": [10, 10, 30, 20]},
            {"id": 3, "image_id": 8, "category_id": 1, "bbox": [60, 60, 4, 4]},
        ],
    }
    path.write_text(json.dumps(data))


def test_coco_json(tmp_path):
    _coco(tmp_path / "a.json")
    dicts = read_rgz_annotations(tmp_path / "a.json")
    assert [d["image_id"] for d in dicts] == [7, 8]
    assert [a["category_id"] for a in dicts[1]["annotations"]] == [3, 0]
    _coco(tmp_path / "b.json", names=("1_1", "galaxy"))
    with pytest.raises(ValueError, match=r"b\.json: unknown RGZ label 'galaxy'"):
        read_rgz_annotations(tmp_path / "b.json")
    (tmp_path / "c.json").write_text('{"images": []}')
    with pytest.raises(ValueError, match="no 'annotations' key"):
        read_rgz_annotations(tmp_path / "c.json")


def test_classification_subset_and_schemes(tmp_path):
    _coco(tmp_path / "a.json")
    dicts = read_rgz_annotations(tmp_path / "a.json")
    dicts.append({"file_name": "z.png", "image_id": 9, "annotations": []})
    single, counts = rgz_classification_dicts(dicts)
    assert counts == {"kept": 1, "skipped_empty": 1, "skipped_multi": 1}
    assert single == [{"image_id": 7, "label": 0, "file_name": "x.png"}]
    every, counts = rgz_classification_dicts(dicts, single=False, scheme="peaks")
    assert counts["kept"] == 2
    assert every[1]["label"] == 1  # largest box 2C_2P -> 2 peaks
    assert scheme_classes("components") == ["1C", "2C", "3C"]
    assert relabel("2C_3P", "peaks") == 2 and relabel("2C_3P", "components") == 1
    assert relabel("2C_3P", "morphology") == 4
    with pytest.raises(ValueError, match="unknown scheme 'size'"):
        rgz_classification_dicts(dicts, scheme="size")


def test_prepare_rgz_copies_and_counts_missing(tmp_path):
    from astrodet.data.coco import load_coco_json

    voc, imgs = tmp_path / "voc", tmp_path / "imgs"
    _voc(voc, "a", [("1_1", (10, 20, 19, 29))])
    _voc(voc, "b", [("3_3", (1, 1, 100, 100))])
    _png(imgs, "a")  # b.png is missing
    out = tmp_path / "out"
    s = prepare_rgz(annotations=voc, images=imgs, out_dir=out)
    assert s["images"] == 1 and s["missing_images"] == 1 and s["per_class"]["1C_1P"] == 1
    dicts = load_coco_json(str(out / "annotations.json"), str(out / "images"))
    assert len(dicts) == 1 and (out / "images/a.png").is_file()
    cats = json.loads((out / "annotations.json").read_text())["categories"]
    assert [c["name"] for c in cats] == RGZ_CLASSES
    with pytest.raises(FileExistsError, match="--overwrite"):
        prepare_rgz(annotations=voc, images=imgs, out_dir=out)


def test_prepare_script(tmp_path):
    import subprocess
    import sys

    voc, imgs = tmp_path / "voc", tmp_path / "imgs"
    _voc(voc, "a", [("1_2", (10, 20, 19, 29))])
    _png(imgs, "a")
    cmd = [sys.executable, "datasets/prepare_rgz.py", "--annotations", str(voc)]
    r = subprocess.run(
        [*cmd, "--images", str(imgs), "--out", str(tmp_path / "o")], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["per_class"]["1C_2P"] == 1
    r = subprocess.run(
        [*cmd, "--images", str(tmp_path / "none"), "--out", str(tmp_path / "p")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "image folder" in r.stderr


def test_real_catalogue_class_counts(real_data):
    rows = read_rgz_catalogue(real_data / "rgz_catalogue/full_catalogue.csv.tgz")
    assert len(rows) == 11836
    classes = Counter(r["rgz_class"] for r in rows)
    assert None not in classes and set(classes) == set(RGZ_CLASSES)
    comps = Counter(relabel(r["rgz_class"], "components") for r in rows)
    peaks = Counter(relabel(r["rgz_class"], "peaks") for r in rows)
    assert sum(comps.values()) == sum(peaks.values()) == len(rows)
    # components never exceed peaks; single-component sources dominate RGZ
    assert all(r["num_peaks"] >= r["num_cpnts"] for r in rows)
    assert comps[0] > comps[1] > comps[2] > 0
    assert peaks[0] == classes["1C_1P"] and comps[2] == classes["3C_3P"]
    assert all(peaks[k] > 1000 for k in range(3))


def test_catalogue_missing_columns(tmp_path):
    (tmp_path / "c.csv").write_text("first_id,num_cpnts\nA,1\n")
    with pytest.raises(ValueError, match=r"missing columns \['num_peaks'\]"):
        read_rgz_catalogue(tmp_path / "c.csv")
