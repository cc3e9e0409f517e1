"""Radio Galaxy Zoo: COCO json or Pascal VOC XML -> COCO with the six RGZ classes.

The six classes name the number of radio components (C) and peaks (P) of a galaxy:
1C_1P, 1C_2P, 1C_3P, 2C_2P, 2C_3P, 3C_3P. Label spellings ``"1C_1P"``, ``"1_1"``,
``"1c1p"`` and ``"1C-1P"`` are all accepted; anything else is an error naming the file
and the label.

VOC boxes (ClaRAN release) are 1-based inclusive pixel indices; they become COCO boxes
``[xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1]``.

The classification subset keeps the images that show one galaxy (exactly one box by
default) and labels each by its largest box; ``scheme`` relabels the six classes by
morphology (6 classes), number of peaks (1P/2P/3P) or number of components (1C/2C/3C).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tarfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from astrodet.structures import BoxMode
from astrodet.utils import atomic_write_json, prepare_output_dir

logger = logging.getLogger(__name__)

__all__ = [
    "RGZ_CLASSES",
    "SCHEMES",
    "normalize_rgz_label",
    "prepare_rgz",
    "read_rgz_annotations",
    "read_rgz_catalogue",
    "read_voc_dir",
    "relabel",
    "rgz_class_name",
    "rgz_classification_dicts",
    "scheme_classes",
]

RGZ_CLASSES = ["1C_1P", "1C_2P", "1C_3P", "2C_2P", "2C_3P", "3C_3P"]
SCHEMES = ("morphology", "peaks", "components")
_LABEL_RE = re.compile(r"^\s*([123])\s*c?\s*[_\-\s]?\s*([123])\s*p?\s*$", re.IGNORECASE)


def rgz_class_name(num_components: int, num_peaks: int) -> str | None:
    """``"<n>C_<m>P"`` when it is one of the six classes, else None."""
    name = f"{int(num_components)}C_{int(num_peaks)}P"
    return name if name in RGZ_CLASSES else None


def normalize_rgz_label(label: str, *, source: str = "") -> str:
    """Map any accepted spelling (``"1_1"``, ``"1C_1P"``, ``"1c1p"``) to ``"1C_1P"``.

    Raises:
        ValueError: naming ``source`` and the label when it is not one of the six classes.
    """
    m = _LABEL_RE.match(str(label))
    name = rgz_class_name(int(m.group(1)), int(m.group(2))) if m else None
    if name is None:
        where = f"{source}: " if source else ""
        raise ValueError(
            f"{where}unknown RGZ label {label!r}; expected one of {RGZ_CLASSES} "
            "(or spellings like '1_1')"
        )
    return name


def scheme_classes(scheme: str) -> list[str]:
    """Class names of a relabelling scheme."""
    if scheme == "morphology":
        return list(RGZ_CLASSES)
    if scheme == "peaks":
        return ["1P", "2P", "3P"]
    if scheme == "components":
        return ["1C", "2C", "3C"]
    raise ValueError(f"unknown scheme {scheme!r}; choose one of {list(SCHEMES)}")


def relabel(class_name: str, scheme: str) -> int:
    """Index of an RGZ class (e.g. ``"2C_3P"``) in a scheme's classes."""
    name = normalize_rgz_label(class_name)
    scheme_classes(scheme)  # validates
    if scheme == "morphology":
        return RGZ_CLASSES.index(name)
    n_c, n_p = int(name[0]), int(name[3])
    return (n_p if scheme == "peaks" else n_c) - 1


# --------------------------------------------------------------------------- reading
def _box_area(a):
    return float(a["bbox"][2]) * float(a["bbox"][3])


