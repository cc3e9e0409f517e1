"""Physical sources scored against human consensus: which components belong together.

A physical source (a radio galaxy: core, jets, lobes) is one box around all its components.
Scored against Radio Galaxy Zoo consensus (the set :mod:`astrodet.data.rgz_first`), each
consensus component is given to the predicted source whose box holds its position; where
several boxes hold it, the one with the highest score takes it (ties: the box whose centre is
nearest). An RGZ source is then

* ``correct``: all its components went to one predicted source that took no component of
  any other RGZ source of the image;
* ``split``: its components went to two or more predicted sources;
* ``merged``: a predicted source that took one of its components also took a component of
  another RGZ source;
* ``missed``: a component went to no predicted source.

(``split``, ``merged`` and ``missed`` may hold together; ``correct`` excludes them.) The
association accuracy is the fraction ``correct``, reported separately for single-component
(1C) and multi-component (2C, 3C) sources.

Detection quality is the COCO mAP@0.5 over the six RGZ classes, by the toolkit's COCO
evaluation (:func:`astrodet.evaluation.evaluate_coco`). Intervals come from a seeded
bootstrap over the test images, drawn by sky group where images carry one (the same sky
seen in several images is not independent), else by image.

A detector trained on whole sources still finds some components on their own as well as the
source they belong to: a lobe's box inside the double's box. :func:`absorb_contained` drops
such a box (most of its area inside a larger box scoring at least a set fraction of its own
score), so the component goes to the whole source; ``tools/find_sources.py --associate`` and
``tools/score_association.py`` apply it before components are assigned (mAP takes the
detector's boxes as they are).

PyBDSF and other finders give components; their islands (``island_id``: PyBDSF's
``Isl_id``) are the physical sources they propose: :func:`island_sources`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "ABSORB_INSIDE",
    "ABSORB_SCORE_RATIO",
    "OUTCOMES",
    "absorb_among",
    "absorb_contained",
    "assign_components",
    "associate_image",
    "association_summary",
    "bootstrap_map50",
    "island_sources",
    "outcome_counts",
]

OUTCOMES = ("correct", "split", "merged", "missed")

#: :func:`absorb_contained`'s defaults, picked on the training split of ``rgz_first_det``
#: (the overall association accuracy of ``configs/rgz_first_vit_small.py``; README)
ABSORB_INSIDE = 0.8
ABSORB_SCORE_RATIO = 0.5


def absorb_contained(
    boxes: np.ndarray,
    scores: np.ndarray,
    *,
    inside: float | None = ABSORB_INSIDE,
    score_ratio: float = ABSORB_SCORE_RATIO,
) -> np.ndarray:
    """Which boxes stay physical sources once boxes inside larger ones are absorbed.

    A box is dropped when at least ``inside`` of its area lies in a larger box whose score
    is at least ``score_ratio`` times its own (a component found beside the source it
    belongs to). The larger box need not stay itself: the boxes kept are the outermost of
    each nest.

    Args:
        boxes: (N, 4) ``x0, y0, x1, y1``.
        scores: (N,) confidence of each box.
        inside: the fraction of a box's area inside the larger one (None or 0: keep all).
        score_ratio: the larger box's score over the smaller's, at least.

    Returns:
        (N,) bool mask of the boxes kept.
    """
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    scores = np.asarray(scores, float).reshape(-1)
    if len(scores) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    if inside and (not 0.0 < inside <= 1.0 or score_ratio < 0.0):
        raise ValueError(
            f"absorb: inside must be in (0, 1] and score_ratio >= 0, got {inside}, {score_ratio}"
        )
    if not inside or len(boxes) < 2:
        return np.ones(len(boxes), bool)
    area = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    # [i, j]: box i's area inside box j
    w = np.minimum(boxes[:, None, 2], boxes[None, :, 2]) - np.maximum(
        boxes[:, None, 0], boxes[None, :, 0]
    )
    h = np.minimum(boxes[:, None, 3], boxes[None, :, 3]) - np.maximum(
        boxes[:, None, 1], boxes[None, :, 1]
    )
    overlap = w.clip(0) * h.clip(0)
    absorbed_by = (
        (area[None, :] > area[:, None])
        & (scores[None, :] >= score_ratio * scores[:, None])
        & (overlap >= inside * area[:, None])
        & (area[:, None] > 0)
    )
    return ~absorbed_by.any(axis=1)


def absorb_among(
    keep: np.ndarray, boxes: np.ndarray, scores: np.ndarray, absorb: tuple[float, float] | None
) -> np.ndarray:
    """``keep`` less the kept boxes absorbed by other kept ones (:func:`absorb_contained`).

    Args:
        keep: (N,) bool mask of the boxes that are candidates (e.g. above a score threshold).
        boxes, scores: all N boxes and their scores.
        absorb: ``(inside, score_ratio)``, or None: ``keep`` as it is.
    """
    keep = np.asarray(keep, bool).copy()
    if absorb is not None and keep.sum() > 1:
        idx = np.flatnonzero(keep)
        keep[idx] = absorb_contained(
            np.asarray(boxes)[idx], np.asarray(scores)[idx], inside=absorb[0], score_ratio=absorb[1]
        )
    return keep


def assign_components(
    *, components: np.ndarray, boxes: np.ndarray, scores: np.ndarray
) -> np.ndarray:
    """The predicted source each component goes to (the rule of the module docstring).

    Args:
        components: (K, 2) positions ``x, y`` in the boxes' frame.
        boxes: (N, 4) ``x0, y0, x1, y1``.
        scores: (N,) confidence of each box.

    Returns:
        (K,) index into ``boxes``, -1 where no box holds the component.
    """
    comps = np.asarray(components, float).reshape(-1, 2)
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    scores = np.asarray(scores, float).reshape(-1)
    if len(scores) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    out = np.full(len(comps), -1, int)
    if not len(boxes):
        return out
    centres = np.stack([boxes[:, [0, 2]].mean(1), boxes[:, [1, 3]].mean(1)], axis=1)
    for k, (x, y) in enumerate(comps):
        holds = np.flatnonzero(
            (boxes[:, 0] <= x) & (x <= boxes[:, 2]) & (boxes[:, 1] <= y) & (y <= boxes[:, 3])
        )
        if not len(holds):
            continue
        dist = np.hypot(*(centres[holds] - (x, y)).T)
        # highest score first, then the nearest centre
        out[k] = holds[np.lexsort((dist, -scores[holds]))[0]]
    return out


def associate_image(
    *,
    sources: Sequence[np.ndarray],
    boxes: np.ndarray,
    scores: np.ndarray,
    others: Sequence[np.ndarray] = (),
) -> list[dict]:
    """Outcome of each consensus source of one image.

    Args:
        sources: per scored source, its (K, 2) component positions.
        boxes, scores: the predicted physical sources (see :func:`assign_components`).
        others: components of sources that are not scored but may be merged into
            (e.g. sources cut by the image edge).

    Returns:
        per scored source ``{"correct", "split", "merged", "missed": bool, "owners": [...]}``.
    """
    groups = [np.asarray(c, float).reshape(-1, 2) for c in (*sources, *others)]
    owners = [assign_components(components=c, boxes=boxes, scores=scores) for c in groups]
    takers: dict[int, set[int]] = {}
    for s, own in enumerate(owners):
        for o in own[own >= 0]:
            takers.setdefault(int(o), set()).add(s)
    out = []
    for s in range(len(sources)):
        own = owners[s]
        got = {int(o) for o in own if o >= 0}
        missed = bool((own < 0).any())
        split = len(got) > 1
        merged = any(len(takers[o] - {s}) > 0 for o in got)
        out.append(
            {
                "correct": not (missed or split or merged),
                "split": split,
                "merged": merged,
                "missed": missed,
                "owners": [int(o) for o in own],
            }
        )
    return out


def outcome_counts(outcomes: Sequence[dict]) -> dict:
    """``{"n", "accuracy", "correct", "split", "merged", "missed"}`` of per-source outcomes."""
    n = len(outcomes)
    counts = {k: int(sum(o[k] for o in outcomes)) for k in OUTCOMES}
    return {"n": n, "accuracy": counts["correct"] / n if n else float("nan"), **counts}


def _draws(units: np.ndarray, n_boot: int, seed: int) -> list[np.ndarray]:
    """Bootstrap draws of the distinct values of ``units`` (with replacement)."""
    rng = np.random.default_rng(seed)
    distinct = np.unique(units)
    return [rng.choice(distinct, size=len(distinct), replace=True) for _ in range(n_boot)]


def _interval(values) -> list[float] | None:
    values = np.asarray([v for v in values if np.isfinite(v)], float)
    if not len(values):
        return None
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def association_summary(
    outcomes: Sequence[dict],
    *,
    n_components: Sequence[int],
    units: Sequence | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Association accuracy for single- (1C) and multi-component (2C, 3C) sources, with a
    95 % bootstrap interval.

    Args:
        outcomes: per source, from :func:`associate_image`.
        n_components: per source, its number of consensus components.
        units: per source, what the bootstrap draws (its image's sky group or image id);
            default each source on its own.
        n_boot: bootstrap draws (0: no intervals).
        seed: of the draws.

    Returns:
        ``{"single": {...}, "multi": {...}, "all": {...}}`` of :func:`outcome_counts` plus
        ``"interval"``.
    """
    n_components = np.asarray(n_components, int)
    if len(n_components) != len(outcomes):
        raise ValueError(f"{len(outcomes)} outcomes but {len(n_components)} component counts")
    units = np.arange(len(outcomes)) if units is None else np.asarray(units)
    correct = np.asarray([o["correct"] for o in outcomes], bool)
    subsets = {
        "single": n_components == 1,
        "multi": n_components > 1,
        "all": np.ones(len(outcomes), bool),
    }
    draws = _draws(units, n_boot, seed) if len(outcomes) and n_boot else []
    index = {u: np.flatnonzero(units == u) for u in np.unique(units)}
    out = {}
    for name, mask in subsets.items():
        out[name] = outcome_counts([o for o, m in zip(outcomes, mask) if m])
        accs = []
        for draw in draws:
            rows = np.concatenate([index[u] for u in draw])
            rows = rows[mask[rows]]
            accs.append(correct[rows].mean() if len(rows) else np.nan)
        out[name]["interval"] = _interval(accs) if draws else None
    return out


