"""Frozen features of a zoo trunk on a probe data set, cached on disk.

``python -m probe.features --model dino --dataset gmnist`` extracts the trunk's probe
feature (``Trunk.features``: CLS token, mean of patch tokens or average pool) for the
train and test splits and stores them in the feature cache, where ``probe.linear`` and
``probe.umap`` find them.

Cache: ``--cache-dir``, else ``$ASTRODET_CACHE``, else ``datasets_root()/cache`` (by default
``datasets/cache``, ignored by git like the data); files live under
``<cache>/features/<model>/<dataset>/``.
A file is keyed by the model, its weights (sha256 of the checkpoint file, ``none``, or the
hub id), the model kwargs and feature kind, the data set (its split, label scheme, subset
and a fingerprint of its entries), the preprocessing (image size, stretch, crop) and the
precision of the forward pass. A run with the same key reads the file; a changed key
computes a new one; a file that cannot be read, has the wrong shape or fails its checksum is
reported and recomputed.

Decoded images: the stretched and resized images of a split are kept too, as one float16
``.npy`` array under ``<cache>/decoded/<dataset>/`` (one channel for grey images), keyed by
the entries and the preprocessing but not the model: the next model, or the next run,
reads them from the page cache instead of decoding PNG/FITS files again. Features are
always computed from these float16 images when the cache is on, so a first and a later run
give the same features.

Precision: ``--precision auto`` runs the trunk in bfloat16 autocast on a GPU that computes
it in hardware and in float32 elsewhere; ``bf16``/``fp16``/``fp32`` ask for one. On a GPU the
images come through pinned memory and non-blocking copies, ResNets run channels-last.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from astrodet.utils import atomic_write_bytes, atomic_write_json, datasets_root
from astrodet.utils.precision import PRECISIONS, autocast, resolve_precision

from .datasets import (
    AUTO,
    LABEL_SCHEMES,
    ProbeSplit,
    check_dataset,
    check_model,
    load_split,
    prepare_image,
    resolve_stretch,
    stack_images,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CACHE_VERSION",
    "add_feature_args",
    "cache_root",
    "extract_features",
    "extract_splits",
    "feature_options",
    "main",
    "resolve_device",
]

# Raised whenever the preprocessing changes what a key's features are (2: zscale falls back
# to the full range when its limits collapse).
CACHE_VERSION = 2
# The decoded-image arrays: their layout and dtype (float16 keeps [0, 1] to 2e-4 or better,
# far below what bfloat16 autocast rounds away; half the size of float32).
DECODED_VERSION = 1
DECODED_DTYPE = np.float16
_HASHES: dict[tuple, str] = {}


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The feature cache folder: ``cache_dir``, ``$ASTRODET_CACHE`` or ``datasets_root()/cache``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("ASTRODET_CACHE")
    if env:
        return Path(env).expanduser()
    return datasets_root().expanduser() / "cache"


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if str(device) == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, remembered per (path, size, mtime) within the process."""
    path = Path(path)
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASHES[memo] = h.hexdigest()
    return _HASHES[memo]


def _weights_id(source: str) -> str:
    """Cache identity of a weights source: ``none``, ``hub:...`` or ``sha256:<file hash>``."""
    source = str(source)
    if source == "none" or not Path(source).is_file():
        return source
    return "sha256:" + file_sha256(source)


def _fingerprint(split: ProbeSplit) -> str:
    """A hash of the split's entries: ids, labels, file names with their size and
    modification time (a file rewritten in place is a new entry), and pixels held in memory."""
    h = hashlib.sha256()
    for d, label in zip(split.dicts, split.labels):
        name = d.get("file_name", "")
        h.update(f"{d.get('image_id')}|{int(label)}|{name}|".encode())
        if name:
            try:
                st = os.stat(name)
                h.update(f"{st.st_size}|{st.st_mtime_ns}|".encode())
            except OSError:
                pass  # reading the image reports it
        if "image" in d:
            image = np.ascontiguousarray(d["image"])
            h.update(f"{image.shape}{image.dtype}".encode())
            h.update(image.tobytes())
    return h.hexdigest()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class _TrunkHolder:
    """Builds the trunk at most once, and only when a split is not cached."""

    def __init__(self, model: str, weights: str, feature: str | None, model_kwargs: dict):
        self.model, self.weights, self.feature, self.model_kwargs = (
            model,
            weights,
            feature,
            model_kwargs,
        )
        self._trunk = None

    def get(self):
        if self._trunk is None:
            from astrodet.zoo import build_trunk

            self._trunk = build_trunk(
                self.model, weights=self.weights, feature=self.feature, **self.model_kwargs
            )
        return self._trunk

    def weights_id(self) -> str:
        w = str(self.weights)
        if w == "none":
            return "none"
        hub_id = w.partition(":")[0] in ("hf", "timm", "torchvision") and not Path(w).exists()
        if w not in (AUTO, "hub") and not hub_id:
            if not Path(w).is_file():
                raise FileNotFoundError(f"weights file {w} not found")
            return "sha256:" + file_sha256(w)
        return _weights_id(self.get().weights_source)


