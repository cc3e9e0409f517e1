"""tools/score_association.py end to end on a tiny set made here: predictions as COCO
results and as catalogues, the classical finder's islands beside them, outputs and errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from astrodet.data.rgz import RGZ_CLASSES
from astrodet.data.rgz_first import _tan_wcs

TOOL = Path(__file__).resolve().parents[2] / "tools" / "score_association.py"
SIZE = 100
# per image: sources as (class, components x, y in FITS pixels); image 0 holds a double
SKY = [
    [("2C_2P", [(30.0, 50.0), (70.0, 50.0)]), ("1C_1P", [(50.0, 85.0)])],
    [("1C_1P", [(40.0, 40.0)])],
]


def _tool():
    spec = importlib.util.spec_from_file_location("score_association_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_set(root: Path) -> Path:
    """A two-image set in the layout of ``rgz_first_det``: FITS fields, north-up npy images,
    COCO annotations with the consensus components."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    images, anns = [], []
    for i, sources in enumerate(SKY):
        data = rng.normal(0.0, 1e-4, (SIZE, SIZE))
        for _, comps in sources:
            for x, y in comps:
                data += 5e-3 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0**2))
        name = f"img{i}"
        wcs = _tan_wcs(150.0 + i, 30.0, data.shape)
        header = wcs.to_header()
        header.update(BMAJ=5.4 / 3600, BMIN=5.4 / 3600, BPA=0.0, BUNIT="JY/BEAM")
        (root / "fields" / "test").mkdir(parents=True, exist_ok=True)
        fits.PrimaryHDU(data.astype(np.float32), header=header).writeto(
            root / "fields" / "test" / f"{name}.fits"
        )
        (root / "test" / "images").mkdir(parents=True, exist_ok=True)
        np.save(root / "test" / "images" / f"{name}.npy", data[::-1].astype(np.float32))
        images.append(
            {
                "id": i,
                "file_name": f"{name}.npy",
                "height": SIZE,
                "width": SIZE,
                "kind": "rgz_first",
                "clipped": False,
                "group": i,
                "fits_file": f"fields/test/{name}.fits",
            }
        )
        for cls, comps in sources:
            c = np.asarray(comps)
            x0, x1 = c[:, 0].min() - 5.5, c[:, 0].max() + 6.5
            y0, y1 = c[:, 1].min() - 5.5, c[:, 1].max() + 6.5  # FITS rows
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": RGZ_CLASSES.index(cls) + 1,
                    "bbox": [x0, SIZE - y1, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                    "rgz": {"components": [[x + 0.5, SIZE - (y + 0.5)] for x, y in comps]},
                }
            )
    cats = [{"id": k + 1, "name": c} for k, c in enumerate(RGZ_CLASSES)]
    coco = {"images": images, "annotations": anns, "categories": cats}
    (root / "test" / "annotations.json").write_text(json.dumps(coco))
    return root


def _predictions(coco):
    """The double and the image-0 single found; the image-1 single missed."""
    return [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "score": 0.9,
        }
        for a in coco["annotations"]
        if a["image_id"] == 0
    ]


def test_scores_results_json_beside_the_classical_islands(tmp_path):
    root = make_set(tmp_path / "set")
    coco = json.loads((root / "test" / "annotations.json").read_text())
    (tmp_path / "results.json").write_text(json.dumps(_predictions(coco)))
    out = tmp_path / "out"
    argv = [
        "--data",
        str(root),
        "--predictions",
        str(tmp_path / "results.json"),
        "--output",
        str(out),
    ]
    argv += ["--baselines", "classical", "--bootstrap", "20", "--pictures", "2"]
    assert _tool().main(argv) == 0
    result = json.loads((out / "association.json").read_text())
    det = result["methods"]["detector"]["subsets"]["all"]
    assert det["association"]["multi"]["accuracy"] == 1.0
    assert det["association"]["single"] == {
        **det["association"]["single"],
        "n": 2,
        "accuracy": 0.5,
        "missed": 1,
    }
    assert det["map50"]["per_class"]["2C_2P"] == {
        **det["map50"]["per_class"]["2C_2P"],
        "n": 1,
        "AP50": 1.0,
    }
    assert det["map50"]["per_class"]["1C_1P"]["n"] == 2
    # the classical finder's islands hold one lobe each: the double is split
    classical = result["methods"]["classical islands"]
    assert classical["images_run"] == 2 and classical["skipped_clipped"] == 0
    assoc = classical["subsets"]["all"]["association"]
    assert assoc["multi"]["split"] == 1 and assoc["single"]["accuracy"] == 1.0
    table = (out / "table.md").read_text()
    assert "| detector | all (2) |" in table and "classical islands" in table and "2C_2P" in table
    assert (out / "examples.png").stat().st_size > 5000
    # an existing output folder needs --overwrite
    with pytest.raises(SystemExit):
        _tool().main(argv)


