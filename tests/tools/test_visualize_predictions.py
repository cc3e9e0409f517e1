"""tools/visualize_predictions.py end to end on a tiny set with hand-written predictions."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from astrodet.visualize import class_color

TOOL = Path(__file__).resolve().parents[2] / "tools" / "visualize_predictions.py"


def _tool():
    spec = importlib.util.spec_from_file_location("visualize_predictions_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_set(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    rng = np.random.default_rng(0)
    images = []
    for i in range(3):
        img = rng.normal(0.0, 1e-5, (64, 64)).astype(np.float32)
        img[28:36, 28:36] += 1e-4
        np.save(root / f"f{i}.npy", img)
        images.append({"id": i + 1, "file_name": f"f{i}.npy", "height": 64, "width": 64})
    gt = {
        "images": images,
        "categories": [{"id": 1, "name": "compact"}, {"id": 2, "name": "extended"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [26, 26, 12, 12], "area": 144},
        ],
    }
    json_file = tmp_path / "test.json"
    json_file.write_text(json.dumps(gt))
    preds = [  # image 1: one confident "extended" box and one below the threshold
        {"image_id": 1, "category_id": 2, "bbox": [20, 16, 30, 30], "score": 0.9},
        {"image_id": 1, "category_id": 1, "bbox": [2, 40, 10, 10], "score": 0.1},
    ]
    pred_file = tmp_path / "results.json"
    pred_file.write_text(json.dumps(preds))
    return json_file, root, pred_file


def _read(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_direct_mode_draws_boxes_where_they_are(tiny_set, tmp_path):
    json_file, root, pred_file = tiny_set
    out = tmp_path / "vis"
    argv = ["--json-file", str(json_file), "--image-root", str(root)]
    argv += ["--predictions", str(pred_file), "--out", str(out), "--n", "2", "--scale", "2"]
    assert _tool().main(argv) == 0
    pngs = sorted(out.glob("*.png"))
    assert [p.name for p in pngs] == ["1_f0.png", "2_f1.png"]
    img = _read(pngs[0])
    assert img.shape == (128, 128 * 2 + 4, 3)  # two panels at scale 2 and the gap
    right = img[:, 128 + 4 :]
    # The prediction box's left edge is at x = 20 (40 px at scale 2), rows 16..46.
    assert (right[40:90, 40] == class_color(1)).all()
    assert not (right == class_color(0)).all(axis=2).any()  # low score: not drawn
    # Ground truth (class 0) on the left panel: left edge at x = 26.
    assert (img[60:74, 52] == class_color(0)).all()
    assert not (img[:, :128] == class_color(1)).all(axis=2).any()
    # The folder exists now: refused unless --overwrite.
    assert _tool().main(argv) == 1
    assert _tool().main([*argv, "--overwrite"]) == 0


def test_run_mode_reads_config(tiny_set, tmp_path):
    json_file, root, pred_file = tiny_set
    run = tmp_path / "run"
    run.mkdir()
    (run / "coco_instances_results.json").write_text(pred_file.read_text())
    (run / "config.yaml").write_text(
        "dataloader:\n  test:\n    dataset:\n"
        f"      json_file: {json_file}\n      image_root: {root}\n"
    )
    assert _tool().main(["--run", str(run), "--n", "1"]) == 0
    (png,) = (run / "vis").glob("*.png")
    img = _read(png)
    assert img.shape[0] == 256  # auto scale: 64 px images drawn at 256
    assert (img[80:160, 256 + 4 + 80] == class_color(1)).all()


def test_bad_input(tiny_set, tmp_path, capsys):
    json_file, root, _ = tiny_set
    tool = _tool()
    assert tool.main(["--run", str(tmp_path / "nowhere")]) == 1
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps([{"image_id": 1, "category_id": 7, "bbox": [0, 0, 1, 1], "score": 1}])
    )
    argv = ["--json-file", str(json_file), "--image-root", str(root), "--predictions", str(bad)]
    assert tool.main([*argv, "--out", str(tmp_path / "o")]) == 1
    with pytest.raises(SystemExit):
        tool.main(["--json-file", str(json_file)])
    assert "missing: --image-root, --predictions" in capsys.readouterr().err
