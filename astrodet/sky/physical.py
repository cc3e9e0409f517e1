"""Physical sources with their components: what ``tools/find_sources.py --associate`` writes.

A detector trained on whole sources (the RGZ/FIRST configs: one box around all the components
of a radio galaxy, classed by components and peaks) gives one box per physical source. Its
components come from a component finder run on the same field (the classical finder by
default, or PyBDSF), and each component goes to the box that holds it
(:func:`astrodet.sky.associate.assign_components`: the highest-scoring box, then the nearest
centre). A box mostly inside a larger one (a lobe found beside its double) is absorbed by it
first (:func:`astrodet.sky.associate.absorb_contained`; the finder dict's ``absorb_inside``
and ``absorb_score_ratio``, 0.8 and 0.5 by default).

Two tables (:func:`find_physical_sources`):

* sources, one row per physical source: the catalogue's columns (``source_id``, ``ra``,
  ``dec``, ``x``, ``y``, fluxes, sizes... measured on the box, as the detector finder
  measures any box) plus ``x_min, y_min, x_max, y_max`` (the box in 0-based pixel edges of
  the field, FITS orientation: pixel ``i`` spans ``[i, i + 1)``, the frame of ``x``, ``y``),
  ``class`` (the model's class name), ``class_score`` and ``n_components``;
* components, one row per component of the component finder: its catalogue columns, with
  its own id as ``component_id`` and ``source_id`` the physical source it belongs to (-1:
  no box holds it).

A config marks a model trained on whole sources with ``finder = dict(associate=True)``
(:func:`associates_by_default`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "BOX_COLUMNS",
    "COMPONENT_FINDERS",
    "absorb_setting",
    "associates_by_default",
    "class_names",
    "finder_settings",
    "find_physical_sources",
    "physical_regions_text",
    "write_physical",
]

BOX_COLUMNS = ("x_min", "y_min", "x_max", "y_max")
COMPONENT_FINDERS = ("classical", "pybdsf")


def finder_settings(config_file: str | os.PathLike, overrides=()) -> dict:
    """A config's ``finder`` dict (its operating point; empty when it has none)."""
    from astrodet.config import LazyConfig

    cfg = LazyConfig.apply_overrides(LazyConfig.load(str(config_file)), list(overrides))
    return dict(cfg.get("finder") or {})


def associates_by_default(config_file: str | os.PathLike, overrides=()) -> bool:
    """True when a config's ``finder`` dict says its model was trained on whole physical
    sources (``associate=True``)."""
    return bool(finder_settings(config_file, overrides).get("associate", False))


def absorb_setting(
    point: dict | None = None, *, inside: float | None = None, score_ratio: float | None = None
) -> tuple[float, float] | None:
    """``(inside, score_ratio)`` of :func:`~astrodet.sky.associate.absorb_contained`: the
    arguments where given, else the finder dict's ``absorb_inside`` / ``absorb_score_ratio``,
    else the defaults; None when ``inside`` is 0 (every box a source)."""
    from astrodet.sky.associate import ABSORB_INSIDE, ABSORB_SCORE_RATIO

    point = point or {}
    if inside is None:
        inside = point.get("absorb_inside", ABSORB_INSIDE)
    if score_ratio is None:
        score_ratio = point.get("absorb_score_ratio", ABSORB_SCORE_RATIO)
    if not inside:
        return None
    if not 0.0 < float(inside) <= 1.0 or float(score_ratio) < 0.0:
        raise ValueError(
            f"absorb_inside must be in (0, 1] (0: off) and absorb_score_ratio >= 0, "
            f"got {inside} and {score_ratio}"
        )
    return float(inside), float(score_ratio)


def class_names(config_file: str | os.PathLike, overrides=()) -> list[str]:
    """The class names of a config's model: its test set's registered ``thing_classes``,
    else its test json's categories, else ``class_0`` ... (``model.num_classes``)."""
    import json

    from astrodet.config import LazyConfig
    from astrodet.data import MetadataCatalog

    cfg = LazyConfig.apply_overrides(LazyConfig.load(str(config_file)), list(overrides))
    n = int(cfg.model.get("num_classes", 1))
    dataset = cfg.dataloader.test.get("dataset", {})
    name = dataset.get("dataset_name")
    if name:
        names = MetadataCatalog.get(name).get("thing_classes", None)
        if names and len(names) == n:
            return list(names)
    json_file = dataset.get("json_file")
    if json_file and Path(json_file).is_file():
        cats = sorted(json.loads(Path(json_file).read_text())["categories"], key=lambda c: c["id"])
        if len(cats) == n:
            return [c["name"] for c in cats]
    return [f"class_{k}" for k in range(n)]