def read_voc_dir(folder: str | os.PathLike) -> list[dict]:
    """Pascal VOC XML files of a folder -> Detectron2 dicts with the six RGZ classes.

    ``file_name`` is the XML's ``<filename>`` (relative to the image folder); category ids
    index :data:`RGZ_CLASSES`.
    """
    folder = Path(folder)
    files = sorted(folder.glob("*.xml"))
    if not files:
        raise FileNotFoundError(f"no VOC .xml files in {folder}")
    dicts = []
    for i, path in enumerate(files):
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as e:
            raise ValueError(f"{path}: not valid XML ({e})") from None
        fname = root.findtext("filename") or f"{path.stem}.png"
        size = root.find("size")
        try:
            width = int(size.findtext("width"))
            height = int(size.findtext("height"))
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"{path}: missing or bad <size><width>/<height>") from None
        anns = []
        for obj in root.findall("object"):
            label = normalize_rgz_label(obj.findtext("name", ""), source=str(path))
            bb = obj.find("bndbox")
            try:
                x0, y0, x1, y1 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            except (AttributeError, TypeError, ValueError):
                raise ValueError(f"{path}: object {label} has a missing or bad <bndbox>") from None
            anns.append(
                {
                    "bbox": [x0 - 1.0, y0 - 1.0, x1 - x0 + 1.0, y1 - y0 + 1.0],
                    "bbox_mode": BoxMode.XYWH_ABS,
                    "category_id": RGZ_CLASSES.index(label),
                }
            )
        dicts.append(
            {
                "file_name": fname,
                "height": height,
                "width": width,
                "image_id": i,
                "annotations": anns,
            }
        )
    return dicts


def _read_coco(path: Path) -> list[dict]:
    """COCO json with RGZ category names -> dicts with category ids indexing RGZ_CLASSES."""
    try:
        data = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise ValueError(f"{path}: no {key!r} key; not a COCO json file")
    cat_map = {
        c["id"]: RGZ_CLASSES.index(normalize_rgz_label(c["name"], source=str(path)))
        for c in data["categories"]
    }
    by_image: dict = {im["id"]: [] for im in data["images"]}
    for a in data["annotations"]:
        if a["category_id"] not in cat_map:
            raise ValueError(
                f"{path}: annotation {a.get('id')} has unknown category_id {a['category_id']}"
            )
        if a["image_id"] not in by_image:
            raise ValueError(f"{path}: annotation {a.get('id')} of unknown image {a['image_id']}")
        by_image[a["image_id"]].append(
            {
                "bbox": [float(v) for v in a["bbox"]],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": cat_map[a["category_id"]],
            }
        )
    return [
        {
            "file_name": im["file_name"],
            "height": int(im["height"]),
            "width": int(im["width"]),
            "image_id": im["id"],
            "annotations": by_image[im["id"]],
        }
        for im in data["images"]
    ]


def read_rgz_annotations(annotations: str | os.PathLike) -> list[dict]:
    """Read RGZ annotations: a COCO json file or a folder of VOC XML files.

    Returns:
        Detectron2 dicts, ``file_name`` as written in the annotations, category ids
        indexing :data:`RGZ_CLASSES`.
    """
    path = Path(annotations)
    if path.is_dir():
        return read_voc_dir(path)
    if not path.is_file():
        raise FileNotFoundError(f"RGZ annotations {path} not found (COCO json or VOC dir)")
    return _read_coco(path)


# --------------------------------------------------------------------------- classification
def rgz_classification_dicts(
    dicts: list[dict], *, scheme: str = "morphology", single: bool = True
) -> tuple[list[dict], dict]:
    """The classification subset of RGZ detection dicts.

    Args:
        dicts: detection dicts (category ids index :data:`RGZ_CLASSES`), e.g. from
            :func:`astrodet.data.coco.load_coco_json` or :func:`read_rgz_annotations`.
        scheme: ``"morphology"`` (6 classes), ``"peaks"`` or ``"components"`` (3 each).
        single: keep only images with exactly one box (one galaxy); False keeps every
            image with a box, labelled by its largest box.

    Returns:
        (classification dicts ``{"image_id", "label", "file_name"}``, counts ``kept``,
        ``skipped_empty``, ``skipped_multi``).
    """
    scheme_classes(scheme)
    out, counts = [], Counter()
    for d in dicts:
        anns = d.get("annotations", [])
        if not anns:
            counts["skipped_empty"] += 1
            continue
        if single and len(anns) > 1:
            counts["skipped_multi"] += 1
            continue
        largest = max(anns, key=_box_area)
        label = relabel(RGZ_CLASSES[largest["category_id"]], scheme)
        out.append({"image_id": d["image_id"], "label": label, "file_name": d["file_name"]})
    counts["kept"] = len(out)
    if counts["skipped_empty"] or counts["skipped_multi"]:
        logger.info(
            "RGZ classification subset: kept %d, skipped %d without boxes and %d with "
            "several galaxies",
            counts["kept"],
            counts["skipped_empty"],
            counts["skipped_multi"],
        )
    return out, {k: int(counts[k]) for k in ("kept", "skipped_empty", "skipped_multi")}


