"""Physical sources of a detector and of the classical finders, scored against Radio Galaxy
Zoo consensus on the ``rgz_first_det`` test split (:mod:`astrodet.data.rgz_first`), all in
one table: mAP@0.5 over the six RGZ classes and per class, and association accuracy
(:mod:`astrodet.sky.associate`).

Predictions are read as COCO results json (the set's image ids and category ids, boxes in
the images' COCO frame) or as a folder of per-image catalogues (``<image stem>.csv`` or
``.fits``, one row per physical source: ``x_min, y_min, x_max, y_max`` in pixel edges of
the image's FITS field ``fields/<split>/<stem>.fits``, pixel ``i`` spanning ``[i, i + 1)``,
``class``, ``class_score``), as ``tools/find_sources.py`` writes them.

A detector's physical sources are its boxes at or above the score threshold, less the boxes
absorbed by larger ones (:func:`astrodet.sky.associate.absorb_contained`), as
``tools/find_sources.py --associate`` keeps them; its mAP takes every box.

Baselines run on the FITS field of every test image whose pixels are real fluxes (not the
clipped 8-bit PNGs, which have no noise left to set a threshold by; they are counted):
PyBDSF's islands (its sources grouped by ``island_id``, or, where the catalogue has no such
column, by the connected region above ``thresh_isl`` x rms their positions fall in) and the
classical finder's islands (one per row). Every method is scored on the images where all of
them ran (``common``: the unclipped ones when baselines run) and, where it ran on all, on
every image (``all``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from astrodet.sky.associate import (
    ABSORB_INSIDE,
    ABSORB_SCORE_RATIO,
    absorb_among,
    associate_image,
    association_summary,
    bootstrap_map50,
    island_sources,
)

logger = logging.getLogger(__name__)

__all__ = [
    "BASELINES",
    "draw_examples",
    "format_table",
    "read_predictions",
    "run_baseline",
    "score_association",
]

BASELINES = ("pybdsf", "classical")
_BOX_COLUMNS = ("x_min", "y_min", "x_max", "y_max")
_COLORS = {"truth": "#33BB33", 0: "#CC3311", 1: "#EE3377", 2: "#0077BB", 3: "#EE7733"}


# ------------------------------------------------------------------------------ reading
def _stem(image: dict) -> str:
    return Path(image["file_name"]).stem


def _empty() -> dict:
    return {"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "classes": np.zeros(0, int)}


def _from_results(path: Path, gt: dict) -> dict[int, dict]:
    try:
        results = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if isinstance(results, dict):  # a COCO file holding its detections as annotations
        results = results.get("annotations", [])
    cats = [c["id"] for c in gt["categories"]]
    images = {im["id"] for im in gt["images"]}
    rows: dict[int, list] = {i: [] for i in images}
    for k, r in enumerate(results):
        missing = [key for key in ("image_id", "category_id", "bbox", "score") if key not in r]
        if missing:
            raise ValueError(f"{path}: result {k} lacks {missing}")
        if r["image_id"] not in images:
            raise ValueError(f"{path}: result {k} names image {r['image_id']!r}, not in the set")
        if r["category_id"] not in cats:
            raise ValueError(
                f"{path}: result {k} has category_id {r['category_id']!r}; the set's are {cats}"
            )
        x, y, w, h = (float(v) for v in r["bbox"])
        rows[r["image_id"]].append(([x, y, x + w, y + h], float(r["score"]), r["category_id"]))
    out = {}
    for i, found in rows.items():
        if not found:
            out[i] = _empty()
            continue
        boxes, scores, classes = zip(*found)
        out[i] = {
            "boxes": np.asarray(boxes, float),
            "scores": np.asarray(scores, float),
            "classes": np.asarray([cats.index(c) for c in classes], int),
        }
    return out


def _from_catalogues(folder: Path, gt: dict) -> dict[int, dict]:
    from astropy.table import Table

    from astrodet.data.rgz import normalize_rgz_label

    names = [c["name"] for c in gt["categories"]]
    out, missing = {}, []
    for image in gt["images"]:
        path = next(
            (
                folder / f"{_stem(image)}{s}"
                for s in (".csv", ".fits")
                if (folder / f"{_stem(image)}{s}").is_file()
            ),
            None,
        )
        if path is None:
            missing.append(_stem(image))
            continue
        table = Table.read(path, format="ascii.csv" if path.suffix == ".csv" else "fits")
        need = [c for c in (*_BOX_COLUMNS, "class", "class_score") if c not in table.colnames]
        if need and len(table):
            raise ValueError(f"{path}: no column(s) {need}; columns are {table.colnames}")
        if not len(table):
            out[image["id"]] = _empty()
            continue
        h = float(image["height"])
        x0, y0, x1, y1 = (np.asarray(table[c], float) for c in _BOX_COLUMNS)
        classes = [
            names.index(normalize_rgz_label(str(v).strip(), source=str(path)))
            for v in table["class"]
        ]
        out[image["id"]] = {
            # FITS rows -> the COCO frame of the north-up image
            "boxes": np.stack([x0, h - y1, x1, h - y0], axis=1),
            "scores": np.asarray(table["class_score"], float),
            "classes": np.asarray(classes, int),
        }
    if missing:
        raise FileNotFoundError(
            f"{folder}: no catalogue for {len(missing)} of {len(gt['images'])} test images "
            f"(expected <stem>.csv or .fits, e.g. {missing[0]}.csv)"
        )
    return out


def read_predictions(path: str | os.PathLike, *, gt: dict) -> dict[int, dict]:
    """Predicted physical sources per image of ``gt``.

    Args:
        path: COCO results json, or a folder of per-image catalogues (module docstring).
        gt: the set's COCO json.

    Returns:
        image id -> ``{"boxes": (N, 4) XYXY in the image's COCO frame, "scores",
        "classes": contiguous class index}``.
    """
    path = Path(path)
    if path.is_dir():
        return _from_catalogues(path, gt)
    if not path.is_file():
        raise FileNotFoundError(f"predictions {path} not found (COCO results json or a folder)")
    return _from_results(path, gt)


# ------------------------------------------------------------------------------ baselines
def run_baseline(name: str, *, gt: dict, root: Path, progress: bool = False) -> tuple[dict, dict]:
    """Run a finder (``"pybdsf"`` or ``"classical"``) on the FITS field of each unclipped
    image and turn its islands into physical sources.

    Returns:
        (image id -> predictions as :func:`read_predictions`, info ``{"images_run",
        "skipped_clipped", "seconds", "seconds_per_image", "island_grouping"}``).
    """
    from tqdm import tqdm

    from astrodet.sky.catalogue import catalogue_to_boxes
    from astrodet.sky.field import open_field
    from astrodet.sky.finders import build_finder

    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {list(BASELINES)}")
    finder = build_finder(name)
    out, hows, skipped, seconds = {}, set(), 0, 0.0
    for image in tqdm(gt["images"], desc=name, unit="image", disable=not progress):
        if image.get("clipped"):
            skipped += 1
            continue
        start = time.perf_counter()
        with open_field(root / image["fits_file"]) as field:
            table = finder.find(field)
            data = field.read(0, field.shape[0], 0, field.shape[1])
            boxes = catalogue_to_boxes(table, wcs=field.wcs) if len(table) else np.zeros((0, 4))
        seconds += time.perf_counter() - start
        if name == "classical":  # each row is an island already
            islands, how = boxes, "one island per row"
        else:
            islands, _, how = island_sources(table, boxes=boxes, image=data)
        hows.add(how)
        h = float(image["height"])
        out[image["id"]] = {
            "boxes": np.stack(
                [islands[:, 0], h - islands[:, 3], islands[:, 2], h - islands[:, 1]], axis=1
            )
            if len(islands)
            else np.zeros((0, 4)),
            "scores": np.ones(len(islands)),
            "classes": np.full(len(islands), -1, int),
        }
    run = len(out)
    info = {
        "images_run": run,
        "skipped_clipped": skipped,
        "seconds": round(seconds, 2),
        "seconds_per_image": round(seconds / run, 3) if run else None,
        "island_grouping": sorted(hows - {"none"}) or ["none"],
    }
    logger.info("%s: %d images in %.1f s (%s)", name, run, seconds, info["island_grouping"])
    return out, info


# ------------------------------------------------------------------------------ scoring
def _truth(gt: dict) -> dict[int, dict]:
    """image id -> scored sources' components, their component counts, others' components."""
    out = {im["id"]: {"sources": [], "n_components": [], "others": []} for im in gt["images"]}
    for a in gt["annotations"]:
        comps = np.asarray(a.get("rgz", {}).get("components", []), float).reshape(-1, 2)
        if not len(comps):
            raise ValueError(f"annotation {a.get('id')} has no rgz components: not an RGZ set")
        t = out[a["image_id"]]
        if a.get("iscrowd", 0):
            t["others"].append(comps)
        else:
            t["sources"].append(comps)
            t["n_components"].append(len(comps))
    return out


def _subset_gt(gt: dict, image_ids: set, *, agnostic: bool = False) -> dict:
    images = [im for im in gt["images"] if im["id"] in image_ids]
    anns = [a for a in gt["annotations"] if a["image_id"] in image_ids]
    if agnostic:
        anns = [{**a, "category_id": 1} for a in anns]
        return {
            **gt,
            "images": images,
            "annotations": anns,
            "categories": [{"id": 1, "name": "source"}],
        }
    return {**gt, "images": images, "annotations": anns}


def _results(preds: dict[int, dict], gt: dict, *, agnostic: bool) -> list[dict]:
    cats = [c["id"] for c in gt["categories"]]
    out = []
    for image_id, p in preds.items():
        for (x0, y0, x1, y1), s, c in zip(p["boxes"], p["scores"], p["classes"]):
            out.append(
                {
                    "image_id": image_id,
                    "category_id": 1 if agnostic else cats[int(c)],
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    "score": float(s),
                }
            )
    return out


def _physical(p: dict, *, threshold: float, absorb: tuple | None) -> np.ndarray:
    """Mask of the predictions that are physical sources: at or above ``threshold``, then
    not absorbed by a larger box (``absorb``: ``(inside, score_ratio)`` or None)."""
    return absorb_among(p["scores"] >= threshold, p["boxes"], p["scores"], absorb)


def _score(preds, gt, truth, image_ids, *, classes, threshold, absorb, n_boot, seed) -> dict:
    units = {im["id"]: im.get("group", im["id"]) for im in gt["images"]}
    outcomes, n_comp, source_units = [], [], []
    for i in sorted(image_ids):
        p, t = preds[i], truth[i]
        keep = _physical(p, threshold=threshold, absorb=absorb)
        outcomes += associate_image(
            sources=t["sources"],
            boxes=p["boxes"][keep],
            scores=p["scores"][keep],
            others=t["others"],
        )
        n_comp += t["n_components"]
        source_units += [units[i]] * len(t["sources"])
    sub = {i: preds[i] for i in image_ids}
    result = {
        "images": len(image_ids),
        "association": association_summary(
            outcomes, n_components=n_comp, units=source_units, n_boot=n_boot, seed=seed
        ),
        "ap50_one_class": bootstrap_map50(
            gt=_subset_gt(gt, image_ids, agnostic=True),
            results=_results(sub, gt, agnostic=True),
            n_boot=0,
        )["AP50"],
    }
    if classes:
        result["map50"] = bootstrap_map50(
            gt=_subset_gt(gt, image_ids),
            results=_results(sub, gt, agnostic=False),
            units={i: units[i] for i in image_ids},
            n_boot=n_boot,
            seed=seed,
        )
    return result


def score_association(
    *,
    json_file: str | os.PathLike,
    output_dir: str | os.PathLike,
    predictions: str | os.PathLike | None = None,
    name: str = "detector",
    baselines: tuple[str, ...] = BASELINES,
    score_threshold: float = 0.5,
    absorb: tuple[float, float] | None = (ABSORB_INSIDE, ABSORB_SCORE_RATIO),
    n_boot: int = 1000,
    seed: int = 0,
    n_pictures: int = 6,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Score predictions and baselines against RGZ consensus; writes
    ``output_dir/association.json``, ``table.md`` and ``examples.png``.

    Args:
        json_file: the split's ``annotations.json`` (its fields under ``../fields``).
        output_dir: refused when it exists and is not empty, unless ``overwrite``.
        predictions: COCO results json or a folder of catalogues (None: baselines only).
        name: what the predictions are called in the table.
        baselines: finders run as baselines (``pybdsf``, ``classical``).
        score_threshold: predictions below it are not physical sources (association only;
            mAP takes them all).
        absorb: ``(inside, score_ratio)``: a predicted box with this fraction of its area
            inside a larger one scoring at least this ratio of its own is part of that
            source (:func:`~astrodet.sky.associate.absorb_contained`; association only;
            None: every box is a source).
        n_boot: bootstrap draws of the intervals (0: none).
        seed: of the draws.
        n_pictures: test images drawn in ``examples.png`` (0: none).
        overwrite: replace an existing output folder.
        progress: progress bars.

    Returns:
        the content of ``association.json``.
    """
    from astrodet.evaluation import metrics_to_json
    from astrodet.utils import atomic_write_json, atomic_write_text, prepare_output_dir

    json_file = Path(json_file)
    if not json_file.is_file():
        raise FileNotFoundError(f"ground truth {json_file} not found")
    if predictions is None and not baselines:
        raise ValueError("nothing to score: give predictions or at least one baseline")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {list(BASELINES)}")
    gt = json.loads(json_file.read_text())
    truth = _truth(gt)
    root = json_file.resolve().parent.parent
    methods: dict[str, tuple[dict, dict, bool]] = {}
    if predictions is not None:
        methods[name] = (read_predictions(predictions, gt=gt), {"source": str(predictions)}, True)
    out = prepare_output_dir(output_dir, overwrite=overwrite)
    for b in baselines:
        preds, info = run_baseline(b, gt=gt, root=root, progress=progress)
        methods[f"{b} islands"] = (preds, info, False)
    all_ids = {im["id"] for im in gt["images"]}
    common = set(all_ids)
    for preds, _, _ in methods.values():
        common &= set(preds)
    # every method on the images where all ran; the ones that ran on all also on every image
    subsets = {"all": all_ids} if common == all_ids else {"common": common, "all": all_ids}
    result = {
        "json_file": str(json_file),
        "images": len(all_ids),
        "images_common": len(common),
        "settings": {
            "score_threshold": score_threshold,
            "absorb_inside": absorb[0] if absorb else None,
            "absorb_score_ratio": absorb[1] if absorb else None,
            "n_boot": n_boot,
            "seed": seed,
            "bootstrap_unit": "sky group of the image",
            "membership": "a component goes to the highest-scoring box holding it",
        },
        "methods": {},
    }
    for method, (preds, info, classes) in methods.items():
        scored = {
            subset: _score(
                preds,
                gt,
                truth,
                ids,
                classes=classes,
                threshold=score_threshold if classes else 0.0,
                absorb=absorb if classes else None,
                n_boot=n_boot,
                seed=seed,
            )
            for subset, ids in subsets.items()
            if ids and ids <= set(preds)
        }
        result["methods"][method] = {**info, "subsets": scored}
    result = metrics_to_json(result)
    atomic_write_json(out / "association.json", result)
    atomic_write_text(out / "table.md", format_table(result))
    if n_pictures:
        draw_examples(
            gt=gt,
            image_dir=json_file.parent / "images",
            methods=methods,
            path=out / "examples.png",
            n=n_pictures,
            threshold=score_threshold,
            absorb=absorb,
        )
    return result