def _component_finder(name: str, *, threads: int | None = None):
    from astrodet.sky.finders import build_finder

    if name not in COMPONENT_FINDERS:
        raise ValueError(f"components must be one of {COMPONENT_FINDERS}, got {name!r}")
    if name == "pybdsf":
        from astrodet.sky.finders.detector import default_threads

        return build_finder(name, ncores=threads or default_threads())
    return build_finder(name)


def find_physical_sources(
    finder,
    field,
    *,
    classes: list[str],
    components: str = "classical",
    component_finder=None,
    absorb: tuple[float, float] | None | str = "config",
):
    """Physical sources and their components in ``field`` (module docstring).

    Args:
        finder: a :class:`~astrodet.sky.finders.detector.DetectorFinder` of a model trained
            on whole sources.
        field: the :class:`~astrodet.sky.field.Field`.
        classes: the model's class names (index = the model's 1-based label - 1).
        components: ``"classical"`` or ``"pybdsf"``: the component finder.
        component_finder: a finder to use instead (anything with ``find(field)``).
        absorb: ``(inside, score_ratio)``: boxes mostly inside a larger box are parts of
            it (:func:`~astrodet.sky.associate.absorb_contained`); None: every box is a
            source; ``"config"``: the finder's operating point, else the defaults.

    Returns:
        ``(sources, components)`` catalogues.
    """
    from astrodet.sky.associate import assign_components
    from astrodet.sky.catalogue import new_catalogue
    from astrodet.sky.finders.detector import measure_field

    boxes, scores = finder.detect(field)
    # the model's labels are 1-based (0 is the background): class index + 1
    labels = np.asarray(finder.labels, int).reshape(-1) - 1
    if len(labels) != len(boxes):
        raise ValueError(f"{finder!r} gave {len(boxes)} boxes but {len(labels)} class labels")
    meta = {
        "FINDER": f"{finder.name}+associate",
        "IMAGE": Path(field.path).name,
        "BEAM_MAJ": field.beam.maj,
        "BEAM_MIN": field.beam.min,
        "BEAM_PA": field.beam.pa,
        "NTILES": finder.stats.get("tiles", 0),
    }
    if field.pixel_scale:
        meta["PIXSCALE"] = field.pixel_scale
    if len(boxes) and finder.measure:
        table = measure_field(field, boxes, scores, meta=meta, deblend=False)
        columns = {c: np.asarray(table[c]) for c in table.colnames if c != "source_id"}
    else:
        columns = {
            "x": (boxes[:, 0] + boxes[:, 2]) / 2.0 - 0.5 if len(boxes) else np.zeros(0),
            "y": (boxes[:, 1] + boxes[:, 3]) / 2.0 - 0.5 if len(boxes) else np.zeros(0),
            "score": scores,
        }
    keep = np.ones(len(boxes), bool)
    if finder.min_snr and "snr" in columns and len(boxes):
        with np.errstate(invalid="ignore"):
            keep = np.asarray(columns["snr"], float) >= finder.min_snr
        meta["MINSNR"] = finder.min_snr
    if absorb == "config":
        absorb = absorb_setting(getattr(finder, "operating_point", None))
    if absorb is not None:
        from astrodet.sky.associate import absorb_among

        keep = absorb_among(keep, boxes, scores, absorb)
        meta["ABSORB"] = f"{absorb[0]:g} {absorb[1]:g}"
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    columns = {k: np.asarray(v)[keep] for k, v in columns.items()}

    comp_finder = component_finder or _component_finder(components)
    comps = comp_finder.find(field)
    # catalogue x, y are pixel centres (pixel i at i); boxes are edges (pixel i spans [i, i+1))
    xy = np.stack([np.asarray(comps["x"], float), np.asarray(comps["y"], float)], axis=1) + 0.5
    owner = assign_components(components=xy, boxes=boxes, scores=scores)
    n_comp = np.bincount(owner[owner >= 0], minlength=len(boxes)) if len(boxes) else []

    bad = sorted({int(v) for v in labels if not 0 <= v < len(classes)})
    if bad:
        raise ValueError(
            f"the model gave label {bad[0] + 1}, but it has {len(classes)} class names "
            "(labels are 1-based)"
        )
    sources = new_catalogue(
        meta={**meta, "COMPFIND": getattr(comp_finder, "name", components)},
        **columns,
        **{c: boxes[:, k] if len(boxes) else np.zeros(0) for k, c in enumerate(BOX_COLUMNS)},
        **{
            "class": np.asarray([classes[v] for v in labels], dtype="U16"),
            "class_score": np.asarray(scores, float),
            "n_components": np.asarray(n_comp, np.int64),
        },
    )
    comp_columns = {c: np.asarray(comps[c]) for c in comps.colnames if c != "source_id"}
    components_table = new_catalogue(
        meta={**dict(comps.meta), "IMAGE": meta["IMAGE"], "NUNASSOC": int((owner < 0).sum())},
        component_id=np.asarray(comps["source_id"], np.int64),
        **{"source_id": owner.astype(np.int64)},
        **comp_columns,
    )
    # the component id first, then the physical source it belongs to
    order = ["component_id", "source_id"]
    components_table = components_table[
        order + [c for c in components_table.colnames if c not in order]
    ]
    logger.info(
        "%s: %d physical sources, %d components (%d in no source)",
        field.path,
        len(sources),
        len(components_table),
        int((owner < 0).sum()),
    )
    return sources, components_table


