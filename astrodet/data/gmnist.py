"""GalaxyMNIST: 10,000 DECaLS galaxies, 64x64 RGB uint8, four classes (Walmsley et al. 2022).

Published layout (as the ``galaxy_mnist`` package writes it)::

    <root>/GalaxyMNIST/raw/train_dataset.hdf5   # 8000 images
    <root>/GalaxyMNIST/raw/test_dataset.hdf5    # 2000 images

each with datasets ``images`` (N x 64 x 64 x 3 uint8, NHWC) and ``labels`` (N, 0..3 for
:data:`GMNIST_CLASSES`). ``<root>`` defaults to ``datasets_root()/gmnist``.

:func:`download_gmnist` fetches the gzipped files from :data:`GMNIST_URLS`. The upstream
package publishes no checksum, so :data:`GMNIST_MD5` is empty by default and a file is
checked only when an md5 is given.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from astrodet.utils import datasets_root

logger = logging.getLogger(__name__)

__all__ = [
    "GMNIST_CLASSES",
    "GMNIST_MD5",
    "GMNIST_URLS",
    "download_gmnist",
    "gmnist_path",
    "load_gmnist",
    "read_gmnist_hdf5",
]

GMNIST_CLASSES = ["smooth_round", "smooth_cigar", "edge_on_disk", "unbarred_spiral"]
GMNIST_URLS = {
    "train": "https://dl.dropboxusercontent.com/s/5a14de0o7slyif9/train_dataset.hdf5.gz",
    "test": "https://dl.dropboxusercontent.com/s/5a14de0o7slyif9/test_dataset.hdf5.gz",
}
#: md5 of the decompressed ``.hdf5`` files; None: not verified (none is published).
GMNIST_MD5: dict[str, str | None] = {"train": None, "test": None}


def gmnist_path(split: str, *, root: str | os.PathLike | None = None) -> Path:
    """Path of a split's hdf5 file under ``root`` (default ``datasets_root()/gmnist``)."""
    if split not in ("train", "test"):
        raise ValueError(f"unknown GalaxyMNIST split {split!r}; choose 'train' or 'test'")
    root = Path(root) if root is not None else datasets_root() / "gmnist"
    return root / "GalaxyMNIST" / "raw" / f"{split}_dataset.hdf5"


def _missing_message(path: Path, split: str) -> str:
    return (
        f"GalaxyMNIST {split} file {path} not found. Put train_dataset.hdf5 and "
        f"test_dataset.hdf5 in {path.parent}/ (download {GMNIST_URLS[split]} and gunzip it, "
        "or call astrodet.data.gmnist.download_gmnist()); see datasets/README.md"
    )


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_gmnist_hdf5(path: str | os.PathLike, *, md5: str | None = None):
    """Images (N x 64 x 64 x 3 uint8) and labels (N int64) of one GalaxyMNIST file.

    Args:
        path: the ``.hdf5`` file.
        md5: expected md5 of the file; None skips the check.
    """
    import h5py

    path = Path(path)
    if md5 is not None and _md5(path) != md5:
        raise ValueError(f"{path}: md5 {_md5(path)} does not match the expected {md5}")
    try:
        with h5py.File(path, "r") as f:
            for key in ("images", "labels"):
                if key not in f:
                    raise ValueError(
                        f"{path}: no {key!r} dataset (found {sorted(f.keys())}); "
                        "not a GalaxyMNIST file"
                    )
            images = np.asarray(f["images"][:])
            labels = np.asarray(f["labels"][:]).astype(np.int64).reshape(-1)
    except OSError as e:
        raise ValueError(f"{path}: cannot be read as HDF5 ({e})") from None
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{path}: images have shape {images.shape}, expected N x H x W x 3")
    if len(images) != len(labels):
        raise ValueError(f"{path}: {len(images)} images but {len(labels)} labels")
    bad = (labels < 0) | (labels >= len(GMNIST_CLASSES))
    if bad.any():
        raise ValueError(
            f"{path}: {int(bad.sum())} labels outside 0..{len(GMNIST_CLASSES) - 1} "
            f"(first: {labels[bad][0]})"
        )
    return images.astype(np.uint8, copy=False), labels


def load_gmnist(split: str, *, root: str | os.PathLike | None = None) -> list[dict]:
    """Classification dicts ``{"image_id", "label", "image"}`` of a GalaxyMNIST split.

    ``image`` is float32 HWC in [0, 1] (the uint8 values / 255).

    Args:
        split: ``"train"`` or ``"test"``.
        root: folder holding ``GalaxyMNIST/raw``; default ``datasets_root()/gmnist``.
    """
    path = gmnist_path(split, root=root)
    if not path.is_file():
        raise FileNotFoundError(_missing_message(path, split))
    images, labels = read_gmnist_hdf5(path, md5=GMNIST_MD5.get(split))
    return [
        {"image_id": i, "label": int(lab), "image": images[i].astype(np.float32) / 255.0}
        for i, lab in enumerate(labels)
    ]


def download_gmnist(
    *,
    root: str | os.PathLike | None = None,
    splits: tuple[str, ...] = ("train", "test"),
    md5: dict[str, str | None] | None = None,
) -> list[Path]:
    """Download and unpack GalaxyMNIST into ``root/GalaxyMNIST/raw`` (network needed).

    Existing files are kept. Each file is written to a temporary name and renamed.

    Args:
        root: default ``datasets_root()/gmnist``.
        splits: which splits.
        md5: expected md5 per split of the unpacked file (default :data:`GMNIST_MD5`).
    """
    md5 = {**GMNIST_MD5, **(md5 or {})}
    paths = []
    for split in splits:
        path = gmnist_path(split, root=root)
        paths.append(path)
        if path.is_file():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        url = GMNIST_URLS[split]
        logger.info("downloading %s", url)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with urllib.request.urlopen(url) as resp, gzip.GzipFile(fileobj=resp) as gz:
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(gz, out)
            if md5.get(split) is not None and _md5(Path(tmp)) != md5[split]:
                raise ValueError(f"{url}: md5 mismatch, download refused")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return paths
