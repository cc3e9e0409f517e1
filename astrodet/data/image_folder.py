"""A classification set from a folder of class subfolders, for one's own images.

The layout of torchvision's ``ImageFolder``, with any image format :func:`read_image` reads
(FITS, NPY, PNG, JPEG, TIFF)::

    ROOT/train/<class>/*.fits    ROOT/test/<class>/*.fits   the splits as given
    ROOT/<class>/*.fits                                     a seeded, stratified 80/20 split

``register_image_folder(ROOT)`` registers ``<name>_train`` and ``<name>_test`` (name: the
folder's name) for the probes: ``python -m probe.linear --model dino --dataset ROOT``.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from .catalog import DatasetCatalog, MetadataCatalog
from .io import FITS_SUFFIXES, IMAGE_SUFFIXES, NPY_SUFFIXES, _suffix
from .real_sets import stratified_split

logger = logging.getLogger(__name__)

__all__ = ["TEST_FRACTION", "load_image_folder", "register_image_folder"]

SUFFIXES = FITS_SUFFIXES + NPY_SUFFIXES + IMAGE_SUFFIXES
# Share of each class held out as the test split when the folder has no train/ and test/.
TEST_FRACTION = 0.2


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan(folder: Path, class_names: list[str]) -> tuple[list[str], list[int]]:
    """Image files under ``folder/<class>/`` (searched recursively) and their labels;
    other files are counted and reported."""
    files, labels, skipped = [], [], []
    for label, name in enumerate(class_names):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        found = 0
        for path in sorted(class_dir.rglob("*")):
            if not path.is_file() or path.name.startswith("."):
                continue
            if _suffix(path) in SUFFIXES:
                files.append(str(path))
                labels.append(label)
                found += 1
            else:
                skipped.append(path)
        if not found:
            logger.warning("%s holds no images (%s)", class_dir, ", ".join(SUFFIXES))
    if skipped:
        logger.warning(
            "%s: skipped %d files that are not images, e.g. %s",
            folder,
            len(skipped),
            skipped[0].name,
        )
    return files, labels


def load_image_folder(
    root: str | os.PathLike, *, test_fraction: float = TEST_FRACTION, seed: int = 0
) -> tuple[dict[str, list[dict]], list[str]]:
    """Read a folder of class subfolders into train and test dataset dicts.

    Args:
        root: ``ROOT`` with ``train/<class>/`` and ``test/<class>/``, or ``<class>/`` only.
        test_fraction: share of each class held out when there are no train/ and test/.
        seed: seed of that split.

    Returns:
        ``({"train": dicts, "test": dicts}, class names)``; a dict holds ``file_name``,
        ``image_id`` and ``label`` (index into the class names, sorted).

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: no class subfolders, no images, or test classes the training split lacks.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    given = (root / "train").is_dir() and (root / "test").is_dir()
    base = root / "train" if given else root
    class_names = [p.name for p in _class_dirs(base)]
    if not class_names:
        raise ValueError(
            f"{base} has no class subfolders: expected {root}/<class>/<images> or "
            f"{root}/train/<class>/<images> and {root}/test/<class>/<images>"
        )
    if given:
        extra = sorted({p.name for p in _class_dirs(root / "test")} - set(class_names))
        if extra:
            raise ValueError(
                f"{root / 'test'} has classes the training split lacks: {', '.join(extra)}"
            )
        splits = {s: _scan(root / s, class_names) for s in ("train", "test")}
    else:
        files, labels = _scan(root, class_names)
        if len(set(labels)) < 2:
            raise ValueError(
                f"{root} needs images in two or more class subfolders, found {len(set(labels))}"
            )
        train, test = stratified_split(labels, test_fraction=test_fraction, seed=seed)
        splits = {
            "train": ([files[i] for i in train], [labels[i] for i in train]),
            "test": ([files[i] for i in test], [labels[i] for i in test]),
        }
        logger.info(
            "%s has no train/ and test/: %d images split %d / %d (%g of each class held out, "
            "seed %d)",
            root,
            len(files),
            len(train),
            len(test),
            test_fraction,
            seed,
        )
    out = {}
    for split, (files, labels) in splits.items():
        if not files:
            raise ValueError(f"{root}: the {split} split has no images ({', '.join(SUFFIXES)})")
        counts = np.bincount(labels, minlength=len(class_names))
        logger.info(
            "%s %s: %d images, %s",
            root.name,
            split,
            len(files),
            ", ".join(f"{n} {c}" for c, n in zip(class_names, counts, strict=True)),
        )
        out[split] = [
            {"file_name": f, "image_id": i, "label": int(y)}
            for i, (f, y) in enumerate(zip(files, labels, strict=True))
        ]
    return out, class_names


def _default_name(root: Path) -> str:
    name = re.sub(r"[^0-9A-Za-z_]+", "_", root.name).strip("_").lower()
    return name or "image_folder"


def register_image_folder(
    root: str | os.PathLike,
    name: str | None = None,
    *,
    stretch: str | None = "auto",
    test_fraction: float = TEST_FRACTION,
    seed: int = 0,
) -> str:
    """Register ``<name>_train`` and ``<name>_test`` from a folder of class subfolders.

    The folder is read once here (so that the class names are known); registering the same
    folder again returns the same name.

    Args:
        root: the folder (see :func:`load_image_folder`).
        name: data set name; default the folder's name in lower case.
        stretch: the set's default stretch; ``"auto"``: ``zscale`` when the training images
            include FITS or NPY files (raw fluxes), else none (already display images).
        test_fraction, seed: the split of a folder without train/ and test/.

    Returns:
        the registered name.

    Raises:
        ValueError: ``name`` is registered already for something else.
    """
    root = Path(root).expanduser().resolve()
    name = name or _default_name(root)
    if f"{name}_train" in DatasetCatalog.list():
        meta = MetadataCatalog.get(f"{name}_train")
        if getattr(meta, "image_root", None) == str(root):
            return name
        raise ValueError(
            f"dataset name {name!r} is taken (by {getattr(meta, 'image_root', 'a built-in set')});"
            " rename the folder or pass another name"
        )
    splits, class_names = load_image_folder(root, test_fraction=test_fraction, seed=seed)
    if stretch == "auto":
        raw = FITS_SUFFIXES + NPY_SUFFIXES
        stretch = (
            "zscale" if any(_suffix(Path(d["file_name"])) in raw for d in splits["train"]) else None
        )
    for split, dicts in splits.items():
        DatasetCatalog.register(f"{name}_{split}", lambda dicts=dicts: dicts)
        MetadataCatalog.get(f"{name}_{split}").set(
            thing_classes=list(class_names),
            task="classification",
            stretch=stretch,
            image_root=str(root),
        )
    logger.info("registered %s_train and %s_test from %s (stretch %s)", name, name, root, stretch)
    return name