def physical_regions_text(sources, components) -> str:
    """DS9 regions (image coordinates, 1-based): a box per physical source (its id and
    class) and an ellipse per component (its id), the components of one source in one
    colour."""
    scale = float(components.meta.get("PIXSCALE", sources.meta.get("PIXSCALE", 1.0)) or 1.0)
    colours = ("green", "cyan", "magenta", "yellow", "orange", "red", "blue")
    lines = ["# Region file format: DS9 version 4.1", "global width=1", "image"]
    for row in sources:
        x0, y0, x1, y1 = (float(row[c]) for c in BOX_COLUMNS)
        sid = int(row["source_id"])
        lines.append(
            f"box({(x0 + x1) / 2 + 0.5:.3f},{(y0 + y1) / 2 + 0.5:.3f},{x1 - x0:.3f},"
            f"{y1 - y0:.3f},0) # color={colours[sid % len(colours)]} "
            f"text={{{sid} {row['class']}}}"
        )
    for row in components:
        maj, mn = float(row["maj"]), float(row["min"])
        if not np.isfinite(maj):
            maj = mn = 1.0 * scale
        if not np.isfinite(mn):
            mn = maj
        pa = float(np.nan_to_num(row["pa"]))
        sid = int(row["source_id"])
        colour = colours[sid % len(colours)] if sid >= 0 else "white"
        lines.append(
            f"ellipse({float(row['x']) + 1:.3f},{float(row['y']) + 1:.3f},"
            f"{maj / scale / 2:.3f},{mn / scale / 2:.3f},{pa + 90:.2f}) # color={colour} "
            f"dash=1 text={{c{int(row['component_id'])}}}"
        )
    return "\n".join(lines) + "\n"


def write_physical(
    sources, components, stem: str | os.PathLike, *, overwrite: bool = False
) -> dict[str, Path]:
    """``<stem>.fits/.csv`` (sources), ``<stem>_components.fits/.csv`` and ``<stem>.reg``
    (source boxes and component ellipses), atomically.

    Returns:
        ``{"fits", "csv", "components_fits", "components_csv", "reg"}`` paths.
    """
    from astrodet.sky.catalogue import write_catalogue
    from astrodet.utils import atomic_write_text

    stem = Path(stem)
    comp_stem = stem.with_name(stem.name + "_components")
    reg = stem.with_name(stem.name + ".reg")
    if reg.exists() and not overwrite:
        raise FileExistsError(f"{reg} exists; pass --overwrite to replace it")
    paths = write_catalogue(sources, stem, formats=("fits", "csv"), overwrite=overwrite)
    comp = write_catalogue(components, comp_stem, formats=("fits", "csv"), overwrite=overwrite)
    atomic_write_text(reg, physical_regions_text(sources, components))
    return {
        **paths,
        "components_fits": comp["fits"],
        "components_csv": comp["csv"],
        "reg": reg,
    }
