"""Loaders of the small real classification sets in ``real_data_root()``.

Every loader returns classification dicts ``{"image_id", "label"}`` plus either
``"file_name"`` (PNG sets, read by :func:`astrodet.data.io.load_dict_image`) or ``"image"``
(HWC float32: uint8 sets scaled to [0, 1], float sets in their raw Jy/beam). Archives are
read in memory (they are small), so the real data folder may be read-only.

==================== ================================= ===================== ===========
name                 files                             classes               split
==================== ================================= ===================== ===========
first_radio_galaxy   galaxy_data/{train,valid,test}    FRI FRII Compact Bent official
mirabest             batches.tar.gz (CIFAR pickles)    FRI FRII              test_batch
frdeep_first/_nvss   {FIRST,NVSS}_PNG_dataset.tar.gz   FRI FRII              test_batch
decals_rings         images_64/*.png, labels_64.csv    no_ring ring          seeded 80/20
rgz_first            npz + labels.csv                  the six RGZ classes   seeded 80/20
==================== ================================= ===================== ===========

Sets without an official split get a fixed, seeded split stratified by class: the test
split is 20 % of each class (at least one image), drawn with ``numpy.random.default_rng(0)``
(:func:`stratified_split`). MiraBest holds blank images (no pixel above
``BLANK_MAX`` = 2 of 255: 9 in MiraBest's training batches, 1 in FR-DEEP FIRST); they are
skipped, counted and reported.
"""

from __future__ import annotations

import csv
import functools
import logging
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np

from astrodet.data.rgz import RGZ_CLASSES
from astrodet.utils import real_data_root

logger = logging.getLogger(__name__)

__all__ = [
    "BLANK_MAX",
    "count_blank",
    "REAL_SETS",
    "load_cifar_tar",
    "load_decals_rings",
    "load_first_radio_galaxy",
    "load_frdeep",
    "load_mirabest",
    "load_rgz_first",
    "stratified_split",
]

#: An 8-bit image whose brightest pixel is at most this value is blank.
BLANK_MAX = 2
FIRST_CLASSES = ["FRI", "FRII", "Compact", "Bent"]
FR_CLASSES = ["FRI", "FRII"]
RING_CLASSES = ["no_ring", "ring"]

#: name -> (thing_classes, default stretch, splits)
REAL_SETS = {
    "first_radio_galaxy": (FIRST_CLASSES, None, ("train", "valid", "test")),
    "mirabest": (FR_CLASSES, None, ("train", "test")),
    "frdeep_first": (FR_CLASSES, None, ("train", "test")),
    "frdeep_nvss": (FR_CLASSES, None, ("train", "test")),
    "decals_rings": (RING_CLASSES, None, ("train", "test")),
    "rgz_first": (list(RGZ_CLASSES), "zscale", ("train", "test")),
}


def _root(root, sub):
    root = Path(root) if root is not None else real_data_root()
    folder = root / sub
    if not folder.exists():
        raise FileNotFoundError(
            f"{folder} not found; set ASTRODET_REAL_DATA to the real data folder "
            "(see datasets/README.md)"
        )
    return folder


def _check_split(split, allowed=("train", "test")):
    if split not in allowed:
        raise ValueError(f"unknown split {split!r}; choose one of {list(allowed)}")