# --------------------------------------------------------------------------- catalogue
def read_rgz_catalogue(path: str | os.PathLike) -> list[dict]:
    """Rows of the RGZ DR1 catalogue (``full_catalogue.csv`` or its ``.tgz``) with an
    ``rgz_class`` key (None when the components/peaks fall outside the six classes).

    Rows keep the CSV's string values plus int ``num_cpnts`` and ``num_peaks``.
    """
    import csv
    import io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"RGZ catalogue {path} not found")
    if path.name.endswith((".tgz", ".tar.gz")):
        with tarfile.open(path) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith(".csv")), None)
            if member is None:
                raise ValueError(f"{path}: no .csv file inside the archive")
            text = tar.extractfile(member).read().decode()
    else:
        text = path.read_text()
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("num_cpnts", "num_peaks") if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    rows = []
    for row in reader:
        row["num_cpnts"] = int(row["num_cpnts"])
        row["num_peaks"] = int(row["num_peaks"])
        row["rgz_class"] = rgz_class_name(row["num_cpnts"], row["num_peaks"])
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- preparation
def prepare_rgz(
    *,
    annotations: str | os.PathLike,
    images: str | os.PathLike,
    out_dir: str | os.PathLike,
    overwrite: bool = False,
) -> dict:
    """Convert RGZ annotations to ``out_dir/annotations.json`` (COCO, six classes) and
    copy the images to ``out_dir/images/``.

    Images are found in ``images`` by their annotated file name (its base name as a
    fallback); images that cannot be found are skipped and counted.

    Args:
        annotations: COCO json file or folder of VOC XML files.
        images: folder holding the image files.
        out_dir: output folder; an existing non-empty one is refused unless ``overwrite``.
        overwrite: replace an existing output folder.

    Returns:
        counts ``images``, ``boxes``, ``missing_images``, ``per_class``.
    """
    from astrodet.data.coco import save_coco_json

    dicts = read_rgz_annotations(annotations)
    images = Path(images)
    if not images.is_dir():
        raise FileNotFoundError(f"image folder {images} not found")
    out_dir = prepare_output_dir(out_dir, overwrite=overwrite)
    img_out = out_dir / "images"
    img_out.mkdir(exist_ok=True)
    kept, missing = [], []
    for d in dicts:
        src = images / d["file_name"]
        if not src.is_file():
            src = images / Path(d["file_name"]).name
        if not src.is_file():
            missing.append(d["file_name"])
            continue
        shutil.copy2(src, img_out / src.name)
        kept.append({**d, "file_name": src.name})
    if missing:
        logger.warning(
            "%d of %d images not found in %s (first: %s); skipped",
            len(missing),
            len(dicts),
            images,
            missing[0],
        )
    per_class = Counter(RGZ_CLASSES[a["category_id"]] for d in kept for a in d["annotations"])
    summary = {
        "images": len(kept),
        "boxes": int(sum(per_class.values())),
        "missing_images": len(missing),
        "per_class": {c: int(per_class[c]) for c in RGZ_CLASSES},
    }
    save_coco_json(out_dir / "annotations.json", kept, RGZ_CLASSES)
    atomic_write_json(out_dir / "summary.json", summary)
    logger.info("RGZ written to %s: %s", out_dir, summary)
    return summary
