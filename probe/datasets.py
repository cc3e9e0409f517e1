"""Classification data sets for the probes: names, splits, labels and model inputs.

A probe data set ``NAME`` is a pair of registered catalog entries ``NAME_train`` and
``NAME_test`` whose metadata has ``task == "classification"``; each dict carries an integer
``label`` and either an ``image`` array or a ``file_name``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

__all__ = [
    "AUTO",
    "LABEL_SCHEMES",
    "ProbeSplit",
    "check_dataset",
    "check_model",
    "classification_datasets",
    "default_stretch",
    "is_unbalanced",
    "limit_indices",
    "load_split",
    "prepare_image",
    "resolve_stretch",
    "stack_images",
]

AUTO = "auto"
LABEL_SCHEMES = ("morphology", "peaks", "components")
# A set whose largest class is more than this many times its smallest is "unbalanced":
# its losses are weighted by inverse class frequency.
UNBALANCED_RATIO = 1.2


@dataclass
class ProbeSplit:
    """One split of a probe data set.

    Attributes:
        dataset: the data set name (without ``_train``/``_test``).
        split: ``"train"`` or ``"test"``.
        dicts: the catalog dicts, in a fixed order.
        labels: ``int64`` array of the labels (after any relabelling).
        class_names: the names of the classes ``0..K-1``.
    """

    dataset: str
    split: str
    dicts: list[dict]
    labels: np.ndarray
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _catalogs():
    from astrodet.data import DatasetCatalog, MetadataCatalog

    return DatasetCatalog, MetadataCatalog


def classification_datasets() -> list[str]:
    """Names of the registered classification data sets with a train and a test split."""
    DatasetCatalog, MetadataCatalog = _catalogs()
    names = set(DatasetCatalog.list())
    out = []
    for name in sorted(names):
        if not name.endswith("_train"):
            continue
        base = name[: -len("_train")]
        if f"{base}_test" not in names:
            continue
        if getattr(MetadataCatalog.get(name), "task", None) == "classification":
            out.append(base)
    return out


def check_dataset(name: str) -> str:
    """The registered name of a probe data set: ``name`` itself, or for a folder of class
    subfolders (see :mod:`astrodet.data.image_folder`) the name it is registered under.

    Raises:
        ValueError: neither; the message lists the valid names.
    """
    valid = classification_datasets()
    if name in valid:
        return name
    if os.path.isdir(os.path.expanduser(name)):
        from astrodet.data.image_folder import register_image_folder

        return register_image_folder(name)
    raise ValueError(
        f"unknown dataset {name!r}; valid datasets: {', '.join(valid)}, or a folder of class "
        "subfolders (ROOT/<class>/<images> or ROOT/{train,test}/<class>/<images>)"
    )


def check_model(name: str) -> str:
    """Return ``name`` if the zoo knows it, else raise ValueError listing the valid names."""
    from astrodet.zoo import get_model_info, list_models

    try:
        get_model_info(name)
    except (ValueError, KeyError) as e:
        raise ValueError(
            f"unknown model {name!r}; valid models: {', '.join(list_models())} (or timm:<name>)"
        ) from e
    return name


def default_stretch(dataset: str) -> str | None:
    """The stretch the data set's metadata names (None: images are already in [0, 1])."""
    _, MetadataCatalog = _catalogs()
    return getattr(MetadataCatalog.get(f"{dataset}_train"), "stretch", None)


def resolve_stretch(dataset: str, stretch: str | None) -> str | None:
    """``"auto"`` -> the data set's default; ``"none"`` -> None; any other name unchanged."""
    if stretch == AUTO:
        return default_stretch(dataset)
    if stretch is None or str(stretch).lower() == "none":
        return None
    return stretch