def test_catalogue_folder_gives_the_same_scores(tmp_path):
    root = make_set(tmp_path / "set")
    coco = json.loads((root / "test" / "annotations.json").read_text())
    cats = tmp_path / "cats"
    cats.mkdir()
    for im in coco["images"]:
        rows = [r for r in _predictions(coco) if r["image_id"] == im["id"]]
        table = Table(
            names=("x_min", "y_min", "x_max", "y_max", "class", "class_score"),
            dtype=(float, float, float, float, str, float),
        )
        for r in rows:  # back to the FITS rows of the field
            x, y, w, h = r["bbox"]
            table.add_row(
                (x, SIZE - y - h, x + w, SIZE - y, RGZ_CLASSES[r["category_id"] - 1], 0.9)
            )
        table.write(cats / f"{Path(im['file_name']).stem}.csv", format="ascii.csv")
    out = tmp_path / "out"
    argv = ["--data", str(root), "--predictions", str(cats), "--output", str(out), "--baselines"]
    assert _tool().main([*argv, "--bootstrap", "0", "--pictures", "0"]) == 0
    det = json.loads((out / "association.json").read_text())["methods"]["detector"]["subsets"][
        "all"
    ]
    assert (
        det["association"]["multi"]["accuracy"] == 1.0
        and det["association"]["single"]["accuracy"] == 0.5
    )
    assert det["map50"]["per_class"]["2C_2P"]["AP50"] == 1.0 and det["map50"]["interval"] is None
    # a catalogue missing for an image, or a class not in the six, is a one-line error
    (cats / "img1.csv").unlink()
    with pytest.raises(SystemExit):
        _tool().main([*argv, "--overwrite"])
    Table(
        {
            "x_min": [1.0],
            "y_min": [1.0],
            "x_max": [9.0],
            "y_max": [9.0],
            "class": ["4C_4P"],
            "class_score": [0.9],
        }
    ).write(cats / "img1.csv", format="ascii.csv")
    with pytest.raises(SystemExit):
        _tool().main([*argv, "--overwrite"])


@pytest.mark.slow
def test_pybdsf_islands_join_what_touches(tmp_path):
    pytest.importorskip("bdsf")
    root = make_set(tmp_path / "set")
    out = tmp_path / "out"
    argv = ["--data", str(root), "--output", str(out), "--baselines", "pybdsf"]
    assert _tool().main([*argv, "--bootstrap", "0", "--pictures", "0"]) == 0
    pybdsf = json.loads((out / "association.json").read_text())["methods"]["pybdsf islands"]
    assert pybdsf["images_run"] == 2 and pybdsf["seconds_per_image"] > 0
    assoc = pybdsf["subsets"]["all"]["association"]
    # lobes 40 px apart are two islands: split; the singles are found whole
    assert assoc["multi"]["split"] == 1 and assoc["single"]["accuracy"] == 1.0


def test_lobes_inside_the_double_are_absorbed_unless_told_not_to(tmp_path):
    root = make_set(tmp_path / "set")
    coco = json.loads((root / "test" / "annotations.json").read_text())
    preds = _predictions(coco)
    double = next(r for r in preds if r["category_id"] == RGZ_CLASSES.index("2C_2P") + 1)
    double["score"] = 0.6
    for a in coco["annotations"][0]["rgz"]["components"]:  # a confident box on each lobe
        x, y = a
        preds.append({"image_id": 0, "category_id": 1, "bbox": [x - 4, y - 4, 8, 8], "score": 0.9})
    (tmp_path / "results.json").write_text(json.dumps(preds))
    base = ["--data", str(root), "--predictions", str(tmp_path / "results.json"), "--baselines"]
    base += ["--bootstrap", "0", "--pictures", "0"]

    def multi(out, *extra):
        assert _tool().main([*base, "--output", str(tmp_path / out), *extra]) == 0
        result = json.loads((tmp_path / out / "association.json").read_text())
        return result, result["methods"]["detector"]["subsets"]["all"]["association"]["multi"]

    result, absorbed = multi("default")
    assert absorbed["accuracy"] == 1.0 and result["settings"]["absorb_inside"] == 0.8
    assert "absorbed" in (tmp_path / "default" / "table.md").read_text()
    _, split = multi("off", "--absorb-inside", "0")
    assert split["accuracy"] == 0.0 and split["split"] == 1
    # a config's finder dict sets the threshold: at 0.95 no box is a source
    config = tmp_path / "config.py"
    config.write_text("finder = dict(associate=True, score_thresh=0.95)\n")
    result, missed = multi("config", "--config-file", str(config))
    assert result["settings"]["score_threshold"] == 0.95 and missed["missed"] == 1
    with pytest.raises(SystemExit):
        multi("bad", "--absorb-inside", "1.5")