def _effective_kwargs(model: str, image_size: int, model_kwargs: dict | None) -> dict:
    from astrodet.zoo import get_model_info

    kwargs = dict(model_kwargs or {})
    info = get_model_info(model)
    # A timm ViT is built for one input size; build it for the size the images have.
    if info.family == "vit" and "img_size" not in kwargs and image_size != info.input_size:
        kwargs["img_size"] = image_size
    return kwargs


def _check_sizes(*, image_size: int, resize: int | None, center_crop: int | None) -> None:
    for name, value in (
        ("image_size", image_size),
        ("resize", resize),
        ("center_crop", center_crop),
    ):
        if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
            raise ValueError(f"{name} must be a positive number of pixels, got {value!r}")
    if resize is not None and center_crop is not None and center_crop > resize:
        raise ValueError(
            f"center_crop={center_crop} is larger than the resized image (resize={resize})"
        )


def _load_cached(path: Path, key: dict, labels: np.ndarray) -> tuple[np.ndarray, str | None]:
    """Read a cache file; returns (features, None) or (None, reason it is unusable)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            features, cached_labels = z["features"], z["labels"]
            meta = json.loads(bytes(z["meta"]).decode("utf-8"))
    except Exception as e:  # any unreadable file is a cache miss, reported below
        return None, f"unreadable ({type(e).__name__}: {e})"
    if meta.get("key") != key:
        return None, "its key differs from the file name's"
    if features.dtype != np.float32 or features.ndim != 2:
        return None, f"features have dtype {features.dtype} and {features.ndim} dimensions"
    if features.shape != (len(labels), meta.get("feature_dim")):
        return None, (
            f"features have shape {features.shape}, expected "
            f"({len(labels)}, {meta.get('feature_dim')})"
        )
    if not np.array_equal(cached_labels, labels):
        return None, "its labels differ from the data set's"
    if meta.get("sha256") != _checksum(features, cached_labels):
        return None, "checksum mismatch"
    if not np.isfinite(features).all():
        return None, "non-finite features"
    return features, None


def _checksum(features: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.sha256(np.ascontiguousarray(features).tobytes())
    h.update(np.ascontiguousarray(labels).tobytes())
    return h.hexdigest()


def _save_cache(path: Path, key: dict, features: np.ndarray, labels: np.ndarray) -> None:
    meta = {
        "key": key,
        "feature_dim": int(features.shape[1]),
        "sha256": _checksum(features, labels),
    }
    buf = io.BytesIO()
    np.savez(
        buf,
        features=features,
        labels=labels,
        meta=np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8),
    )
    atomic_write_bytes(path, buf.getvalue())


class _Images(torch.utils.data.Dataset):
    def __init__(self, dicts, **prep):
        self.dicts, self.prep = dicts, prep

    def __len__(self):
        return len(self.dicts)

    def __getitem__(self, i):
        return prepare_image(self.dicts[i], **self.prep)


def _stack_half(images: list[torch.Tensor]) -> torch.Tensor:
    """Batch in the decoded cache's dtype, in the worker (so the loader pins the small copy)."""
    return stack_images(images).to(torch.float16)


def _loader(split: ProbeSplit, prep: dict, *, batch_size, num_workers, device, half):
    cuda = device.type == "cuda"
    options: dict[str, Any] = {}
    if num_workers > 0 and cuda:
        # workers stay up between splits' batches and keep a few batches ready each
        options.update(persistent_workers=True, prefetch_factor=4)
    return torch.utils.data.DataLoader(
        _Images(split.dicts, **prep),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_stack_half if half else stack_images,
        pin_memory=cuda,
        **options,
    )