def is_unbalanced(labels, num_classes: int) -> bool:
    """True when the class counts of ``labels`` differ by more than ``UNBALANCED_RATIO``."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    counts = counts[counts > 0]
    return bool(counts.size and counts.max() > UNBALANCED_RATIO * counts.min())


def limit_indices(labels, limit: int | None) -> np.ndarray:
    """A fixed (seed 0), class-interleaved choice of ``limit`` indices: every class appears
    once ``limit`` reaches the number of classes. ``None`` keeps all, in order."""
    labels = np.asarray(labels)
    if limit is None or limit >= len(labels):
        return np.arange(len(labels))
    if limit <= 0:
        raise ValueError(f"limit must be positive, got {limit}")
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(labels))
    # rank of each image within its class, in the permuted order: take rank 0 of every
    # class first, then rank 1, ...
    rank = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = perm[labels[perm] == c]
        rank[members] = np.arange(len(members))
    order = perm[np.argsort(rank[perm], kind="stable")]
    return np.sort(order[:limit])


def _relabel(name: str, labels: np.ndarray, class_names: list[str], scheme: str | None):
    """Apply an RGZ label scheme to labels that index the six RGZ classes."""
    if scheme is None:
        return labels, class_names
    if scheme not in LABEL_SCHEMES:
        raise ValueError(f"unknown label scheme {scheme!r}; valid: {', '.join(LABEL_SCHEMES)}")
    from astrodet.data import rgz

    if list(class_names) != list(rgz.RGZ_CLASSES):
        raise ValueError(
            f"--label-scheme applies to RGZ sets (classes {rgz.RGZ_CLASSES}); "
            f"dataset {name!r} has classes {class_names}"
        )
    new = np.asarray([rgz.relabel(class_names[i], scheme) for i in labels], dtype=np.int64)
    return new, rgz.scheme_classes(scheme)


def load_split(
    dataset: str, split: str, *, label_scheme: str | None = None, limit: int | None = None
) -> ProbeSplit:
    """Load one split of a probe data set.

    Args:
        dataset: data set name, e.g. ``"first_radio_galaxy"``.
        split: ``"train"`` or ``"test"``.
        label_scheme: RGZ relabelling (``morphology``, ``peaks``, ``components``) or None.
        limit: keep a fixed class-interleaved subset of this many images (tests, smoke runs).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    dataset = check_dataset(dataset)
    DatasetCatalog, MetadataCatalog = _catalogs()
    name = f"{dataset}_{split}"
    dicts = list(DatasetCatalog.get(name))
    if not dicts:
        raise ValueError(f"dataset {name!r} is empty")
    missing = [i for i, d in enumerate(dicts) if "label" not in d]
    if missing:
        raise ValueError(f"dataset {name!r}: {len(missing)} dicts have no 'label' key")
    labels = np.asarray([int(d["label"]) for d in dicts], dtype=np.int64)
    class_names = list(getattr(MetadataCatalog.get(name), "thing_classes", None) or [])
    if not class_names:
        class_names = [str(i) for i in range(int(labels.max()) + 1)]
    labels, class_names = _relabel(name, labels, class_names, label_scheme)
    if labels.min() < 0 or labels.max() >= len(class_names):
        raise ValueError(
            f"dataset {name!r}: labels span [{labels.min()}, {labels.max()}] but there are "
            f"{len(class_names)} class names"
        )
    keep = limit_indices(labels, limit)
    return ProbeSplit(
        dataset=dataset,
        split=split,
        dicts=[dicts[i] for i in keep],
        labels=labels[keep],
        class_names=class_names,
    )


def prepare_image(
    d: dict,
    *,
    stretch: str | None,
    image_size: int,
    center_crop: int | None = None,
    grey_one_channel: bool = False,
    resize: int | None = None,
) -> torch.Tensor:
    """Turn one dataset dict into a model input: CHW float32 in [0, 1], ``image_size`` square.

    The raw image goes through ``astrodet.data.to_rgb`` (the stretch), an optional centred
    crop of ``center_crop`` native pixels, then a resize: bicubic when enlarging (the paper
    upscales GMNIST 64 -> 224 and RGZ 132 -> 224), antialiased bilinear when shrinking.
    With ``resize``, the shorter side is first resized to ``resize`` pixels (same rule) and
    ``center_crop`` counts resized pixels: ``resize=256, center_crop=224`` is the resize-then-
    crop of DINOv2's Hugging Face image processor.
    With ``grey_one_channel``, a grey image keeps one channel (the trunk replicates it),
    which saves memory where a whole set is held in memory.
    """
    from astrodet.data import load_dict_image, to_rgb

    image = to_rgb(load_dict_image(d), stretch=stretch)
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
    if grey_one_channel and x.shape[0] == 3 and torch.equal(x[0], x[1]) and torch.equal(x[1], x[2]):
        x = x[:1]
    if resize is not None:
        h, w = x.shape[-2:]
        scale = resize / min(h, w)
        x = _resize(x, (max(1, round(h * scale)), max(1, round(w * scale))))
    if center_crop is not None:
        h, w = x.shape[-2:]
        c = min(center_crop, h, w)
        top, left = (h - c) // 2, (w - c) // 2
        x = x[:, top : top + c, left : left + c]
    return _resize(x, (image_size, image_size)).contiguous()


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """CHW to ``size``: bicubic when enlarging, antialiased bilinear when shrinking."""
    h, w = x.shape[-2:]
    if (h, w) == tuple(size):
        return x
    up = max(size) > max(h, w)
    return F.interpolate(
        x[None],
        size=size,
        mode="bicubic" if up else "bilinear",
        align_corners=False,
        antialias=not up,
    )[0].clamp_(0.0, 1.0)


def stack_images(images: list[torch.Tensor]) -> torch.Tensor:
    """Stack CHW images into NCHW, widening one-channel images to three where they mix."""
    if len({x.shape[0] for x in images}) > 1:
        images = [x.expand(3, -1, -1) if x.shape[0] == 1 else x for x in images]
    return torch.stack(images)
