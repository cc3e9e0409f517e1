"""tools/classical_baseline.py end to end on a tiny COCO set of simulated point sources."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "classical_baseline.py"


def _tool():
    spec = importlib.util.spec_from_file_location("classical_baseline_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_set(tmp_path):
    """Three 64x64 fields with two or three round Gaussians each (sigma 2, SNR >= 15);
    boxes are the FWHM circles' bounding boxes, as MGCLS labels are made."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    root.mkdir()
    half = 2.0 * math.sqrt(2.0 * math.log(2.0))  # FWHM / 2 for sigma = 2
    yy, xx = np.mgrid[0:64, 0:64] + 0.5
    images, anns = [], []
    for i in range(3):
        img = rng.normal(0.0, 1.0, (64, 64))
        for x, y in rng.uniform(8, 56, (2 + i % 2, 2)):
            if any(
                math.hypot(x - a["c"][0], y - a["c"][1]) < 12 for a in anns if a["image_id"] == i
            ):
                continue
            img += rng.uniform(15, 60) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 8.0)
            box = [x - half, y - half, 2 * half, 2 * half]
            anns.append(
                {"id": len(anns) + 1, "image_id": i, "category_id": 1, "bbox": box, "c": (x, y)}
            )
        np.save(root / f"{i}.npy", img.astype(np.float32))
        images.append({"id": i, "file_name": f"{i}.npy", "height": 64, "width": 64})
    for a in anns:
        del a["c"]
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "source"}]}
    json_file = tmp_path / "test.json"
    json_file.write_text(json.dumps(gt))
    return json_file, root, len(anns)


def test_end_to_end(tiny_set, tmp_path):
    json_file, root, n_sources = tiny_set
    out = tmp_path / "out"
    argv = ["--json-file", str(json_file), "--image-root", str(root), "--output", str(out)]
    assert _tool().main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"bbox/AP", "bbox/AP50", "bbox/AP75", "bbox/AP50-source"} <= set(metrics)
    assert metrics["bbox/AP50"] > 0.9
    assert metrics["bbox/APl"] is None  # no large boxes: undefined, null
    results = json.loads((out / "coco_instances_results.json").read_text())
    assert len(results) >= n_sources and {r["category_id"] for r in results} == {1}
    # An existing output folder is refused unless --overwrite.
    with pytest.raises(SystemExit) as e:
        _tool().main(argv)
    assert e.value.code == 2
    assert _tool().main([*argv, "--overwrite", "--nsigma", "1000"]) == 0
    assert json.loads((out / "metrics.json").read_text())["bbox/AP50"] == 0.0


def _exit_message(tool, argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        tool.main(argv)
    assert e.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_bad_input(tiny_set, tmp_path, capsys):
    json_file, root, _ = tiny_set
    tool = _tool()
    argv = ["--image-root", str(root), "--output", str(tmp_path / "o")]
    msg = _exit_message(tool, ["--json-file", str(tmp_path / "missing.json"), *argv], capsys)
    assert "error:" in msg and "missing.json not found" in msg
    msg = _exit_message(
        tool, ["--json-file", str(json_file), *argv, "--category", "galaxy"], capsys
    )
    assert "category 'galaxy' not in the json" in msg
    msg = _exit_message(
        tool, ["--json-file", str(json_file), *argv, "--calibrate-on", str(json_file)], capsys
    )
    assert "--calibrate-images" in msg
    both = ["--calibrate-on", str(json_file), "--calibrate-images", str(root), "--box-scale", "2"]
    assert "exclude" in _exit_message(tool, ["--json-file", str(json_file), *argv, *both], capsys)


def test_calibration_learns_the_box_convention(tiny_set, tmp_path):
    """Labels drawn at 3 x the FWHM box: the default finder scores badly, the calibrated one
    (fitted on a 'training' copy of the labels) recovers the scale and the AP50."""
    json_file, root, _ = tiny_set
    gt = json.loads(json_file.read_text())
    for a in gt["annotations"]:
        x, y, w, h = a["bbox"]
        a["bbox"] = [x + w / 2 - 1.5 * w, y + h / 2 - 1.5 * h, 3 * w, 3 * h]
    big = tmp_path / "big.json"
    big.write_text(json.dumps(gt))
    common = ["--json-file", str(big), "--image-root", str(root)]
    assert _tool().main([*common, "--output", str(tmp_path / "plain")]) == 0
    plain = json.loads((tmp_path / "plain" / "metrics.json").read_text())["bbox/AP50"]
    cal = [
        "--calibrate-on",
        str(big),
        "--calibrate-images",
        str(root),
        "--calibrate-nsigma",
        "5",
        "7",
    ]
    assert _tool().main([*common, "--output", str(tmp_path / "cal"), *cal]) == 0
    fit = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert fit["box_scale"] == pytest.approx(3.0, rel=0.15)
    assert fit["median_size_ratio"] == pytest.approx(3.0, rel=0.15)
    assert {g["nsigma"] for g in fit["grid"]} == {5.0, 7.0}
    calibrated = json.loads((tmp_path / "cal" / "metrics.json").read_text())["bbox/AP50"]
    assert plain < 0.2 and calibrated > 0.9
    settings = json.loads((tmp_path / "cal" / "finder.json").read_text())
    assert settings["box_scale"] == fit["box_scale"] and settings["calibrated_on"] == str(big)