# ------------------------------------------------------------------------------ mAP
def _resampled(gt: dict, results: Sequence[dict], images: Sequence[int]) -> tuple[dict, list]:
    """A COCO ground truth and results in which image ``images[k]`` becomes image ``k``."""
    anns_by, res_by = {}, {}
    for a in gt["annotations"]:
        anns_by.setdefault(a["image_id"], []).append(a)
    for r in results:
        res_by.setdefault(r["image_id"], []).append(r)
    info = {im["id"]: im for im in gt["images"]}
    new_images, new_anns, new_res = [], [], []
    for k, image_id in enumerate(images):
        new_images.append({**info[image_id], "id": k})
        for a in anns_by.get(image_id, []):
            new_anns.append({**a, "id": len(new_anns) + 1, "image_id": k})
        new_res.extend({**r, "image_id": k} for r in res_by.get(image_id, []))
    return {**gt, "images": new_images, "annotations": new_anns}, new_res


def bootstrap_map50(
    *,
    gt: dict,
    results: Sequence[dict],
    units: dict | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    backend: str = "auto",
) -> dict:
    """COCO AP@0.5 over all classes and per class, each with its ground-truth count and a
    95 % bootstrap interval.

    Args:
        gt: COCO ground truth (``iscrowd`` boxes are ignored regions, as COCO does).
        results: COCO results with the ground truth's category ids.
        units: image id -> bootstrap unit (sky group); default each image.
        n_boot: bootstrap draws (0: no intervals).
        seed: of the draws.
        backend: of :func:`astrodet.evaluation.evaluate_coco`.

    Returns:
        ``{"AP50": x, "interval": [lo, hi], "per_class": {name: {"AP50", "n", "interval"}}}``.
    """
    from astrodet.evaluation import evaluate_coco

    names = [c["name"] for c in gt["categories"]]
    counts = {c["name"]: 0 for c in gt["categories"]}
    by_id = {c["id"]: c["name"] for c in gt["categories"]}
    for a in gt["annotations"]:
        if not a.get("iscrowd", 0):
            counts[by_id[a["category_id"]]] += 1
    metrics = evaluate_coco(gt=gt, results=list(results), backend=backend)
    image_ids = [im["id"] for im in gt["images"]]
    units = units or {i: i for i in image_ids}
    unit_of = np.asarray([units[i] for i in image_ids])
    members = {u: [i for i, v in zip(image_ids, unit_of) if v == u] for u in np.unique(unit_of)}
    samples = {"AP50": [], **{n: [] for n in names}}
    for draw in _draws(unit_of, n_boot, seed) if n_boot else []:
        images = [i for u in draw for i in members[u]]
        g, r = _resampled(gt, results, images)
        m = evaluate_coco(gt=g, results=r, backend=backend)
        samples["AP50"].append(m["AP50"])
        for n in names:
            samples[n].append(m[f"AP50-{n}"])
    return {
        "AP50": metrics["AP50"],
        "n": int(sum(counts.values())),
        "interval": _interval(samples["AP50"]) if n_boot else None,
        "per_class": {
            n: {
                "AP50": metrics[f"AP50-{n}"],
                "n": counts[n],
                "interval": _interval(samples[n]) if n_boot else None,
            }
            for n in names
        },
    }


