"""The classical threshold source finder, behind the :class:`~astrodet.sky.finders.base.Finder`
interface, and scored by the same COCO evaluator as the networks.

What a radio astronomer gets without a network, in the manner of PyBDSF: a background and rms
from sigma clipping (global for a cutout, a photutils map for a survey field); islands of
connected pixels above ``island_nsigma`` x rms that hold a peak above ``nsigma`` x rms and at
least ``npixels`` pixels; optionally deblended. Each island's intensity-weighted second
moments give a Gaussian; its FWHM ellipse's bounding box, times ``box_scale``, is the box (how
MGCLS labels are drawn from PyBDSF catalogues); the score is the peak signal-to-noise ratio.

Moments of the pixels above a threshold underestimate a Gaussian's width (its wings are cut
away). For a Gaussian of peak ``P`` cut at level ``T``, the intensity-weighted second moments
inside the contour are the true ones times ``g(L) = (1 - (1 + L) e^-L) / (1 - e^-L)`` with
``L = ln(P / T)``; the finder divides by ``g`` so faint sources get their full size.

Box convention. A network learns the size of its boxes from the training labels; a threshold
finder has to be told. :func:`calibrate` fits ``box_scale`` (and optionally ``nsigma``) on a
labelled training split by a grid search maximising AP50 there, starting from the median ratio
of matched label box sizes to the finder's FWHM boxes.
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

from astrodet.sky.finders.base import register_finder
from astrodet.sky.measure import estimate_background, truncation_factor

logger = logging.getLogger(__name__)

__all__ = [
    "ClassicalFinder",
    "calibrate",
    "estimate_background",
    "find_sources",
    "run_classical_baseline",
]

# The FWHM ellipse of a Gaussian is x^T C^-1 x = 2 ln 2: its bounding box half-extent along
# an axis is sqrt(2 ln 2 * C_ii).
_FWHM_K2 = 2.0 * math.log(2.0)


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
    background: float | np.ndarray | None = None,
    rms: float | np.ndarray | None = None,
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
        background, rms: background and noise (scalars or maps of the image's shape, e.g.
            from :func:`astrodet.sky.measure.background_map`); default one global
            sigma-clipped estimate.

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
    if background is None or rms is None:
        median, rms = estimate_background(data)
    else:
        median, rms = background, rms
    empty = {
        "boxes": np.zeros((0, 4)),
        "scores": np.zeros(0),
        "centroids": np.zeros((0, 2)),
        "sigmas": np.zeros((0, 2)),
        "background": median,
        "rms": rms,
    }
    noise = np.broadcast_to(np.asarray(rms, dtype=np.float64), data.shape)
    if not (np.nan_to_num(noise) > 0).any():
        logger.warning("image has zero rms after clipping: no sources")
        return empty
    residual = np.where(np.isfinite(data), data - median, 0.0)
    residual = np.nan_to_num(residual)  # NaN in a background map: no data there
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(noise > 0, residual / noise, 0.0)
    snr = np.nan_to_num(snr)
    with warnings.catch_warnings():  # an empty field is an answer, not a problem
        warnings.simplefilter("ignore", NoDetectionsWarning)
        segm = detect_sources(snr, island_nsigma, npixels)  # positional: renamed in v3
    if segm is None:
        return empty
    size = 2 * int(min_separation) + 1
    is_peak = (residual == maximum_filter(residual, size=size)) & (snr >= nsigma)

    rows = []  # (x, y, value, level) of the pixels of each source
    for label, slc in zip(segm.labels, segm.slices):
        mask = segm.data[slc] == label
        values = residual[slc][mask]
        island_snr = snr[slc][mask]
        if island_snr.max() < nsigma:
            continue
        yy, xx = np.nonzero(mask)
        noise_here = noise[slc][mask]
        peaks = np.flatnonzero(is_peak[slc][mask])
        if not deblend or len(peaks) <= 1:
            top = int(np.argmax(values))
            rows.append((xx, yy, values, island_nsigma * noise_here[top], island_snr[top], slc))
            continue
        # Nearest peak for every pixel; each part measured above half its own peak, where
        # its neighbours contribute little.
        d2 = (xx[:, None] - xx[peaks][None]) ** 2 + (yy[:, None] - yy[peaks][None]) ** 2
        owner = np.argmin(d2, axis=1)
        for k, p in enumerate(peaks):
            level = max(island_nsigma * noise_here[p], 0.5 * values[p])
            part = (owner == k) & (values >= level)
            rows.append((xx[part], yy[part], values[part], level, island_snr[p], slc))

    sources = []
    for xx, yy, values, level, peak_snr, slc in rows:
        x = xx + slc[1].start + 0.5  # pixel centres: pixel j spans [j, j + 1]
        y = yy + slc[0].start + 0.5
        total = values.sum()
        cx, cy = (values * x).sum() / total, (values * y).sum() / total
        cxx = (values * (x - cx) ** 2).sum() / total
        cyy = (values * (y - cy) ** 2).sum() / total
        sources.append((cx, cy, cxx, cyy, values.max(), level, peak_snr))
    if not sources:
        return empty
    cx, cy, cxx, cyy, peak, level, scores = (np.asarray(c, dtype=np.float64) for c in zip(*sources))
    if correct_truncation:
        g = truncation_factor(peak / level)
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


def _load_set(json_file, image_root, category):
    from astrodet.data.coco import load_coco_json

    json_file = Path(json_file)
    if not json_file.is_file():
        raise FileNotFoundError(f"COCO json {json_file} not found")
    try:
        gt = json.loads(json_file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{json_file} is not valid json: {e}") from e
    gt, category_id = _pick_category(gt, category)
    return gt, category_id, load_coco_json(json_file, image_root)


def _check_settings(finder_kwargs: dict) -> None:
    unknown = sorted(set(finder_kwargs) - set(inspect.signature(find_sources).parameters))
    if unknown:
        raise TypeError(f"unknown source finder settings {unknown}")


def _detect(dicts, *, progress: bool, desc: str, **finder_kwargs) -> list[dict]:
    from tqdm import tqdm

    from astrodet.data.io import load_dict_image

    return [
        {**find_sources(load_dict_image(d), **finder_kwargs), "shape": (d["height"], d["width"])}
        for d in tqdm(dicts, desc=desc, unit="img", disable=not progress)
    ]


def _scaled_boxes(found: dict, box_scale: float) -> np.ndarray:
    """Boxes of ``box_scale`` times the FWHM ellipse's bounding box, clipped to the image."""
    height, width = found["shape"]
    c, sig = found["centroids"], found["sigmas"]
    half = box_scale * math.sqrt(_FWHM_K2) * sig
    return np.stack(
        [
            np.clip(c[:, 0] - half[:, 0], 0, width),
            np.clip(c[:, 1] - half[:, 1], 0, height),
            np.clip(c[:, 0] + half[:, 0], 0, width),
            np.clip(c[:, 1] + half[:, 1], 0, height),
        ],
        axis=1,
    ).reshape(-1, 4)


