"""The visualiser: boxes land where they should, in the class colour; thresholds hold."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from astrodet.structures import BoxMode
from astrodet.visualize import VisImage, Visualizer, class_color, concat_panels

META = {"thing_classes": ["compact", "extended"]}


def _black(h=64, w=80):
    return np.zeros((h, w), np.float32)


def _is(img, y, x, color):
    return tuple(int(v) for v in img[y, x]) == tuple(color)


def test_draw_box_colour_and_position():
    vis = Visualizer(_black(), META, stretch=None)
    out = vis.draw_box((10, 20, 30, 40), color=(255, 0, 0), line_width=1)
    img = out.get_image()
    assert img.shape == (64, 80, 3) and img.dtype == np.uint8
    assert _is(img, 20, 15, (255, 0, 0))  # top edge
    assert _is(img, 30, 10, (255, 0, 0))  # left edge
    assert _is(img, 39, 20, (255, 0, 0))  # bottom edge: pixel 39 is the last inside
    assert _is(img, 30, 20, (0, 0, 0))  # inside stays sky
    assert _is(img, 45, 45, (0, 0, 0))


def test_predictions_threshold_scale_and_labels():
    pred = {
        "boxes": torch.tensor([[10.0, 10.0, 30.0, 30.0], [40.0, 30.0, 70.0, 60.0]]),
        "scores": torch.tensor([0.9, 0.3]),
        "labels": torch.tensor([2, 1]),  # 1-based: "extended", "compact"
    }
    vis = Visualizer(_black(), META, stretch=None, scale=2.0)
    img = vis.draw_instance_predictions(pred, score_threshold=0.5).get_image()
    assert img.shape == (128, 160, 3)
    # the kept box (class 1 -> colour 1) at twice its coordinates; its label is drawn above it
    assert _is(img, 40, 20, class_color(1))
    assert _is(img, 40, 60, (0, 0, 0))  # inside the box
    # the low-scoring box is not drawn
    assert not (img[60:120, 80:140] == class_color(0)).all(axis=2).any()
    low = Visualizer(_black(), META, stretch=None).draw_instance_predictions(pred, 0.2)
    assert (low.get_image() == class_color(0)).all(axis=2).any()


def test_detectron2_like_predictions_and_dataset_dict():
    class Instances:
        pred_boxes = np.array([[5.0, 5.0, 25.0, 25.0]])
        scores = np.array([0.8])
        pred_classes = np.array([0])

    img = Visualizer(_black(), META, stretch=None).draw_instance_predictions(Instances())
    assert _is(img.get_image(), 15, 5, class_color(0))
    d = {
        "annotations": [
            {"bbox": [40, 10, 20, 20], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 1},
            {"bbox": [5, 40, 25, 60], "bbox_mode": BoxMode.XYXY_ABS, "category_id": 0},
        ]
    }
    gt = Visualizer(_black(), META, stretch=None).draw_dataset_dict(d).get_image()
    assert _is(gt, 20, 40, class_color(1)) and _is(gt, 50, 5, class_color(0))


def test_stretch_and_save(tmp_path):
    # A raw float image far outside [0, 1] is stretched into a visible picture.
    rng = np.random.default_rng(0)
    raw = rng.normal(1e-5, 1e-6, (48, 48)).astype(np.float32)
    raw[20:28, 20:28] += 1e-4
    img = Visualizer(raw, stretch="zscale").get_output().get_image()
    assert img[24, 24].mean() > img[5, 5].mean() + 50
    path = Visualizer(raw).draw_box((1, 1, 10, 10), color=(0, 0, 255)).save(tmp_path / "a.png")
    back = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert _is(back, 1, 5, (0, 0, 255))
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temporary left behind


def test_bad_input_and_panels():
    with pytest.raises(ValueError, match="HW or HWC"):
        Visualizer(np.zeros(5), stretch=None)
    with pytest.raises(ValueError, match="scale must be positive"):
        Visualizer(_black(), stretch=None, scale=0)
    a = np.zeros((10, 8, 3), np.uint8)
    b = np.full((6, 5, 3), 7, np.uint8)
    out = concat_panels([a, b], gap=2)
    assert (
        out.shape == (10, 15, 3) and _is(out, 0, 9, (255, 255, 255)) and _is(out, 0, 10, (7,) * 3)
    )
    assert VisImage(out).get_image() is not out