# ------------------------------------------------------------------------------ reporting
def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def _ci(d: dict | None) -> str:
    if not d or d.get("interval") is None:
        return ""
    lo, hi = d["interval"]
    return f" [{_pct(lo)}, {_pct(hi)}]"


def format_table(result: dict) -> str:
    """The markdown table of :func:`score_association`'s result."""
    lines = [
        "| method | images | 1C n | 1C accuracy % | 2C/3C n | 2C/3C accuracy % | split | merged "
        "| missed | mAP@0.5 six classes % | AP@0.5 one class % |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    per_class = []
    for method, m in result["methods"].items():
        for subset, s in m["subsets"].items():
            one, multi, every = (s["association"][k] for k in ("single", "multi", "all"))
            mp = s.get("map50")
            lines.append(
                f"| {method} | {subset} ({s['images']}) | {one['n']} | {_pct(one['accuracy'])}"
                f"{_ci(one)} | {multi['n']} | {_pct(multi['accuracy'])}{_ci(multi)} | "
                f"{every['split']} | {every['merged']} | {every['missed']} | "
                f"{_pct(mp['AP50']) + _ci(mp) if mp else '–'} | {_pct(s['ap50_one_class'])} |"
            )
            if mp:
                per_class.append((f"{method}, {subset}", mp["per_class"]))
    for title, classes in per_class:
        lines += [
            "",
            f"AP@0.5 per class ({title}):",
            "",
            "| class | n | AP@0.5 % |",
            "|---|---|---|",
        ]
        lines += [f"| {c} | {v['n']} | {_pct(v['AP50'])}{_ci(v)} |" for c, v in classes.items()]
    lines += [
        "",
        "Accuracy: the share of RGZ sources whose consensus components all went to one "
        "predicted source holding no other RGZ source's component; intervals are 95 % "
        f"bootstrap ({result['settings']['n_boot']} draws over sky groups).",
    ]
    st = result["settings"]
    detector = f"Predicted physical sources: boxes scoring at least {st['score_threshold']}"
    if st.get("absorb_inside"):
        detector += (
            f", a box with {st['absorb_inside']:g} of its area inside a larger one scoring at "
            f"least {st['absorb_score_ratio']:g} x its own absorbed by it"
        )
    lines[-1] += f" {detector}; mAP@0.5 takes every box."
    return "\n".join(lines) + "\n"


def draw_examples(
    *,
    gt: dict,
    image_dir: Path,
    methods: dict,
    path: Path,
    n: int = 6,
    threshold: float = 0.5,
    absorb: tuple | None = None,
) -> Path:
    """A picture of ``n`` test images with the consensus boxes and components and each
    method's physical sources.

    Args:
        gt: the split's COCO json.
        image_dir: its ``images`` folder.
        methods: name -> (predictions, info, has classes) as in :func:`score_association`.
        path: the PNG written.
        n: images drawn, spread over those with the most components first.
        threshold: the detector's boxes below this score are not drawn.
        absorb: ``(inside, score_ratio)`` of :func:`absorb_contained` for the detector's
            boxes, None: all drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from astrodet.data.stretch import apply_stretch
    from astrodet.utils import atomic_save_figure

    truth = _truth(gt)
    names = [c["name"] for c in sorted(gt["categories"], key=lambda c: c["id"])]
    ran = [
        i for i in (im["id"] for im in gt["images"]) if all(i in p for p, _, _ in methods.values())
    ]
    ran.sort(key=lambda i: (-max(truth[i]["n_components"], default=0), i))
    pick = ran[:: max(1, len(ran) // max(n, 1))][:n]
    images = {im["id"]: im for im in gt["images"]}
    cols = min(3, max(len(pick), 1))
    rows = max(1, -(-len(pick) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.4 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), pick):
        im = images[i]
        data = np.load(image_dir / im["file_name"])
        ax.imshow(apply_stretch(np.nan_to_num(data), "snr"), cmap="gray", origin="upper")
        for a in (a for a in gt["annotations"] if a["image_id"] == i):
            x, y, w, h = a["bbox"]
            ax.add_patch(Rectangle((x, y), w, h, fill=False, ec=_COLORS["truth"], lw=2, ls="-"))
            c = np.asarray(a["rgz"]["components"])
            ax.plot(c[:, 0], c[:, 1], "+", color=_COLORS["truth"], ms=10, mew=2)
        for k, (preds, _, classes) in enumerate(methods.values()):
            p = preds[i]
            keep = _physical(
                p, threshold=threshold if classes else 0.0, absorb=absorb if classes else None
            )
            for (x0, y0, x1, y1), c in zip(p["boxes"][keep], p["classes"][keep]):
                box = Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=_COLORS[k % 4], ls="--")
                ax.add_patch(box)
                if classes and 0 <= c < len(names):  # the predicted class, above its box
                    ax.text(x0, y0 - 1, names[c], color=_COLORS[k % 4], fontsize=6, va="bottom")
        ax.set_title(f"{im['file_name'][:-4]} ({im['kind']})", fontsize=8)
    handles = [Rectangle((0, 0), 1, 1, fill=False, ec=_COLORS["truth"], label="RGZ consensus")]
    handles += [
        Rectangle((0, 0), 1, 1, fill=False, ec=_COLORS[k % 4], ls="--", label=m)
        for k, m in enumerate(methods)
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return atomic_save_figure(fig, path, dpi=90)