def _coco_results(dicts, founds, category_id, box_scale: float) -> list[dict]:
    results = []
    for d, found in zip(dicts, founds):
        for (x0, y0, x1, y1), score in zip(_scaled_boxes(found, box_scale), found["scores"]):
            results.append(
                {
                    "image_id": d["image_id"],
                    "category_id": category_id,
                    "bbox": [round(float(v), 3) for v in (x0, y0, x1 - x0, y1 - y0)],
                    "score": float(score),
                }
            )
    return results


def _median_size_ratio(gt: dict, dicts, founds) -> float:
    """Median of sqrt(label box area / finder FWHM-box area) over labels whose centre lies
    within their own half-size of a found source's centre (nearest one)."""
    by_image = {}
    for a in gt["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a["bbox"])
    ratios = []
    for d, found in zip(dicts, founds):
        boxes = _scaled_boxes(found, 1.0)
        if not len(boxes):
            continue
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
        for x, y, w, h in by_image.get(d["image_id"], []):
            dist = np.hypot(centres[:, 0] - (x + w / 2), centres[:, 1] - (y + h / 2))
            k = int(np.argmin(dist))
            if dist[k] <= max(w, h) / 2 and area[k] > 0:
                ratios.append(math.sqrt(w * h / area[k]))
    return float(np.median(ratios)) if ratios else 1.0


def calibrate(
    *,
    json_file: str | os.PathLike,
    image_root: str | os.PathLike,
    box_scales: list[float] | None = None,
    nsigmas: list[float] | None = None,
    max_images: int | None = None,
    category: str | int | None = None,
    backend: str = "auto",
    progress: bool = True,
    **finder_kwargs,
) -> dict:
    """Fit the finder's box convention (and optionally its threshold) to labelled images.

    The finder runs once per threshold; every box scale is scored from the same detections by
    AP50 (COCO) on these images. The grid holds 0.5 to 4 in steps of 0.25 and seven points
    around the median ratio of matched label box sizes to the finder's FWHM boxes.

    Args:
        json_file, image_root: the labelled (training) images, COCO json.
        box_scales: the box scales to try (default: the grid above).
        nsigmas: detection thresholds to try (default: the finder's ``nsigma`` only).
        max_images: use the first this many images (all when None).
        category, backend, progress: as :func:`run_classical_baseline`.
        **finder_kwargs: fixed settings of :func:`find_sources`.

    Returns:
        ``{"box_scale", "nsigma", "ap50", "median_size_ratio", "n_images", "json_file",
        "grid": [{"nsigma", "box_scale", "ap50"}, ...]}``.
    """
    from astrodet.evaluation.coco_evaluation import evaluate_coco

    _check_settings(finder_kwargs)
    finder_kwargs.pop("box_scale", None)
    gt, category_id, dicts = _load_set(json_file, image_root, category)
    if max_images is not None:
        dicts = dicts[:max_images]
    ids = [d["image_id"] for d in dicts]
    base_nsigma = finder_kwargs.pop("nsigma", 5.0)
    island = finder_kwargs.pop("island_nsigma", 3.0)
    grid, ratio = [], None
    for nsigma in nsigmas or [base_nsigma]:
        founds = _detect(
            dicts,
            progress=progress,
            desc=f"calibration, nsigma {nsigma:g}",
            nsigma=nsigma,
            island_nsigma=min(island, nsigma),
            **finder_kwargs,
        )
        if ratio is None:
            ratio = _median_size_ratio(gt, dicts, founds)
            scales = box_scales or sorted(
                {round(float(v), 3) for v in np.arange(0.5, 4.01, 0.25)}
                | {round(float(ratio * f), 3) for f in np.linspace(0.7, 1.3, 7)}
            )
        for scale in scales:
            results = _coco_results(dicts, founds, category_id, scale)
            ap50 = float(
                evaluate_coco(gt=gt, results=results, backend=backend, image_ids=ids)["AP50"]
            )
            grid.append({"nsigma": float(nsigma), "box_scale": float(scale), "ap50": ap50})
    best = max(
        grid, key=lambda g: (np.nan_to_num(g["ap50"], nan=-1.0), -abs(g["box_scale"] - ratio))
    )
    fit = {
        "box_scale": best["box_scale"],
        "nsigma": best["nsigma"],
        "ap50": best["ap50"],
        "median_size_ratio": ratio,
        "n_images": len(dicts),
        "json_file": str(json_file),
        "grid": grid,
    }
    logger.info(
        "calibrated on %d images of %s: box_scale %.3f, nsigma %g (AP50 %.4f there; median "
        "label/finder size ratio %.3f)",
        len(dicts),
        json_file,
        fit["box_scale"],
        fit["nsigma"],
        fit["ap50"],
        ratio,
    )
    return fit


def run_classical_baseline(
    *,
    json_file: str | os.PathLike,
    image_root: str | os.PathLike,
    output_dir: str | os.PathLike,
    overwrite: bool = False,
    category: str | int | None = None,
    backend: str = "auto",
    progress: bool = True,
    calibrate_on: str | os.PathLike | None = None,
    calibrate_images: str | os.PathLike | None = None,
    calibrate_nsigmas: list[float] | None = None,
    calibrate_max_images: int | None = None,
    **finder_kwargs,
) -> dict[str, float | None]:
    """Run :func:`find_sources` over a COCO data set and score it like a trained detector.

    Writes ``output_dir/metrics.json`` (``bbox/AP``, ``bbox/AP50``, ``bbox/AP75``, ...,
    ``bbox/AP50-<class>``; null where undefined), ``output_dir/coco_instances_results.json``,
    ``output_dir/finder.json`` (the settings) and, when calibrated,
    ``output_dir/calibration.json`` (the fit and its grid).

    Args:
        json_file: COCO json of the images to search.
        image_root: folder the json's file names are relative to.
        output_dir: the output folder (refused when it exists, unless ``overwrite``).
        overwrite: replace an existing output folder.
        category: the category detections are given when the json has several (name or id);
            default: score class-agnostic.
        backend: COCO backend (see :func:`astrodet.evaluation.evaluate_coco`).
        progress: show a progress bar.
        calibrate_on: COCO json of labelled training images: fit ``box_scale`` (and the
            threshold over ``calibrate_nsigmas``) there with :func:`calibrate` first.
        calibrate_images: image folder of ``calibrate_on``.
        calibrate_nsigmas: thresholds tried by the calibration (default: ``nsigma`` only).
        calibrate_max_images: images of the training set used by the calibration.
        **finder_kwargs: settings of :func:`find_sources`.

    Returns:
        the metrics written to ``metrics.json``.
    """
    from astrodet.evaluation.coco_evaluation import (
        RESULTS_FILE,
        evaluate_coco,
        flatten_metrics,
        metrics_to_json,
    )
    from astrodet.utils import atomic_write_json, prepare_output_dir

    _check_settings(finder_kwargs)
    if (calibrate_on is None) != (calibrate_images is None):
        raise ValueError("--calibrate-on and --calibrate-images go together")
    gt, category_id, dicts = _load_set(json_file, image_root, category)
    output_dir = prepare_output_dir(output_dir, overwrite=overwrite)
    fit = None
    if calibrate_on is not None:
        fit = calibrate(
            json_file=calibrate_on,
            image_root=calibrate_images,
            nsigmas=calibrate_nsigmas,
            max_images=calibrate_max_images,
            category=category,
            backend=backend,
            progress=progress,
            **finder_kwargs,
        )
        fit["image_root"] = str(calibrate_images)
        atomic_write_json(output_dir / "calibration.json", fit)
        finder_kwargs = {**finder_kwargs, "box_scale": fit["box_scale"], "nsigma": fit["nsigma"]}
        finder_kwargs["island_nsigma"] = min(finder_kwargs.get("island_nsigma", 3.0), fit["nsigma"])
    box_scale = finder_kwargs.pop("box_scale", 1.0)
    if box_scale <= 0:
        raise ValueError(f"box_scale must be positive, got {box_scale}")
    founds = _detect(dicts, progress=progress, desc="source finding", **finder_kwargs)
    results = _coco_results(dicts, founds, category_id, box_scale)
    metrics = evaluate_coco(
        gt=gt, results=results, backend=backend, image_ids=[d["image_id"] for d in dicts]
    )
    flat = metrics_to_json(flatten_metrics({"bbox": metrics}))
    atomic_write_json(output_dir / RESULTS_FILE, results, indent=None)
    atomic_write_json(output_dir / "metrics.json", flat)
    settings = {
        "json_file": str(json_file),
        "image_root": str(image_root),
        "box_scale": box_scale,
        **finder_kwargs,
        "calibrated_on": None if fit is None else str(calibrate_on),
    }
    atomic_write_json(output_dir / "finder.json", settings)
    logger.info(
        "%d sources in %d images: bbox/AP50 %.4f, bbox/AP %.4f",
        len(results),
        len(dicts),
        metrics["AP50"],
        metrics["AP"],
    )
    return flat


def _owned(starts: list[int], size: int, n: int) -> list[tuple[float, float]]:
    """Per tile along one axis, the part it reports: up to the middle of each overlap."""
    ends = [min(s + size, n) for s in starts]
    lo = [-math.inf] + [(starts[k + 1] + ends[k]) / 2 for k in range(len(starts) - 1)]
    hi = lo[1:] + [math.inf]
    return list(zip(lo, hi))


@register_finder("classical")
class ClassicalFinder:
    """The threshold finder over a whole field, tile by tile, measured by
    :func:`astrodet.sky.measure.measure_sources` (score 1).

    Args:
        nsigma, island_nsigma, npixels, deblend, min_separation: as :func:`find_sources`.
        max_size_beams: drop sources wider than this many beams (None keeps all).
        tile_size: tile side in pixels; tiles overlap by ``overlap_beams`` beams (at least
            32 pixels) and each source is reported by the tile whose middle it is nearest.
        background_box: background box in pixels (default about 15 beams).
    """

    name = "classical"

    def __init__(
        self,
        *,
        nsigma: float = 5.0,
        island_nsigma: float = 3.0,
        npixels: int = 5,
        deblend: bool = False,
        min_separation: int = 2,
        max_size_beams: float | None = None,
        tile_size: int = 2048,
        overlap_beams: float = 10.0,
        background_box: int | None = None,
        progress: bool = False,
    ):
        if island_nsigma > nsigma:
            raise ValueError(f"island_nsigma ({island_nsigma}) must not exceed nsigma ({nsigma})")
        self.settings = dict(
            nsigma=nsigma,
            island_nsigma=island_nsigma,
            npixels=npixels,
            deblend=deblend,
            min_separation=min_separation,
        )
        self.max_size_beams = max_size_beams
        self.tile_size = tile_size
        self.overlap_beams = overlap_beams
        self.background_box = background_box
        self.progress = progress

    def find(self, field):
        """Search ``field`` (a :class:`~astrodet.sky.field.Field`); returns a catalogue."""
        from astropy.table import vstack
        from tqdm import tqdm

        from astrodet.sky.catalogue import new_catalogue
        from astrodet.sky.measure import background_tile, measure_sources

        beam_px = field.beam_pixels()
        size = min(self.tile_size, max(field.shape))
        overlap = min(int(max(32, self.overlap_beams * beam_px)), size // 2)
        max_fwhm = None if self.max_size_beams is None else self.max_size_beams * beam_px
        tiles = list(field.tiles(size, overlap))
        xs = sorted({t.x0 for t in tiles})
        ys = sorted({t.y0 for t in tiles})
        own_x = dict(zip(xs, _owned(xs, size, field.shape[1])))
        own_y = dict(zip(ys, _owned(ys, size, field.shape[0])))
        parts = []
        for tile in tqdm(tiles, desc="classical finder", unit="tile", disable=not self.progress):
            data = field.read(tile.y0, tile.y1, tile.x0, tile.x1)
            if not np.isfinite(data).any():
                continue
            bkg, rms = background_tile(field, tile, box=self.background_box)
            found = find_sources(data, background=bkg, rms=rms, max_fwhm=max_fwhm, **self.settings)
            if not len(found["boxes"]):
                continue
            cat = measure_sources(
                data,
                found["boxes"],
                rms=rms,
                bkg=bkg,
                beam=field.beam,
                pixel_scale=field.pixel_scale,
                offset=(tile.x0, tile.y0),
                wcs=field.wcs,
            )
            (xlo, xhi), (ylo, yhi) = own_x[tile.x0], own_y[tile.y0]
            # Centroids in the field's frame, pixel centres at integers.
            cx = found["centroids"][:, 0] - 0.5 + tile.x0
            cy = found["centroids"][:, 1] - 0.5 + tile.y0
            keep = (cx >= xlo) & (cx < xhi) & (cy >= ylo) & (cy < yhi)
            parts.append(cat[keep])
        meta = {
            "BEAM_MAJ": field.beam.maj,
            "BEAM_MIN": field.beam.min,
            "BEAM_PA": field.beam.pa,
            "IMAGE": str(field.path),
            "FINDER": self.name,
        }
        if field.pixel_scale:
            meta["PIXSCALE"] = field.pixel_scale
        if not parts:
            return new_catalogue(meta=meta)
        table = vstack(parts, metadata_conflicts="silent")
        table.meta = meta
        order = np.argsort(-np.nan_to_num(np.asarray(table["snr"], float)), kind="stable")
        table = table[order]
        table["source_id"] = np.arange(len(table))
        logger.info("%s: %d sources in %d tiles", field.path, len(table), len(tiles))
        return table