def _decoded_key(
    dataset: str, split: ProbeSplit, split_name: str, limit, prep: dict, fingerprint: str
) -> dict:
    # labels are in the fingerprint too: a relabelled split decodes once more, which is rare
    return {
        "version": DECODED_VERSION,
        "dtype": np.dtype(DECODED_DTYPE).name,
        "dataset": dataset,
        "split": split_name,
        "limit": limit,
        "n": len(split.dicts),
        "fingerprint": fingerprint,
        **prep,
    }


def _decoded_path(cache_dir, dataset: str, split_name: str, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return cache_root(cache_dir) / "decoded" / _safe(dataset) / f"{split_name}-{digest}.npy"


def _open_decoded(path: Path, key: dict) -> tuple[np.ndarray | None, str | None]:
    """The decoded images of ``path`` as a read-only memory map, or (None, why not)."""
    meta_path = path.with_suffix(".json")
    if not path.exists() or not meta_path.exists():
        return None, None
    try:
        meta = json.loads(meta_path.read_text())
        images = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # any unreadable file is a miss, reported by the caller
        return None, f"unreadable ({type(e).__name__}: {e})"
    if meta.get("key") != key:
        return None, "its key differs from the file name's"
    if images.dtype != DECODED_DTYPE or images.ndim != 4 or len(images) != key["n"]:
        return None, f"it holds {images.dtype} images of shape {images.shape}"
    if list(images.shape) != meta.get("shape"):
        return None, f"its shape {images.shape} is not the recorded {meta.get('shape')}"
    return images, None


class _DecodedWriter:
    """Writes a split's decoded images batch by batch into a temporary ``.npy`` beside
    ``path`` and renames it into place once complete (with its key beside it)."""

    def __init__(self, path: Path, key: dict):
        self.path, self.key = path, key
        self.array: np.ndarray | None = None
        self.tmp: str | None = None
        self.offset = 0
        self.failed: str | None = None

    def write(self, batch: torch.Tensor) -> None:
        if self.failed:
            return
        if self.array is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, self.tmp = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
            )
            os.close(fd)
            shape = (self.key["n"], *batch.shape[1:])
            self.array = np.lib.format.open_memmap(
                self.tmp, mode="w+", dtype=DECODED_DTYPE, shape=shape
            )
        channels = self.array.shape[1]
        if batch.shape[1] != channels:
            if channels == 3 and batch.shape[1] == 1:
                batch = batch.expand(-1, 3, -1, -1)
            else:  # grey first, colour later: the layout no longer fits; not cached
                self.abandon(f"images change from {channels} to {batch.shape[1]} channels")
                return
        self.array[self.offset : self.offset + len(batch)] = batch.numpy()
        self.offset += len(batch)

    def close(self) -> bool:
        """Rename the complete file into place; returns whether it was written."""
        if self.failed or self.array is None:
            return False
        if self.offset != self.key["n"]:
            self.abandon(f"{self.offset} of {self.key['n']} images written")
            return False
        self.array.flush()
        shape = list(self.array.shape)
        self.array = None
        os.replace(self.tmp, self.path)
        atomic_write_json(self.path.with_suffix(".json"), {"key": self.key, "shape": shape})
        return True

    def abandon(self, reason: str) -> None:
        self.failed = reason
        self.array = None
        if self.tmp and os.path.exists(self.tmp):
            os.unlink(self.tmp)
        logger.warning("decoded images of %s not cached: %s", self.path.name, reason)


def _memmap_batches(images: np.ndarray, batch_size: int, pin: bool):
    """Batches of a memory-mapped array; the next one is read (and pinned) by a thread
    while the current one is on the device."""

    def load(i):
        batch = torch.from_numpy(np.array(images[i : i + batch_size]))
        return batch.pin_memory() if pin else batch

    starts = range(0, len(images), batch_size)
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(load, 0) if len(starts) else None
        for k in range(len(starts)):
            batch = future.result()
            if k + 1 < len(starts):
                future = pool.submit(load, starts[k + 1])
            yield batch


def _uses_channels_last(trunk) -> bool:
    # convolutions in bf16/fp16 on a GPU run fastest on NHWC; a ViT's patch embedding is
    # one conv and then matrix products, which do not care
    return getattr(getattr(trunk, "info", None), "family", None) == "resnet"


