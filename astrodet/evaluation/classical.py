"""A classical radio source finder, scored by the same COCO evaluator as the networks.

What a radio astronomer gets without a network, in the manner of PyBDSF: a global background
and rms from sigma clipping; islands of connected pixels above ``island_nsigma`` x rms that
hold a peak above ``nsigma`` x rms and at least ``npixels`` pixels; optionally deblended.
Each island's intensity-weighted second moments give a Gaussian; its FWHM ellipse's bounding
box, times ``box_scale``, is the box (how MGCLS labels are drawn from PyBDSF catalogues); the
score is the peak signal-to-noise ratio.

Moments of the pixels above a threshold underestimate a Gaussian's width (its wings are cut
away). For a Gaussian of peak ``P`` cut at level ``T``, the intensity-weighted second moments
inside the contour are the true ones times ``g(L) = (1 - (1 + L) e^-L) / (1 - e^-L)`` with
``L = ln(P / T)``; the finder divides by ``g`` so faint sources get their full size.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import warnings
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["estimate_background", "find_sources", "run_classical_baseline"]

# The FWHM ellipse of a Gaussian is x^T C^-1 x = 2 ln 2: its bounding box half-extent along
# an axis is sqrt(2 ln 2 * C_ii).
_FWHM_K2 = 2.0 * math.log(2.0)


def estimate_background(image: np.ndarray, *, sigma: float = 3.0) -> tuple[float, float]:
    """Global background level and rms by iterative sigma clipping.

    Args:
        image: a 2-D array; non-finite pixels are ignored.
        sigma: the clipping threshold in standard deviations.

    Returns:
        ``(median, std)`` of the clipped pixels.
    """
    from astropy.stats import sigma_clipped_stats

    data = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(data)
    if not finite.any():
        raise ValueError("image has no finite pixels: cannot estimate a background")
    _, median, std = sigma_clipped_stats(data[finite], sigma=sigma, maxiters=10)
    return float(median), float(std)


def _truncation_factor(peak_over_threshold: np.ndarray) -> np.ndarray:
    L = np.log(np.maximum(peak_over_threshold, 1.0 + 1e-6))
    g = (1.0 - (1.0 + L) * np.exp(-L)) / (1.0 - np.exp(-L))
    # Islands barely above their threshold give a noisy, tiny g: cap the correction.
    return np.clip(g, 0.1, 1.0)


def _to_2d(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3:
        image = image.mean(axis=2)  # colour/multi-channel: detect on the mean
    if image.ndim != 2:
        raise ValueError(f"expected an HW or HWC image, got shape {image.shape}")
    return image


def find_sources(
    image: np.ndarray,
    *,
    nsigma: float = 5.0,
    island_nsigma: float = 3.0,
    npixels: int = 5,
    deblend: bool = False,
    min_separation: int = 2,
    box_scale: float = 1.0,
    min_sigma: float = 0.5,
    max_fwhm: float | None = None,
    correct_truncation: bool = True,
) -> dict[str, np.ndarray]:
    """Find sources and draw their boxes.

    Args:
        image: raw image, HW or HWC (channels averaged), any units; NaN pixels are ignored.
        nsigma: a source's peak must exceed background + ``nsigma`` x rms.
        island_nsigma: islands are the connected pixels above background + this x rms
            (at most ``nsigma``).
        npixels: the fewest pixels an island may have.
        deblend: split an island holding several peaks (local maxima above ``nsigma`` at least
            ``min_separation`` pixels apart): each pixel goes to its nearest peak, and each
            source is measured above half its peak.
        min_separation: the smallest distance between two peaks, in pixels.
        box_scale: multiplies the FWHM ellipse's bounding box about its centre.
        min_sigma: the smallest Gaussian width (pixels) a source is given.
        max_fwhm: drop sources whose FWHM along x or y exceeds this many pixels (extended
            emission, when only compact sources are wanted); None keeps all.
        correct_truncation: undo the width lost by cutting the Gaussian at the island level.

    Returns:
        ``{"boxes": (N, 4) XYXY pixels (pixel j spans [j, j+1]), "scores": peak SNR (N,),
        "centroids": (N, 2) x, y, "sigmas": (N, 2) Gaussian sigma along x, y, "background",
        "rms"}``, sorted by decreasing score.
    """
    from photutils.segmentation import detect_sources
    from photutils.utils.exceptions import NoDetectionsWarning
    from scipy.ndimage import maximum_filter

    if island_nsigma > nsigma:
        raise ValueError(f"island_nsigma ({island_nsigma}) must not exceed nsigma ({nsigma})")
    if box_scale <= 0:
        raise ValueError(f"box_scale must be positive, got {box_scale}")
    data = _to_2d(image)
    height, width = data.shape
    median, rms = estimate_background(data)
    empty = {
        "boxes": np.zeros((0, 4)),
        "scores": np.zeros(0),
        "centroids": np.zeros((0, 2)),
        "sigmas": np.zeros((0, 2)),
        "background": median,
        "rms": rms,
    }
    if rms <= 0:
        logger.warning("image has zero rms after clipping: no sources")
        return empty
    residual = np.where(np.isfinite(data), data - median, 0.0)
    island_level = island_nsigma * rms
    with warnings.catch_warnings():  # an empty field is an answer, not a problem
        warnings.simplefilter("ignore", NoDetectionsWarning)
        segm = detect_sources(residual, island_level, npixels)  # positional: renamed in v3
    if segm is None:
        return empty
    size = 2 * int(min_separation) + 1
    is_peak = (residual == maximum_filter(residual, size=size)) & (residual >= nsigma * rms)

    rows = []  # (x, y, value, level) of the pixels of each source
    for label, slc in zip(segm.labels, segm.slices):
        mask = segm.data[slc] == label
        values = residual[slc][mask]
        if values.max() < nsigma * rms:
            continue
        yy, xx = np.nonzero(mask)
        peaks = np.flatnonzero(is_peak[slc][mask])
        if not deblend or len(peaks) <= 1:
            rows.append((xx, yy, values, island_level, slc))
            continue
        # Nearest peak for every pixel; each part measured above half its own peak, where
        # its neighbours contribute little.
        d2 = (xx[:, None] - xx[peaks][None]) ** 2 + (yy[:, None] - yy[peaks][None]) ** 2
        owner = np.argmin(d2, axis=1)
        for k, p in enumerate(peaks):
            level = max(island_level, 0.5 * values[p])
            part = (owner == k) & (values >= level)
            rows.append((xx[part], yy[part], values[part], level, slc))

    sources = []
    for xx, yy, values, level, slc in rows:
        x = xx + slc[1].start + 0.5  # pixel centres: pixel j spans [j, j + 1]
        y = yy + slc[0].start + 0.5
        total = values.sum()
        cx, cy = (values * x).sum() / total, (values * y).sum() / total
        cxx = (values * (x - cx) ** 2).sum() / total
        cyy = (values * (y - cy) ** 2).sum() / total
        sources.append((cx, cy, cxx, cyy, values.max(), level))
    if not sources:
        return empty
    cx, cy, cxx, cyy, peak, level = (np.asarray(c, dtype=np.float64) for c in zip(*sources))
    if correct_truncation:
        g = _truncation_factor(peak / level)
        cxx, cyy = cxx / g, cyy / g
    sx = np.maximum(np.sqrt(cxx), min_sigma)
    sy = np.maximum(np.sqrt(cyy), min_sigma)
    keep = np.ones(len(sx), dtype=bool)
    if max_fwhm is not None:
        fwhm = 2.0 * np.sqrt(_FWHM_K2) * np.maximum(sx, sy)
        keep = fwhm <= max_fwhm
    hw = box_scale * np.sqrt(_FWHM_K2) * sx
    hh = box_scale * np.sqrt(_FWHM_K2) * sy
    boxes = np.stack(
        [
            np.clip(cx - hw, 0, width),
            np.clip(cy - hh, 0, height),
            np.clip(cx + hw, 0, width),
            np.clip(cy + hh, 0, height),
        ],
        axis=1,
    )
    scores = peak / rms
    order = np.argsort(-scores, kind="stable")
    order = order[keep[order]]
    return {
        "boxes": boxes[order],
        "scores": scores[order],
        "centroids": np.stack([cx, cy], axis=1)[order],
        "sigmas": np.stack([sx, sy], axis=1)[order],
        "background": median,
        "rms": rms,
    }


def _pick_category(gt: dict, category: str | int | None) -> tuple[dict, int]:
    """The ground truth to score against and the category id given to every detection.

    One category: it. Several and ``category`` given: that one (by name or id). Several and no
    ``category``: class-agnostic, every ground-truth box relabelled as one ``source`` class,
    since a source finder does not classify.
    """
    cats = gt["categories"]
    if category is not None:
        for c in cats:
            if str(category) in (str(c["id"]), str(c.get("name"))):
                return gt, c["id"]
        raise ValueError(
            f"category {category!r} not in the json; it has "
            + ", ".join(f"{c['id']}={c.get('name')}" for c in cats)
        )
    if len(cats) == 1:
        return gt, cats[0]["id"]
    logger.warning(
        "%d categories and no --category: scoring class-agnostic (every box is a 'source')",
        len(cats),
    )
    gt = dict(gt)
    gt["categories"] = [{"id": 1, "name": "source"}]
    gt["annotations"] = [{**a, "category_id": 1} for a in gt["annotations"]]
    return gt, 1


def run_classical_baseline(
    *,
    json_file: str | os.PathLike,
    image_root: str | os.PathLike,
    output_dir: str | os.PathLike,
    overwrite: bool = False,
    category: str | int | None = None,
    backend: str = "auto",
    progress: bool = True,
    **finder_kwargs,
) -> dict[str, float | None]:
    """Run :func:`find_sources` over a COCO data set and score it like a trained detector.

    Writes ``output_dir/metrics.json`` (``bbox/AP``, ``bbox/AP50``, ``bbox/AP75``, ...,
    ``bbox/AP50-<class>``; null where undefined), ``output_dir/coco_instances_results.json``
    and ``output_dir/finder.json`` (the settings).

    Args:
        json_file: COCO json of the images to search.
        image_root: folder the json's file names are relative to.
        output_dir: the output folder (refused when it exists, unless ``overwrite``).
        overwrite: replace an existing output folder.
        category: the category detections are given when the json has several (name or id);
            default: score class-agnostic.
        backend: COCO backend (see :func:`astrodet.evaluation.evaluate_coco`).
        progress: show a progress bar.
        **finder_kwargs: settings of :func:`find_sources`.

    Returns:
        the metrics written to ``metrics.json``.
    """
    from tqdm import tqdm

    from astrodet.data.coco import load_coco_json
    from astrodet.data.io import load_dict_image
    from astrodet.utils import atomic_write_json, prepare_output_dir

    from .coco_evaluation import (
        RESULTS_FILE,
        evaluate_coco,
        flatten_metrics,
        metrics_to_json,
    )

    json_file = Path(json_file)
    if not json_file.is_file():
        raise FileNotFoundError(f"COCO json {json_file} not found")
    try:
        gt = json.loads(json_file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{json_file} is not valid json: {e}") from e
    unknown = sorted(set(finder_kwargs) - set(inspect.signature(find_sources).parameters))
    if unknown:
        raise TypeError(f"unknown source finder settings {unknown}")
    gt, category_id = _pick_category(gt, category)
    dicts = load_coco_json(json_file, image_root)
    output_dir = prepare_output_dir(output_dir, overwrite=overwrite)

    results = []
    for d in tqdm(dicts, desc="source finding", unit="img", disable=not progress):
        found = find_sources(load_dict_image(d), **finder_kwargs)
        for (x0, y0, x1, y1), score in zip(found["boxes"], found["scores"]):
            results.append(
                {
                    "image_id": d["image_id"],
                    "category_id": category_id,
                    "bbox": [round(float(v), 3) for v in (x0, y0, x1 - x0, y1 - y0)],
                    "score": float(score),
                }
            )
    metrics = evaluate_coco(
        gt=gt, results=results, backend=backend, image_ids=[d["image_id"] for d in dicts]
    )
    flat = metrics_to_json(flatten_metrics({"bbox": metrics}))
    atomic_write_json(output_dir / RESULTS_FILE, results, indent=None)
    atomic_write_json(output_dir / "metrics.json", flat)
    settings = {"json_file": str(json_file), "image_root": str(image_root), **finder_kwargs}
    atomic_write_json(output_dir / "finder.json", settings)
    logger.info(
        "%d sources in %d images: bbox/AP50 %.4f, bbox/AP %.4f",
        len(results),
        len(dicts),
        metrics["AP50"],
        metrics["AP"],
    )
    return flat
