"""The classical source finder: boxes of known Gaussians, AP on simulated skies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from astrodet.evaluation import dicts_to_coco_gt, evaluate_coco
from astrodet.evaluation.classical import estimate_background, find_sources

SIG_TO_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _field(sources, size=128, noise=1.0, seed=0):
    """Gaussians (x, y, sigma_major, sigma_minor, theta, peak) on white noise; the true
    boxes are the FWHM ellipses' bounding boxes (pixel j spans [j, j + 1])."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    img = rng.normal(0.0, noise, (size, size)) + 10.0  # an offset background
    boxes = []
    for x, y, sa, sb, th, peak in sources:
        c, s = math.cos(th), math.sin(th)
        u = (xx - x) * c + (yy - y) * s
        v = -(xx - x) * s + (yy - y) * c
        img += peak * np.exp(-0.5 * ((u / sa) ** 2 + (v / sb) ** 2))
        a, b = sa * SIG_TO_FWHM / 2, sb * SIG_TO_FWHM / 2
        hx, hy = math.hypot(a * c, b * s), math.hypot(a * s, b * c)
        boxes.append((x - hx, y - hy, x + hx, y + hy))
    return img.astype(np.float32), boxes


SOURCES = [  # bright round, rotated elliptical, faint (7 sigma), large
    (30.0, 40.0, 2.0, 2.0, 0.0, 60.0),
    (90.3, 25.6, 3.5, 1.8, 0.6, 25.0),
    (60.0, 95.0, 2.2, 2.2, 0.0, 9.0),
    (100.0, 100.0, 5.0, 3.0, 2.0, 20.0),
]


def test_boxes_match_known_gaussians():
    img, truth = _field(SOURCES)
    found = find_sources(img, nsigma=5.0)
    assert len(found["boxes"]) == len(SOURCES)
    assert found["background"] == pytest.approx(10.0, abs=0.1)
    assert found["rms"] == pytest.approx(1.0, abs=0.1)
    for box, (x, y, *_), peak in zip(truth, SOURCES, [s[-1] for s in SOURCES]):
        ious = [_iou(box, b) for b in found["boxes"]]
        k = int(np.argmax(ious))
        assert ious[k] > 0.7, (box, found["boxes"][k])
        assert found["centroids"][k] == pytest.approx([x, y], abs=0.5)
        assert found["scores"][k] == pytest.approx(peak, rel=0.25)  # peak SNR (rms = 1)
    assert list(found["scores"]) == sorted(found["scores"], reverse=True)


def test_truncation_correction_and_box_scale():
    img, truth = _field([SOURCES[2]])  # faint: the island cuts much of the Gaussian away
    plain = find_sources(img, correct_truncation=False)
    fixed = find_sources(img)
    assert _iou(truth[0], fixed["boxes"][0]) > _iou(truth[0], plain["boxes"][0])
    assert fixed["sigmas"][0] == pytest.approx([2.2, 2.2], rel=0.2)
    big = find_sources(img, box_scale=2.0)["boxes"][0]
    w, w2 = fixed["boxes"][0][2] - fixed["boxes"][0][0], big[2] - big[0]
    assert w2 == pytest.approx(2 * w)


def test_noise_only_and_bad_settings():
    rng = np.random.default_rng(1)
    assert len(find_sources(rng.normal(0, 1, (96, 96)), nsigma=5.5)["boxes"]) == 0
    with pytest.raises(ValueError, match="island_nsigma"):
        find_sources(np.zeros((8, 8)), nsigma=3, island_nsigma=4)
    with pytest.raises(ValueError, match="no finite pixels"):
        estimate_background(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="HW or HWC"):
        find_sources(np.zeros(5))


def test_deblend_splits_a_pair_and_max_fwhm_drops_extended():
    pair = [(50.0, 50.0, 2.0, 2.0, 0.0, 40.0), (57.0, 50.0, 2.0, 2.0, 0.0, 40.0)]
    img, truth = _field(pair, size=100)
    assert len(find_sources(img)["boxes"]) == 1  # one island
    split = find_sources(img, deblend=True)
    assert len(split["boxes"]) == 2
    for box in truth:
        assert max(_iou(box, b) for b in split["boxes"]) > 0.5
    img, _ = _field([(50.0, 50.0, 8.0, 8.0, 0.0, 30.0)], size=100)
    assert len(find_sources(img)["boxes"]) == 1
    assert len(find_sources(img, max_fwhm=10.0)["boxes"]) == 0


def _sky_ap50(**finder):
    synthetic = pytest.importorskip("astrodet.data.synthetic")
    images, dicts = synthetic.generate_sky(6, seed=3, **finder.pop("sky", {}))
    gt = dicts_to_coco_gt(dicts, ["source"])
    results = []
    for img, d in zip(images, dicts):
        found = find_sources(img, **finder)
        for (x0, y0, x1, y1), s in zip(found["boxes"], found["scores"]):
            box = [x0, y0, x1 - x0, y1 - y0]
            results.append({"image_id": d["image_id"], "category_id": 1, "bbox": box, "score": s})
    return evaluate_coco(gt=gt, results=results)["AP50"]


def test_simulated_compact_sky():
    # Only compact sources: what the finder is for.
    assert _sky_ap50(sky={"mean_extended": 0.0}) > 0.85


def test_simulated_sky_with_extended_emission():
    # Unlabelled extended doubles on the sky: dropping islands wider than two beams (the
    # beam FWHM is 5 px) keeps compact sources only.
    assert _sky_ap50(max_fwhm=10.0) > 0.7
