"""Association of consensus components with predicted physical sources: correct, split,
merged and missed on hand-made cases; islands of a finder's components; mAP with intervals."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from astrodet.sky.associate import (
    assign_components,
    associate_image,
    association_summary,
    bootstrap_map50,
    island_sources,
)

DOUBLE = np.array([[20.0, 50.0], [60.0, 50.0]])  # two lobes of one radio galaxy
SINGLE = np.array([[85.0, 20.0]])


def _one(outcomes):
    return {k for k in ("correct", "split", "merged", "missed") if outcomes[k]}


def test_double_in_one_box_is_correct():
    out = associate_image(
        sources=[DOUBLE, SINGLE],
        boxes=np.array([[10, 40, 70, 60], [80, 15, 90, 25]], float),
        scores=np.array([0.9, 0.8]),
    )
    assert _one(out[0]) == {"correct"} and _one(out[1]) == {"correct"}
    assert out[0]["owners"] == [0, 0]


def test_lobes_in_two_boxes_are_split():
    out = associate_image(
        sources=[DOUBLE],
        boxes=np.array([[10, 40, 30, 60], [50, 40, 70, 60]], float),
        scores=np.array([0.9, 0.9]),
    )
    assert _one(out[0]) == {"split"}


def test_one_box_over_two_sources_merges_both():
    out = associate_image(
        sources=[DOUBLE, SINGLE],
        boxes=np.array([[0, 0, 100, 100]], float),
        scores=np.array([0.7]),
    )
    assert _one(out[0]) == {"merged"} and _one(out[1]) == {"merged"}


def test_missed_and_sources_cut_by_the_edge_count_for_merging():
    out = associate_image(
        sources=[DOUBLE],
        boxes=np.array([[10, 40, 30, 60]], float),
        scores=np.array([0.9]),
    )
    assert _one(out[0]) == {"missed"}
    # a box taking a lobe and a component of an unscored (edge-cut) source merges them
    out = associate_image(
        sources=[DOUBLE],
        boxes=np.array([[10, 40, 70, 60]], float),
        scores=np.array([0.9]),
        others=[np.array([[65.0, 55.0]])],
    )
    assert _one(out[0]) == {"merged"}


def test_highest_score_then_nearest_centre_takes_a_component():
    boxes = np.array([[0, 0, 100, 100], [15, 45, 25, 55]], float)
    assert assign_components(components=DOUBLE, boxes=boxes, scores=[0.9, 0.5]).tolist() == [0, 0]
    assert assign_components(components=DOUBLE, boxes=boxes, scores=[0.5, 0.9]).tolist() == [1, 0]
    # equal scores: the box whose centre is nearer
    assert assign_components(components=DOUBLE, boxes=boxes, scores=[1, 1]).tolist() == [1, 0]
    assert assign_components(components=DOUBLE, boxes=np.zeros((0, 4)), scores=[]).tolist() == [
        -1,
        -1,
    ]
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        assign_components(components=DOUBLE, boxes=boxes, scores=[1.0])


def test_summary_separates_single_and_multi_component_sources():
    outcomes = [
        {"correct": True, "split": False, "merged": False, "missed": False},
        {"correct": False, "split": True, "merged": False, "missed": False},
        {"correct": True, "split": False, "merged": False, "missed": False},
        {"correct": False, "split": False, "merged": True, "missed": False},
    ]
    s = association_summary(outcomes, n_components=[1, 2, 3, 1], n_boot=200, seed=1)
    assert s["single"]["n"] == 2 and s["single"]["accuracy"] == 0.5 and s["single"]["merged"] == 1
    assert s["multi"]["n"] == 2 and s["multi"]["accuracy"] == 0.5 and s["multi"]["split"] == 1
    assert s["all"]["accuracy"] == 0.5
    lo, hi = s["multi"]["interval"]
    assert 0.0 <= lo <= 0.5 <= hi <= 1.0 and lo < hi
    assert (
        association_summary(outcomes, n_components=[1, 2, 3, 1], n_boot=0)["all"]["interval"]
        is None
    )


def test_islands_from_island_id_and_from_the_image():
    table = Table({"x": [20.0, 60.0, 85.0], "y": [50.0, 50.0, 20.0], "island_id": [4, 4, 7]})
    boxes = np.array([[15, 45, 25, 55], [55, 45, 65, 55], [80, 15, 90, 25]], float)
    islands, which, how = island_sources(table, boxes=boxes)
    assert how == "island_id" and which.tolist() == [0, 0, 1]
    np.testing.assert_allclose(islands, [[15, 45, 65, 55], [80, 15, 90, 25]])
    # without island_id: one connected region above 3 rms joins the two lobes
    rng = np.random.default_rng(0)
    image = rng.normal(0, 1, (100, 100))
    image[48:53, 18:63] += 20.0
    image[18:23, 83:88] += 20.0
    del table["island_id"]
    islands, which, how = island_sources(table, boxes=boxes, image=image)
    assert how == "thresholded image" and which[0] == which[1] != which[2]
    with pytest.raises(ValueError, match="no island_id"):
        island_sources(table, boxes=boxes)


def _gt():
    images = [{"id": i, "width": 100, "height": 100, "file_name": f"{i}.npy"} for i in range(4)]
    anns = [
        {"id": 1, "image_id": 0, "category_id": 1, "bbox": [10, 10, 20, 20], "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [50, 50, 30, 20], "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [5, 60, 15, 15], "iscrowd": 0},
        {"id": 4, "image_id": 3, "category_id": 2, "bbox": [30, 30, 40, 40], "iscrowd": 0},
    ]
    cats = [{"id": 1, "name": "1C_1P"}, {"id": 2, "name": "2C_2P"}]
    return {"images": images, "annotations": anns, "categories": cats}


def test_bootstrap_map50_counts_classes_and_gives_intervals():
    gt = _gt()
    perfect = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "score": 0.9,
        }
        for a in gt["annotations"]
    ]
    out = bootstrap_map50(gt=gt, results=perfect, n_boot=20, seed=0)
    assert out["AP50"] == pytest.approx(1.0) and out["interval"] == pytest.approx([1.0, 1.0])
    assert out["per_class"]["2C_2P"]["n"] == 2 and out["n"] == 4
    # one source of class 2 found as class 1: its AP drops, and the draws spread
    wrong = [dict(r) for r in perfect]
    wrong[3]["category_id"] = 1
    out = bootstrap_map50(gt=gt, results=wrong, units={0: 0, 1: 1, 2: 2, 3: 3}, n_boot=50, seed=0)
    assert out["per_class"]["2C_2P"]["AP50"] == pytest.approx(0.5, abs=0.01)
    lo, hi = out["interval"]
    assert lo < out["AP50"] < 1.0 and hi == pytest.approx(1.0)


def test_a_lobe_inside_its_double_is_absorbed():
    from astrodet.sky.associate import absorb_contained

    double, lobe1, lobe2 = [10, 40, 70, 60], [12, 42, 28, 58], [52, 42, 68, 58]
    boxes = np.array([double, lobe1, lobe2], float)
    # the lobes score higher than the double: without absorbing, the double is split
    scores = np.array([0.5, 0.9, 0.8])
    assert _one(associate_image(sources=[DOUBLE], boxes=boxes, scores=scores)[0]) == {"split"}
    keep = absorb_contained(boxes, scores, inside=0.8, score_ratio=0.5)
    assert list(keep) == [True, False, False]
    out = associate_image(sources=[DOUBLE], boxes=boxes[keep], scores=scores[keep])
    assert _one(out[0]) == {"correct"}
    # a larger box scoring under half a lobe's score does not absorb that lobe
    keep = absorb_contained(boxes, np.array([0.4, 0.9, 0.7]), score_ratio=0.5)
    assert list(keep) == [True, True, False]
    # a box only partly inside (half its area) stays; off: every box stays
    edge = np.array([double, [60, 42, 80, 58]], float)
    assert absorb_contained(edge, np.array([0.9, 0.9]), inside=0.8).all()
    assert absorb_contained(boxes, scores, inside=0).all()
    assert absorb_contained(boxes, scores, inside=None).all()


def test_absorbing_keeps_the_outermost_of_a_nest_and_checks_its_input():
    from astrodet.sky.associate import absorb_contained

    boxes = np.array([[0, 0, 100, 100], [10, 10, 60, 60], [20, 20, 30, 30], [0, 0, 0, 0]], float)
    keep = absorb_contained(boxes, np.array([0.6, 0.6, 0.6, 0.6]), inside=0.8, score_ratio=0.5)
    assert list(keep) == [True, False, False, True]  # an empty box absorbs nothing, nor is
    with pytest.raises(ValueError, match="3 scores"):
        absorb_contained(boxes, np.ones(3))
    with pytest.raises(ValueError, match="inside must be in"):
        absorb_contained(boxes, np.ones(4), inside=1.5)