def _compute(trunk, batches, *, device, precision, n_batches=None, desc):
    """Features of a stream of CPU image batches: non-blocking copies to ``device``, the
    trunk under ``precision`` autocast, the features kept on the device and brought to the
    host once."""
    trunk = trunk.to(device).eval()
    channels_last = device.type == "cuda" and _uses_channels_last(trunk)
    if channels_last:
        trunk = trunk.to(memory_format=torch.channels_last)
    out = []
    with torch.inference_mode(), autocast(precision, device):
        for batch in tqdm(batches, total=n_batches, desc=desc, unit="batch", leave=False):
            x = batch.to(device, non_blocking=True)
            if channels_last and x.shape[1] == 3:
                x = x.contiguous(memory_format=torch.channels_last)
            out.append(trunk.features(x))
    features = torch.cat(out).float().cpu().numpy() if out else np.zeros((0, 0), np.float32)
    features = features.astype(np.float32, copy=False)
    if not np.isfinite(features).all():
        raise RuntimeError(f"{desc}: the trunk returned non-finite features")
    return features


def _split_images(
    split: ProbeSplit,
    *,
    prep: dict,
    batch_size: int,
    num_workers: int,
    device: torch.device,
    decoded: tuple[Path, dict] | None,
):
    """(batches, number of batches) of a split's model inputs: from the decoded cache when
    it holds them, else decoded now (and written to it when ``decoded`` is given)."""
    n_batches = -(-len(split.dicts) // batch_size)
    if decoded is None:
        loader = _loader(
            split, prep, batch_size=batch_size, num_workers=num_workers, device=device, half=False
        )
        return loader, n_batches
    path, key = decoded
    images, problem = _open_decoded(path, key)
    if images is not None:
        logger.info("read decoded images %s %s", path, images.shape)
        return _memmap_batches(images, batch_size, device.type == "cuda"), n_batches
    if problem:
        logger.warning("decoded image file %s is corrupted: %s; decoding again", path, problem)
    loader = _loader(
        split,
        {**prep, "grey_one_channel": True},
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        half=True,
    )
    writer = _DecodedWriter(path, key)

    def write_through():
        try:
            for batch in loader:
                writer.write(batch)
                yield batch
        except BaseException:
            writer.abandon("interrupted")
            raise
        if writer.close():
            logger.info("wrote decoded images %s", path)

    return write_through(), n_batches


def extract_splits(
    *,
    model: str,
    dataset: str,
    splits: tuple[str, ...] = ("train", "test"),
    weights: str = AUTO,
    image_size: int = 224,
    stretch: str | None = AUTO,
    feature: str | None = None,
    batch_size: int = 64,
    device: str = AUTO,
    cache_dir: str | os.PathLike | None = None,
    model_kwargs: dict | None = None,
    label_scheme: str | None = None,
    limit: int | None = None,
    center_crop: int | None = None,
    num_workers: int = 0,
    use_cache: bool = True,
    resize: int | None = None,
    precision: str = AUTO,
    decoded_cache: bool = True,
    compile: bool = False,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Features of several splits, building the trunk at most once.

    Same arguments as :func:`extract_features`, with ``splits`` instead of ``split``.

    Returns:
        ``{split: (features float32 (N, D), labels int64 (N,))}``.
    """
    check_model(model)
    dataset = check_dataset(dataset)
    stretch = resolve_stretch(dataset, stretch)
    kwargs = _effective_kwargs(model, image_size, model_kwargs)
    holder = _TrunkHolder(model, weights, feature, kwargs)
    weights_id = holder.weights_id()
    _check_sizes(image_size=image_size, resize=resize, center_crop=center_crop)
    prep = {"stretch": stretch, "image_size": int(image_size), "center_crop": center_crop}
    if resize is not None:  # only then in the cache key, so earlier caches stay valid
        prep["resize"] = int(resize)
    dev = resolve_device(device)
    precision = resolve_precision(precision, device=dev)
    decoded_on = bool(use_cache and decoded_cache)
    out = {}
    for split_name in splits:
        split = load_split(dataset, split_name, label_scheme=label_scheme, limit=limit)
        fingerprint = _fingerprint(split)
        key = {
            "version": CACHE_VERSION,
            "model": model,
            "weights": weights_id,
            "feature": feature,
            "model_kwargs": json.loads(json.dumps(kwargs, sort_keys=True)),
            "dataset": dataset,
            "split": split_name,
            "label_scheme": label_scheme,
            "limit": limit,
            "n": len(split.labels),
            "fingerprint": fingerprint,
            **prep,
        }
        # only where they differ from the defaults of old: earlier fp32 caches stay valid
        if precision != "fp32":
            key["precision"] = precision
        if decoded_on:
            key["decoded"] = np.dtype(DECODED_DTYPE).name
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
        path = cache_root(cache_dir) / "features" / _safe(model) / _safe(dataset)
        path = path / f"{split_name}-{digest}.npz"
        features = None
        if use_cache and path.exists():
            features, problem = _load_cached(path, key, split.labels)
            if problem is None:
                logger.info("read cached features %s", path)
            else:
                logger.warning("feature cache file %s is corrupted: %s; recomputing", path, problem)
        if features is None:
            desc = f"{model} {dataset}_{split_name}"
            decoded = None
            if decoded_on:
                dkey = _decoded_key(dataset, split, split_name, limit, prep, fingerprint)
                decoded = (_decoded_path(cache_dir, dataset, split_name, dkey), dkey)
            batches, n_batches = _split_images(
                split,
                prep=prep,
                batch_size=batch_size,
                num_workers=num_workers,
                device=dev,
                decoded=decoded,
            )
            trunk = holder.get()
            if compile and not getattr(trunk, "_probe_compiled", False):
                trunk.model.compile()
                trunk._probe_compiled = True
            features = _compute(
                trunk,
                batches,
                device=dev,
                precision=precision,
                n_batches=n_batches,
                desc=f"{desc} ({precision})",
            )
            if use_cache:
                _save_cache(path, key, features, split.labels)
                logger.info("wrote %s %s", path, features.shape)
        out[split_name] = (features, split.labels.copy())
    return out


def extract_features(
    *,
    model: str,
    dataset: str,
    split: str,
    weights: str = AUTO,
    image_size: int = 224,
    stretch: str | None = AUTO,
    feature: str | None = None,
    batch_size: int = 64,
    device: str = AUTO,
    cache_dir: str | os.PathLike | None = None,
    model_kwargs: dict | None = None,
    label_scheme: str | None = None,
    limit: int | None = None,
    center_crop: int | None = None,
    num_workers: int = 0,
    use_cache: bool = True,
    resize: int | None = None,
    precision: str = AUTO,
    decoded_cache: bool = True,
    compile: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Frozen probe features of one split, read from the cache or computed and cached.

    Args:
        model: zoo name (``mae``, ``dino``, ``dinov2``, ``msn``, ``resnet50``, ``resnet18``,
            ``timm:<name>``).
        dataset: probe data set name, e.g. ``"gmnist"`` or ``"first_radio_galaxy"``.
        split: ``"train"`` or ``"test"``.
        weights: ``"auto"``, ``"hub"``, ``"none"`` (random init) or a checkpoint path.
        image_size: square input size; images are resized to it (bicubic upscaling).
        stretch: stretch name; ``"auto"`` takes the data set's default, ``None`` none.
        feature: probe feature kind (``cls``, ``mean``, ``avgpool``); None: the model's default.
        batch_size: images per forward pass.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        cache_dir: cache folder (default: ``$ASTRODET_CACHE`` or ``datasets_root()/cache``).
        model_kwargs: architecture kwargs for ``build_trunk`` (tiny trunks in tests).
        label_scheme: RGZ relabelling, or None for the native labels.
        limit: keep a fixed subset of this many images per split.
        center_crop: crop this many native pixels around the centre before resizing (with
            ``resize``: this many resized pixels).
        num_workers: image loading processes.
        use_cache: read and write the cache.
        resize: resize the shorter side to this many pixels before the centre crop
            (``resize=256, center_crop=224``: DINOv2's resize-then-crop).
        precision: ``"auto"`` (bf16 autocast on a GPU that computes it in hardware, else
            fp32), ``"fp32"``, ``"bf16"`` or ``"fp16"``; part of the cache key.
        decoded_cache: keep the decoded, resized images (float16) in the cache for the
            next model or run (with ``use_cache``).
        compile: ``torch.compile`` the trunk (worth it for large sets on a GPU).

    Returns:
        ``(features, labels)``: float32 (N, D) and int64 (N,).
    """
    return extract_splits(
        model=model,
        dataset=dataset,
        splits=(split,),
        weights=weights,
        image_size=image_size,
        stretch=stretch,
        feature=feature,
        batch_size=batch_size,
        device=device,
        cache_dir=cache_dir,
        model_kwargs=model_kwargs,
        label_scheme=label_scheme,
        limit=limit,
        center_crop=center_crop,
        num_workers=num_workers,
        use_cache=use_cache,
        resize=resize,
        precision=precision,
        decoded_cache=decoded_cache,
        compile=compile,
    )[split]


# ----------------------------------------------------------------------------- CLI helpers


def _model_name(value: str) -> str:
    try:
        return check_model(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _dataset_name(value: str) -> str:
    try:
        return check_dataset(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of pixels, got {number}")
    return number


def _json_dict(value: str) -> dict:
    try:
        obj = json.loads(value)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"--model-kwargs is not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise argparse.ArgumentTypeError("--model-kwargs must be a JSON object")
    return obj


def add_feature_args(parser: argparse.ArgumentParser, *, multi_model: bool = False) -> None:
    """The options every feature consumer shares (model, weights, preprocessing, cache)."""
    parser.add_argument(
        "--model",
        nargs="+" if multi_model else None,
        required=True,
        type=_model_name,
        help="zoo model name" + ("s" if multi_model else "") + " (mae, dino, dinov2, msn, "
        "resnet50, resnet18, timm:<name>)",
    )
    parser.add_argument(
        "--weights",
        default=AUTO,
        help="'auto' ($ASTRODET_WEIGHTS, then the hub), 'hub', 'none' (random init), a hub "
        "id (e.g. hf:facebook/dinov2-base) or a checkpoint path (default: auto)",
    )
    parser.add_argument("--image-size", type=int, default=224, help="input size (default 224)")
    parser.add_argument(
        "--stretch",
        default=AUTO,
        help="stretch applied to raw images ('auto': the data set's default; 'none')",
    )
    parser.add_argument("--feature", default=None, help="probe feature: cls, mean or avgpool")
    parser.add_argument(
        "--center-crop",
        type=_positive_int,
        default=None,
        help="crop N px around the centre before the resize to --image-size (native px; "
        "resized px with --resize)",
    )
    parser.add_argument(
        "--resize",
        type=_positive_int,
        default=None,
        help="first resize the shorter side to N px; '--resize 256 --center-crop 224' is "
        "DINOv2's resize-then-crop",
    )
    parser.add_argument(
        "--label-scheme",
        choices=LABEL_SCHEMES,
        default=None,
        help="RGZ relabelling: morphology (6 classes), peaks or components",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    parser.add_argument("--device", default=AUTO, help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--num-workers", type=int, default=0, help="image loading processes")
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="feature cache (default: $ASTRODET_CACHE or datasets_root()/cache)",
    )
    parser.add_argument(
        "--model-kwargs",
        type=_json_dict,
        default=None,
        help='architecture kwargs as JSON, e.g. \'{"embed_dim": 32, "depth": 2}\'',
    )
    parser.add_argument("--limit", type=int, default=None, help="use N images per split")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write cache")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=AUTO,
        help="forward pass precision: auto (bf16 autocast on a GPU that computes it in "
        "hardware, fp32 elsewhere), fp32, bf16 or fp16 (default auto; part of the cache key)",
    )
    parser.add_argument(
        "--no-decoded-cache",
        action="store_true",
        help="do not keep the decoded, resized images (float16) in the cache",
    )
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the trunk (large sets on a GPU)"
    )


def feature_options(args: argparse.Namespace) -> dict[str, Any]:
    """kwargs for :func:`extract_splits` from parsed :func:`add_feature_args` options."""
    return {
        "weights": args.weights,
        "image_size": args.image_size,
        "stretch": args.stretch,
        "feature": args.feature,
        "batch_size": args.batch_size,
        "device": args.device,
        "cache_dir": args.cache_dir,
        "model_kwargs": args.model_kwargs,
        "label_scheme": args.label_scheme,
        "limit": args.limit,
        "center_crop": args.center_crop,
        "num_workers": args.num_workers,
        "use_cache": not args.no_cache,
        "resize": args.resize,
        "precision": args.precision,
        "decoded_cache": not args.no_decoded_cache,
        "compile": args.compile,
    }


def dataset_arg(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--dataset`` validated against the registered classification sets."""
    parser.add_argument(
        "--dataset",
        type=_dataset_name,
        default=default,
        required=default is None,
        help="probe data set name, or a folder of class subfolders of images (FITS, NPY, "
        "PNG, ...): ROOT/<class>/ (80/20 split) or ROOT/{train,test}/<class>/"
        + (f" (default {default})" if default else ""),
    )


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m probe.features",
        description="Extract and cache frozen features of a zoo trunk on a probe data set.",
    )
    add_feature_args(parser)
    dataset_arg(parser)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        result = extract_splits(model=args.model, dataset=args.dataset, **feature_options(args))
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        logger.error("%s", e)
        return 1
    for split, (features, labels) in result.items():
        print(
            f"{args.model} {args.dataset}_{split}: features {features.shape}, labels {labels.shape}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
