"""COCO metrics: a hand-computed case, backend agreement, the evaluator's bookkeeping."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch

from astrodet.evaluation import (
    COCOEvaluator,
    dicts_to_coco_gt,
    evaluate_coco,
    flatten_metrics,
    metrics_to_json,
    resolve_backend,
)
from astrodet.structures import BoxMode

BACKENDS = ["pycocotools", "faster"]


def _gt():
    return {
        "images": [{"id": 7, "height": 100, "width": 100, "file_name": "a.npy"}],
        "categories": [{"id": 3, "name": "compact"}, {"id": 5, "name": "extended"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "bbox": [10, 10, 20, 20]},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [50, 50, 20, 20]},
        ],
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed_ap50(backend):
    # Ranked: TP (0.9), FP (0.8), TP (0.7). Precision/recall: (1, .5), (.5, .5), (2/3, 1).
    # Interpolated precision is 1 for recall <= 0.5 (51 of the 101 points) and 2/3 above
    # (50 points): AP50 = (51 + 50 * 2/3) / 101.
    results = [
        {"image_id": 7, "category_id": 3, "bbox": [11, 10, 20, 20], "score": 0.9},
        {"image_id": 7, "category_id": 3, "bbox": [80, 80, 10, 10], "score": 0.8},
        {"image_id": 7, "category_id": 3, "bbox": [50, 50, 20, 20], "score": 0.7},
    ]
    m = evaluate_coco(gt=_gt(), results=results, backend=backend)
    expected = (51 + 50 * 2 / 3) / 101
    assert m["AP50"] == pytest.approx(expected, abs=1e-9)
    assert m["AP50-compact"] == pytest.approx(expected, abs=1e-9)
    # The first box has IoU 380/420 = 0.905: a TP up to IoU 0.9, a miss at 0.95, so AP over
    # the ten thresholds is (9 * expected + AP of a single TP at rank 3) / 10.
    single = (51 * 1 / 3) / 101  # recall 0.5 reached only at rank 3, precision 1/3
    assert m["AP"] == pytest.approx((9 * expected + single) / 10, abs=1e-9)
    # No ground truth: undefined, NaN, and null in json.
    assert math.isnan(m["AP50-extended"]) and math.isnan(m["APl"])
    assert json.loads(json.dumps(metrics_to_json(m)))["AP50-extended"] is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_order_matters(backend):
    # The same boxes with the FP ranked first: precision 1/2 at recall .5, 2/3 at recall 1.
    results = [
        {"image_id": 7, "category_id": 3, "bbox": [80, 80, 10, 10], "score": 0.95},
        {"image_id": 7, "category_id": 3, "bbox": [10, 10, 20, 20], "score": 0.9},
        {"image_id": 7, "category_id": 3, "bbox": [50, 50, 20, 20], "score": 0.7},
    ]
    m = evaluate_coco(gt=_gt(), results=results, backend=backend)
    # Interpolation: max precision at recall >= r is 2/3 for every r.
    assert m["AP50"] == pytest.approx(2 / 3, abs=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_predictions_is_zero_with_warning(backend, caplog):
    with caplog.at_level(logging.WARNING):
        m = evaluate_coco(gt=_gt(), results=[], backend=backend)
    assert m["AP"] == 0.0 and m["AP50"] == 0.0
    assert "no detections" in caplog.text


def _random_case(seed, n_images=30, n_cats=3):
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    for i in range(n_images):
        images.append({"id": i + 1, "height": 256, "width": 256})
        for _ in range(rng.integers(0, 8)):
            x, y = rng.uniform(0, 200, 2)
            w, h = rng.uniform(4, 60, 2)
            c = int(rng.integers(1, n_cats + 1))
            anns.append(
                {"id": len(anns) + 1, "image_id": i + 1, "category_id": c, "bbox": [x, y, w, h]}
            )
            if rng.random() < 0.8:  # a jittered detection, sometimes with the wrong class
                j = rng.normal(0, 3, 4)
                cc = c if rng.random() < 0.85 else int(rng.integers(1, n_cats + 1))
                box = [x + j[0], y + j[1], max(1.0, w + j[2]), max(1.0, h + j[3])]
                results.append(
                    {"image_id": i + 1, "category_id": cc, "bbox": box, "score": rng.random()}
                )
        for _ in range(rng.integers(0, 4)):  # false positives
            box = [*rng.uniform(0, 200, 2), *rng.uniform(4, 60, 2)]
            c = int(rng.integers(1, n_cats + 1))
            results.append(
                {"image_id": i + 1, "category_id": c, "bbox": box, "score": rng.random()}
            )
    cats = [{"id": c, "name": f"c{c}"} for c in range(1, n_cats + 1)]
    return {"images": images, "annotations": anns, "categories": cats}, results


def test_backends_agree_on_random_case():
    gt, results = _random_case(0)
    a = evaluate_coco(gt=gt, results=results, backend="pycocotools")
    b = evaluate_coco(gt=gt, results=results, backend="faster")
    assert a.keys() == b.keys()
    assert 0.2 < a["AP50"] < 0.95  # a non-trivial case
    for k in a:
        assert (math.isnan(a[k]) and math.isnan(b[k])) or abs(a[k] - b[k]) < 1e-3, k
    assert resolve_backend("auto") == "faster"


def test_bad_input_is_named():
    gt = _gt()
    with pytest.raises(ValueError, match="category ids .* not in the ground truth: \\[9\\]"):
        evaluate_coco(
            gt=gt, results=[{"image_id": 7, "category_id": 9, "bbox": [0, 0, 1, 1], "score": 1}]
        )
    with pytest.raises(ValueError, match="image ids .* \\[8\\]"):
        evaluate_coco(
            gt=gt, results=[{"image_id": 8, "category_id": 3, "bbox": [0, 0, 1, 1], "score": 1}]
        )
    with pytest.raises(ValueError, match="unknown COCO backend 'fast'"):
        evaluate_coco(gt=gt, results=[], backend="fast")
    del gt["categories"]
    with pytest.raises(ValueError, match="'categories'"):
        evaluate_coco(gt=gt, results=[])


def _dicts():
    return [
        {
            "file_name": "/x/a.npy",
            "image_id": 1,
            "height": 64,
            "width": 64,
            "annotations": [
                {"bbox": [4, 4, 10, 10], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0},
                {"bbox": [30, 30, 50, 40], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 1},
            ],
        },
        {"file_name": "/x/b.npy", "image_id": 2, "height": 64, "width": 64, "annotations": []},
    ]


def test_dicts_to_coco_gt_maps_ids_and_modes():
    gt = dicts_to_coco_gt(_dicts(), ["pt", "ext"], {10: 0, 20: 1})
    assert [c["id"] for c in gt["categories"]] == [10, 20]
    assert gt["annotations"][1]["bbox"] == [30.0, 30.0, 20.0, 10.0]
    assert gt["annotations"][1]["category_id"] == 20
    with pytest.raises(ValueError, match="category_id 2, outside 0..1"):
        d = _dicts()
        d[0]["annotations"][0]["category_id"] = 2
        dicts_to_coco_gt(d, ["pt", "ext"])


def test_evaluator_converts_and_writes(tmp_path):
    ev = COCOEvaluator(dataset=_dicts(), thing_classes=["pt", "ext"], output_dir=tmp_path)
    ev.reset()
    outputs = [
        {  # perfect on image 1, XYXY native pixels, labels 1-based
            "boxes": torch.tensor([[4.0, 4.0, 14.0, 14.0], [30.0, 30.0, 50.0, 40.0]]),
            "scores": torch.tensor([0.9, 0.8]),
            "labels": torch.tensor([1, 2]),
        },
        {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0)},
    ]
    ev.process(_dicts(), outputs)
    res = ev.evaluate()
    assert res["bbox"]["AP"] == pytest.approx(1.0)
    assert res["bbox"]["AP50-ext"] == pytest.approx(1.0)
    written = json.loads((tmp_path / "coco_instances_results.json").read_text())
    assert written[1]["bbox"] == [30, 30, 20, 10] and written[1]["category_id"] == 2
    assert written[1]["image_id"] == 1 and written[1]["score"] == pytest.approx(0.8)
    assert flatten_metrics(res)["bbox/AP50"] == pytest.approx(1.0)

    # A wrong class halves the mean AP; reset() forgets the earlier batch.
    ev.reset()
    outputs[0]["labels"] = torch.tensor([1, 1])
    ev.process(_dicts(), outputs)
    res = ev.evaluate()["bbox"]
    assert res["AP50-pt"] == pytest.approx(1.0) and res["AP50-ext"] == 0.0
    assert res["AP50"] == pytest.approx(0.5)


def test_evaluator_no_predictions_and_bad_labels(tmp_path, caplog):
    ev = COCOEvaluator(dataset=_dicts(), thing_classes=["pt", "ext"], output_dir=tmp_path)
    empty = {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0)}
    ev.process(_dicts(), [empty, empty])
    with caplog.at_level(logging.WARNING):
        res = ev.evaluate()["bbox"]
    assert res["AP"] == 0.0 and "no detections" in caplog.text
    assert json.loads((tmp_path / "coco_instances_results.json").read_text()) == []
    bad = {"boxes": np.zeros((1, 4)), "scores": np.ones(1), "labels": np.array([3])}
    with pytest.raises(ValueError, match="labels \\[3\\] outside 1..2"):
        ev.process(_dicts()[:1], [bad])
    with pytest.raises(ValueError, match="image_id 99"):
        ev.process([{"image_id": 99}], [empty])
