"""COCO json <-> Detectron2 dataset dicts, validated on read; seeded label-fraction subsets.

Reading (:func:`load_coco_json`) checks the file once, so nothing fails mid-epoch later:

==============================  ==================================================================
missing / malformed json        ``FileNotFoundError`` / ``ValueError`` naming the file
duplicated image id             ``ValueError`` naming the id (its boxes cannot be attributed)
duplicated annotation id        an exact repeat is dropped and counted; two different
                                annotations sharing an id are a ``ValueError``
duplicated category id          ``ValueError``
missing image file              image dropped, counted (``missing_images``)
unreadable image file           image dropped, counted (``corrupt_images``): a cheap check of
                                each file (:func:`astrodet.data.io.check_image_file`: PNG
                                checksums, JPEG stream, .npy/FITS sizes) finds a corrupt or
                                truncated file here rather than in the training loop
image without height/width      read from the image file, counted (``sizes_read``)
box partly outside the image    clipped to the image, counted (``clipped_boxes``)
box of zero/negative size       dropped, counted (``degenerate_boxes``)
box wholly outside the image    dropped, counted (``outside_boxes``)
box not 4 finite numbers        dropped, counted (``invalid_boxes``)
unknown category id             annotation dropped, counted (``unknown_category``)
unknown image id                annotation dropped, counted (``unknown_image``)
image with no boxes             kept, counted (``images_without_boxes``)
==============================  ==================================================================

The counts form a :class:`CocoLoadSummary`, logged in one line (a warning when anything
was dropped or changed), returned by ``load_coco_json(..., return_summary=True)`` and kept
per json file for :func:`get_load_summary` (useful when the load happened inside
``DatasetCatalog.get``).

Category ids map to contiguous ids ``0..K-1`` in increasing id order; with ``dataset_name``
the ``MetadataCatalog`` gets ``thing_classes`` and ``thing_dataset_id_to_contiguous_id``.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from astrodet.data.io import check_image_file
from astrodet.structures import BoxMode
from astrodet.utils import atomic_write_json

__all__ = [
    "CocoLoadSummary",
    "get_load_summary",
    "label_fraction_indices",
    "load_coco_json",
    "save_coco_json",
    "subset_dicts",
]

logger = logging.getLogger(__name__)


@dataclass
class CocoLoadSummary:
    """What :func:`load_coco_json` kept, dropped and changed."""

    json_file: str
    images: int = 0
    annotations: int = 0
    categories: int = 0
    missing_images: int = 0
    corrupt_images: int = 0
    images_without_boxes: int = 0
    sizes_read: int = 0
    clipped_boxes: int = 0
    degenerate_boxes: int = 0
    outside_boxes: int = 0
    invalid_boxes: int = 0
    unknown_category: int = 0
    unknown_image: int = 0
    duplicate_annotations: int = 0
    missing_examples: list[str] = field(default_factory=list)
    corrupt_examples: list[str] = field(default_factory=list)

    #: counts that mean something in the json was dropped or changed
    PROBLEMS = (
        "missing_images",
        "corrupt_images",
        "clipped_boxes",
        "degenerate_boxes",
        "outside_boxes",
        "invalid_boxes",
        "unknown_category",
        "unknown_image",
        "duplicate_annotations",
    )

    @property
    def has_problems(self) -> bool:
        return any(getattr(self, k) for k in self.PROBLEMS)

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        counts = ", ".join(
            f"{k}={v}"
            for k, v in self.as_dict().items()
            if k not in ("json_file", "missing_examples", "corrupt_examples")
            and (v or k in ("images", "annotations", "categories"))
        )
        text = f"{self.json_file}: {counts}"
        if self.missing_examples:
            text += f" (missing e.g. {', '.join(self.missing_examples)})"
        if self.corrupt_examples:
            text += f" (unreadable e.g. {'; '.join(self.corrupt_examples)})"
        return text


_SUMMARIES: dict[str, CocoLoadSummary] = {}


def get_load_summary(json_file: str | os.PathLike) -> CocoLoadSummary:
    """The summary of the latest :func:`load_coco_json` of ``json_file`` in this process.

    Raises:
        KeyError: that file was not loaded yet.
    """
    key = os.path.abspath(os.fspath(json_file))
    if key not in _SUMMARIES:
        raise KeyError(f"{json_file} has not been loaded by load_coco_json in this process")
    return _SUMMARIES[key]


# -------------------------------------------------------------------------------- reading
def _read_json(json_file: Path) -> dict:
    if not json_file.is_file():
        raise FileNotFoundError(f"COCO annotation file {json_file} not found")
    try:
        with open(json_file, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"COCO annotation file {json_file} is not valid json: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"COCO annotation file {json_file}: top level must be an object")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"COCO annotation file {json_file} has no {key!r} list")
    if not isinstance(data.get("annotations", []), list):
        raise ValueError(f"COCO annotation file {json_file}: 'annotations' must be a list")
    return data


def _categories(data: dict, json_file: Path) -> tuple[list[str], dict[int, int]]:
    cats = data["categories"]
    for c in cats:
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise ValueError(f"{json_file}: category {c!r} needs an 'id' and a 'name'")
    ids = [c["id"] for c in cats]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"{json_file}: duplicated category ids {dup}")
    cats = sorted(cats, key=lambda c: c["id"])
    return [str(c["name"]) for c in cats], {c["id"]: i for i, c in enumerate(cats)}


def _box(ann: dict) -> list[float] | None:
    bbox = ann.get("bbox")
    if not isinstance(bbox, list | tuple) or len(bbox) != 4:
        return None
    try:
        box = [float(v) for v in bbox]
    except (TypeError, ValueError):
        return None
    return box if all(math.isfinite(v) for v in box) else None


def _image_size(file_name: str) -> tuple[int, int]:
    from astrodet.data.io import read_image

    h, w = read_image(file_name).shape[:2]
    return int(h), int(w)


def load_coco_json(
    json_file: str | os.PathLike,
    image_root: str | os.PathLike,
    dataset_name: str | None = None,
    *,
    check_images: bool = True,
    return_summary: bool = False,
) -> list[dict] | tuple[list[dict], CocoLoadSummary]:
    """Read a COCO instances json into Detectron2 dataset dicts, validating it.

    Args:
        json_file: the COCO annotation file.
        image_root: folder the images' ``file_name`` are relative to (absolute names are kept).
        dataset_name: when given, set ``thing_classes`` and ``thing_dataset_id_to_contiguous_id``
            in ``MetadataCatalog.get(dataset_name)``.
        check_images: check that every image file is readable (a cheap check, about a
            millisecond a file); unreadable ones are dropped and counted.
        return_summary: also return the :class:`CocoLoadSummary`.

    Returns:
        ``[{"file_name" (absolute), "height", "width", "image_id", "annotations": [{"bbox"
        [x, y, w, h], "bbox_mode": BoxMode.XYWH_ABS, "category_id" 0..K-1}]}]`` in the
        json's image order; with ``return_summary`` a ``(dicts, summary)`` pair.

    Raises:
        FileNotFoundError: ``json_file`` does not exist.
        ValueError: malformed json, duplicated image or category ids, conflicting annotations.
    """
    json_path = Path(json_file)
    data = _read_json(json_path)
    thing_classes, id_map = _categories(data, json_path)
    summary = CocoLoadSummary(json_file=str(json_path), categories=len(thing_classes))
    image_root = os.path.abspath(os.fspath(image_root))

    images: dict = {}
    for img in data["images"]:
        if not isinstance(img, dict) or "id" not in img or "file_name" not in img:
            raise ValueError(f"{json_path}: image entry {img!r} needs an 'id' and a 'file_name'")
        if img["id"] in images:
            raise ValueError(
                f"{json_path}: duplicated image id {img['id']!r} "
                f"({images[img['id']]['file_name']} and {img['file_name']})"
            )
        images[img["id"]] = img

    anns_by_image: dict = {i: [] for i in images}
    seen_ann: dict = {}
    for ann in data.get("annotations", []):
        if not isinstance(ann, dict):
            raise ValueError(f"{json_path}: annotation {ann!r} is not an object")
        if "id" in ann:
            if ann["id"] in seen_ann:
                if seen_ann[ann["id"]] != ann:
                    raise ValueError(
                        f"{json_path}: annotation id {ann['id']!r} is used by two different "
                        f"annotations: {seen_ann[ann['id']]} and {ann}"
                    )
                summary.duplicate_annotations += 1
                continue
            seen_ann[ann["id"]] = ann
        if ann.get("image_id") not in anns_by_image:
            summary.unknown_image += 1
        elif ann.get("category_id") not in id_map:
            summary.unknown_category += 1
        else:
            anns_by_image[ann["image_id"]].append(ann)

    dicts = []
    for image_id, img in images.items():
        file_name = os.path.join(image_root, os.fspath(img["file_name"]))
        if not os.path.isfile(file_name):
            summary.missing_images += 1
            if len(summary.missing_examples) < 3:
                summary.missing_examples.append(file_name)
            # their annotations go with them, uncounted as boxes
            continue
        problem = check_image_file(file_name) if check_images else None
        if problem is not None:
            summary.corrupt_images += 1
            if len(summary.corrupt_examples) < 3:
                summary.corrupt_examples.append(f"{file_name}: {problem}")
            continue
        height, width = img.get("height"), img.get("width")
        if not height or not width:
            height, width = _image_size(file_name)
            summary.sizes_read += 1
        height, width = int(height), int(width)
        record_anns = []
        for ann in anns_by_image[image_id]:
            box = _box(ann)
            if box is None:
                summary.invalid_boxes += 1
                continue
            x, y, w, h = box
            if w <= 0 or h <= 0:
                summary.degenerate_boxes += 1
                continue
            x0, y0 = max(x, 0.0), max(y, 0.0)
            x1, y1 = min(x + w, float(width)), min(y + h, float(height))
            if x1 <= x0 or y1 <= y0:
                summary.outside_boxes += 1
                continue
            if (x0, y0, x1, y1) != (x, y, x + w, y + h):
                summary.clipped_boxes += 1
            out = {
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": id_map[ann["category_id"]],
            }
            if "iscrowd" in ann:
                out["iscrowd"] = int(ann["iscrowd"])
            record_anns.append(out)
        if not record_anns:
            summary.images_without_boxes += 1
        summary.annotations += len(record_anns)
        dicts.append(
            {
                "file_name": file_name,
                "height": height,
                "width": width,
                "image_id": image_id,
                "annotations": record_anns,
            }
        )
    summary.images = len(dicts)

    _SUMMARIES[os.path.abspath(json_path)] = summary
    (logger.warning if summary.has_problems else logger.info)("COCO load %s", summary)

    if dataset_name is not None:
        from astrodet.data.catalog import MetadataCatalog

        MetadataCatalog.get(dataset_name).set(
            thing_classes=thing_classes, thing_dataset_id_to_contiguous_id=id_map
        )
    return (dicts, summary) if return_summary else dicts


# -------------------------------------------------------------------------------- writing
def _xywh(ann: dict) -> list[float]:
    mode = BoxMode(ann.get("bbox_mode", BoxMode.XYWH_ABS))
    box = BoxMode.convert([float(v) for v in ann["bbox"]], mode, BoxMode.XYWH_ABS)
    return [float(v) for v in box]


def save_coco_json(
    path: str | os.PathLike,
    dicts: Sequence[dict],
    thing_classes: Sequence[str],
    *,
    image_root: str | os.PathLike | None = None,
) -> Path:
    """Write Detectron2 dataset dicts as a COCO instances json (atomically).

    Categories are ``1..K`` in ``thing_classes`` order (contiguous id + 1); annotations get
    ``id`` 1..N, ``area`` (w * h unless given) and ``iscrowd`` (0 unless given). A dict
    without ``image_id`` gets its index. ``file_name`` is written as given, or relative to
    ``image_root`` when it lies below it.

    Args:
        path: output json file.
        dicts: dataset dicts with ``file_name``, ``height``, ``width`` and ``annotations``
            (``bbox``, ``bbox_mode`` (default XYWH_ABS), ``category_id`` 0..K-1).
        thing_classes: class names, index = contiguous category id.
        image_root: make file names relative to this folder.

    Returns:
        ``path``.

    Raises:
        ValueError: a dict lacks a needed key, ids repeat, or a category id is out of range.
    """
    thing_classes = [str(c) for c in thing_classes]
    if not thing_classes:
        raise ValueError("save_coco_json needs at least one class name")
    root = os.path.abspath(os.fspath(image_root)) if image_root is not None else None
    images, annotations, seen = [], [], set()
    for index, d in enumerate(dicts):
        image_id = d.get("image_id", index)
        if isinstance(image_id, np.integer):
            image_id = int(image_id)
        if image_id in seen:
            raise ValueError(f"save_coco_json: duplicated image_id {image_id!r}")
        seen.add(image_id)
        missing = [k for k in ("file_name", "height", "width") if k not in d]
        if missing:
            raise ValueError(f"save_coco_json: dict of image {image_id!r} lacks {missing}")
        file_name = os.fspath(d["file_name"])
        if root is not None and os.path.isabs(file_name):
            rel = os.path.relpath(file_name, root)
            if not rel.startswith(os.pardir):
                file_name = rel
        images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "height": int(d["height"]),
                "width": int(d["width"]),
            }
        )
        for ann in d.get("annotations", []):
            cid = int(ann["category_id"])
            if not 0 <= cid < len(thing_classes):
                raise ValueError(
                    f"save_coco_json: image {image_id!r} has category_id {cid}, "
                    f"outside 0..{len(thing_classes) - 1} ({len(thing_classes)} classes)"
                )
            box = _xywh(ann)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cid + 1,
                    "bbox": box,
                    "area": float(ann.get("area", box[2] * box[3])),
                    "iscrowd": int(ann.get("iscrowd", 0)),
                }
            )
    coco = {
        "info": {
            "description": "written by astrodet",
            "date_created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": name, "supercategory": "source"}
            for i, name in enumerate(thing_classes)
        ],
    }
    out = atomic_write_json(path, coco, indent=None)
    logger.info(
        "wrote %d images, %d boxes, %d classes to %s",
        len(images),
        len(annotations),
        len(thing_classes),
        path,
    )
    return Path(out)


# ------------------------------------------------------------------------------- subsets
def _check_fraction(fraction) -> float:
    try:
        value = float(fraction)
    except (TypeError, ValueError):
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}") from None
    if not 0.0 < value <= 1.0:  # also rejects NaN
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    return value


def _count(fraction: float, n: int) -> int:
    return int(math.floor(fraction * n + 0.5))


def label_fraction_indices(
    labels: Sequence[int] | np.ndarray,
    fraction: float,
    seed: int,
    *,
    stratify: bool = True,
    class_names: Sequence[str] | None = None,
    return_raised: bool = False,
) -> np.ndarray | tuple[np.ndarray, list[str]]:
    """Indices of a seeded ``fraction`` of the labelled examples, every class kept.

    With ``stratify`` each class contributes ``round(fraction * n_class)`` examples; a class
    that would get none gets one (logged as a warning). Without it the draw is uniform and
    one example of any class it missed is added (also a warning). For one seed, smaller
    fractions are subsets of larger ones. ``fraction=1.0`` returns every index.

    Args:
        labels: class label of each example (1-D).
        fraction: in (0, 1].
        seed: the draw's seed.
        stratify: keep the class proportions.
        class_names: names of the labels 0..K-1, for the warning (default: the labels).
        return_raised: also return the names of the classes raised to one example.

    Returns:
        Sorted int64 indices into ``labels``; with ``return_raised``, (indices, names).

    Raises:
        ValueError: ``fraction`` outside (0, 1], or no labels.
    """
    fraction = _check_fraction(fraction)
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D sequence, got shape {labels.shape}")
    n = labels.size
    if fraction == 1.0:
        idx = np.arange(n, dtype=np.int64)
        return (idx, []) if return_raised else idx
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    raised = []
    if stratify:
        chosen = []
        for c in classes:
            members = np.flatnonzero(labels == c)
            k = _count(fraction, members.size)
            if k == 0:
                k = 1
                raised.append(c)
            chosen.append(rng.permutation(members)[:k])
        idx = np.concatenate(chosen)
    else:
        order = rng.permutation(n)
        idx = order[: max(1, _count(fraction, n))]
        present = set(labels[idx].tolist())
        extra = []
        for c in classes:
            if c.item() not in present:
                raised.append(c)
                # first example of that class in the same seeded order
                extra.append(order[labels[order] == c][0])
        idx = np.concatenate([idx, np.asarray(extra, dtype=idx.dtype)])
    idx = np.sort(idx).astype(np.int64)
    names = [str(class_names[c] if class_names is not None else c.item()) for c in raised]
    if names:
        logger.warning(
            "fraction %g of %d examples leaves class(es) %s empty; "
            "raised to one example per class (%d examples)",
            fraction,
            n,
            ", ".join(names),
            len(idx),
        )
    return (idx, names) if return_raised else idx


def subset_dicts(dicts: Sequence[dict], fraction: float, seed: int) -> list[dict]:
    """A seeded ``fraction`` of a detection set's images (at least one), in their order.

    Args:
        dicts: dataset dicts.
        fraction: in (0, 1]; 1.0 returns all of them.
        seed: the draw's seed.

    Raises:
        ValueError: ``fraction`` outside (0, 1] or no dicts.
    """
    dicts = list(dicts)
    if not dicts:
        raise ValueError("subset_dicts: the dataset is empty")
    idx = label_fraction_indices(np.zeros(len(dicts), np.int64), fraction, seed, stratify=False)
    return [dicts[i] for i in idx]