# ------------------------------------------------------------------------------ islands
def island_sources(
    table, *, boxes: np.ndarray, image: np.ndarray | None = None, nsigma: float = 3.0
) -> tuple[np.ndarray, np.ndarray, str]:
    """A finder's components grouped into islands: one box per island (the union of its
    components' boxes).

    Args:
        table: the catalogue (one row per component), with ``island_id`` where the finder
            gives it (PyBDSF's ``Isl_id``).
        boxes: (N, 4) the components' boxes, ``x0, y0, x1, y1``.
        image: the image (FITS orientation, pixel frame of ``table["x"], ["y"]``); used
            only without ``island_id``: components whose positions fall in one connected
            region above ``nsigma`` x rms (sigma-clipped) are one island.
        nsigma: that threshold.

    Returns:
        (island boxes (M, 4), island of each component (N,), how islands were found:
        ``"island_id"`` or ``"thresholded image"``).
    """
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    if len(table) != len(boxes):
        raise ValueError(f"{len(table)} catalogue rows but {len(boxes)} boxes")
    if not len(table):
        return np.zeros((0, 4)), np.zeros(0, int), "none"
    if "island_id" in table.colnames:
        keys = np.asarray(table["island_id"]).astype(np.int64)
        how = "island_id"
    elif image is not None:
        from astropy.stats import sigma_clipped_stats
        from scipy.ndimage import label

        data = np.asarray(image, float)
        finite = np.isfinite(data)
        _, median, rms = sigma_clipped_stats(data[finite], sigma=3.0, maxiters=10)
        regions = label(finite & (np.nan_to_num(data - median) > nsigma * rms), np.ones((3, 3)))[0]
        x = np.clip(np.round(np.asarray(table["x"], float)).astype(int), 0, data.shape[1] - 1)
        y = np.clip(np.round(np.asarray(table["y"], float)).astype(int), 0, data.shape[0] - 1)
        found = regions[y, x]
        # a component outside every region is an island of its own
        keys = np.where(found > 0, found, -1 - np.arange(len(table)))
        how = "thresholded image"
    else:
        raise ValueError("the catalogue has no island_id column: give the image to find islands")
    uniq, island = np.unique(keys, return_inverse=True)
    out = np.zeros((len(uniq), 4))
    for k in range(len(uniq)):
        b = boxes[island == k]
        out[k] = [b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()]
    return out, island, how