def stratified_split(labels, *, test_fraction: float = 0.2, seed: int = 0):
    """A fixed, seeded train/test split stratified by class.

    Each class gives ``round(test_fraction * n)`` images (at least one when it has two or
    more) to the test split.

    Returns:
        (train indices, test indices), sorted.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        n = int(round(test_fraction * len(idx)))
        if len(idx) >= 2:
            n = min(max(n, 1), len(idx) - 1)
        test.extend(rng.permutation(idx)[:n].tolist())
    test = np.sort(np.asarray(test, dtype=np.int64))
    train = np.setdiff1d(np.arange(len(labels)), test)
    return train, test


def _image_dicts(images, labels, *, scale=None):
    out = []
    for i, (img, lab) in enumerate(zip(images, labels)):
        img = np.asarray(img, dtype=np.float32)
        if scale is not None:
            img = img / scale
        if img.ndim == 2:
            img = img[..., None]
        out.append({"image_id": i, "label": int(lab), "image": img})
    return out


# --------------------------------------------------------------------------- FIRST PNGs
def load_first_radio_galaxy(split: str, *, root: str | os.PathLike | None = None) -> list[dict]:
    """FIRST radio galaxies (Griese et al. 2023): 300x300 grey PNGs in class folders.

    Args:
        split: ``"train"``, ``"valid"`` or ``"test"``.
        root: the real data folder (default ``real_data_root()``).
    """
    _check_split(split, ("train", "valid", "test"))
    folder = _root(root, "first_radio_galaxy/galaxy_data") / split
    out = []
    for label, cls in enumerate(FIRST_CLASSES):
        d = folder / cls
        if not d.is_dir():
            raise FileNotFoundError(f"class folder {d} not found")
        for path in sorted(d.glob("*.png")):
            out.append({"image_id": len(out), "label": label, "file_name": str(path)})
    if not out:
        raise ValueError(f"no PNG images in {folder}")
    return out


# --------------------------------------------------------------------------- CIFAR pickles
@functools.lru_cache(maxsize=8)
def load_cifar_tar(path: str) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    """Read a CIFAR-style tarball (``data_batch_*``, ``test_batch``) in memory.

    Returns:
        ``{"train": (images N x H x W uint8, labels, filenames), "test": (...)}``; square
        images are assumed for flat rows.
    """
    parts: dict[str, list] = {"train": [], "test": []}
    try:
        tar = tarfile.open(path)
    except (OSError, tarfile.TarError) as e:
        raise ValueError(f"{path}: cannot open as a tar archive ({e})") from None
    with tar:
        members = sorted(
            (m for m in tar.getmembers() if m.isfile()), key=lambda m: _batch_key(m.name)
        )
        for m in members:
            base = os.path.basename(m.name)
            if base.startswith("data_batch"):
                split = "train"
            elif base.startswith("test_batch"):
                split = "test"
            else:
                continue
            try:
                batch = pickle.load(tar.extractfile(m), encoding="latin1")
                data, labels = np.asarray(batch["data"]), list(batch["labels"])
            except Exception as e:  # a broken member must name itself
                raise ValueError(f"{path}: member {m.name} is not a CIFAR batch ({e})") from None
            if data.ndim == 2:
                side = int(round(np.sqrt(data.shape[1])))
                if side * side != data.shape[1]:
                    raise ValueError(f"{path}: {m.name} rows of {data.shape[1]} are not square")
                data = data.reshape(len(data), side, side)
            names = [str(f) for f in batch.get("filenames", [""] * len(labels))]
            parts[split].append((data.astype(np.uint8), np.asarray(labels, np.int64), names))
    out = {}
    for split, chunks in parts.items():
        if not chunks:
            raise ValueError(f"{path}: no {'data_batch_*' if split == 'train' else 'test_batch'}")
        out[split] = (
            np.concatenate([c[0] for c in chunks]),
            np.concatenate([c[1] for c in chunks]),
            [n for c in chunks for n in c[2]],
        )
    return out


def _batch_key(name):
    base = os.path.basename(name)
    tail = base.rsplit("_", 1)[-1]
    return (base.split("_")[0], int(tail) if tail.isdigit() else 0, base)


def _cifar_dicts(path: Path, split: str, *, skip_blank: bool, name: str):
    _check_split(split)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; set ASTRODET_REAL_DATA (datasets/README.md)")
    images, labels, _ = load_cifar_tar(str(path))[split]
    if skip_blank:
        blank = images.reshape(len(images), -1).max(1) <= BLANK_MAX
        if blank.any():
            logger.info("%s %s: skipped %d blank images", name, split, int(blank.sum()))
        images, labels = images[~blank], labels[~blank]
    return _image_dicts(images, labels, scale=255.0)


def count_blank(path: str | os.PathLike) -> dict[str, int]:
    """Blank images per split of a CIFAR-style tarball."""
    return {
        split: int((imgs.reshape(len(imgs), -1).max(1) <= BLANK_MAX).sum())
        for split, (imgs, _, _) in load_cifar_tar(str(path)).items()
    }


def load_mirabest(
    split: str, *, root: str | os.PathLike | None = None, skip_blank: bool = True
) -> list[dict]:
    """MiraBest confident FRI/FRII (150x150 uint8); blank images skipped and counted."""
    _check_split(split)
    path = _root(root, "mirabest") / "batches.tar.gz"
    return _cifar_dicts(path, split, skip_blank=skip_blank, name="mirabest")


def load_frdeep(
    split: str, *, survey: str = "FIRST", root: str | os.PathLike | None = None
) -> list[dict]:
    """FR-DEEP FRI/FRII seen by FIRST or NVSS (150x150 uint8); blank images skipped and
    counted."""
    _check_split(split)
    if survey not in ("FIRST", "NVSS"):
        raise ValueError(f"survey must be 'FIRST' or 'NVSS', got {survey!r}")
    path = _root(root, "frdeep") / f"{survey}_PNG_dataset.tar.gz"
    return _cifar_dicts(path, split, skip_blank=True, name=f"frdeep_{survey.lower()}")


# --------------------------------------------------------------------------- DECaLS rings
def load_decals_rings(
    split: str, *, root: str | os.PathLike | None = None, seed: int = 0
) -> list[dict]:
    """DECaLS ring galaxies (64x64 RGB PNG), ring 0/1, with the seeded stratified split."""
    _check_split(split)
    folder = _root(root, "decals_rings")
    csv_path = folder / "labels_64.csv"
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("png_64", "ring") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{csv_path}: missing columns {missing}")
        rows = list(reader)
    labels = []
    for line, r in enumerate(rows, start=2):
        if r["ring"] not in ("0", "1"):
            raise ValueError(f"{csv_path}, line {line}: ring must be 0 or 1, got {r['ring']!r}")
        labels.append(int(r["ring"]))
    train, test = stratified_split(labels, seed=seed)
    idx = train if split == "train" else test
    return [
        {"image_id": int(i), "label": labels[i], "file_name": str(folder / rows[i]["png_64"])}
        for i in idx
    ]


# --------------------------------------------------------------------------- RGZ x FIRST
def load_rgz_first(
    split: str, *, root: str | os.PathLike | None = None, seed: int = 0
) -> list[dict]:
    """FIRST cutouts (100x100 float32 Jy/beam) of RGZ DR1 sources, six classes, with the
    seeded stratified split."""
    _check_split(split)
    folder = _root(root, "rgz_first")
    csv_path = folder / "labels.csv"
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    labels = []
    for line, r in enumerate(rows, start=2):
        name = r.get("rgz_class")
        if name not in RGZ_CLASSES:
            raise ValueError(f"{csv_path}, line {line}: unknown rgz_class {name!r}")
        labels.append(RGZ_CLASSES.index(name))
    # only the float image array is read: no pickled objects are loaded
    with np.load(folder / "first_cutouts_100px_1p8arcsec.npz", allow_pickle=False) as z:
        images = z["images"]
    if len(images) != len(labels):
        raise ValueError(f"{folder}: {len(images)} images but {len(labels)} rows in labels.csv")
    bad = ~np.isfinite(images)
    if bad.any():
        logger.info("rgz_first: replaced %d NaN/inf pixels by 0", int(bad.sum()))
        images = np.where(bad, 0.0, images)
    train, test = stratified_split(labels, seed=seed)
    idx = train if split == "train" else test
    return [
        {"image_id": int(i), "label": labels[i], "image": images[i][..., None].astype(np.float32)}
        for i in idx
    ]
