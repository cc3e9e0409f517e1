"""Detection data: dataset dicts -> stretched 3-channel tensors, boxes and labels, batched.

A batch is ``(images, targets, dicts)``: images are CHW float32 tensors in ``[0, 1]`` at their
native size (torchvision's Faster R-CNN resizes and normalises them itself), targets are
``{"boxes": N x 4 XYXY pixels, "labels": category_id + 1, "image_id"}`` (label 0 is the
background in torchvision), dicts are the dataset dicts the images came from.

The train loader is infinite and reproducible: a seeded stream of permutations, split across
DDP ranks, and every sample's augmentation drawn from its own generator seeded by the run seed
and the sample's position in the stream. So a run resumed from a checkpoint (the loader's
``state_dict`` holds how many batches it handed out) sees exactly the batches that an
uninterrupted run would have seen, whatever the number of workers.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from astrodet.structures import BoxMode

logger = logging.getLogger(__name__)

__all__ = [
    "Augmentation",
    "DetectionDataset",
    "DetectionTrainLoader",
    "RandomColorJitter",
    "RandomContrast",
    "RandomFlip",
    "RandomTranspose",
    "RandomGaussianBlur",
    "TrainingSampler",
    "build_detection_test_loader",
    "build_detection_train_loader",
    "default_augmentations",
    "geometric_augmentations",
    "detection_collate",
]


# --------------------------------------------------------------------------- augmentations
class Augmentation:
    """A random transform of an image and its boxes.

    Subclasses implement ``__call__(image, boxes, generator) -> (image, boxes)`` with
    ``image`` a CHW float tensor in ``[0, 1]``, ``boxes`` an N x 4 XYXY tensor, and every
    random draw taken from ``generator`` (a ``torch.Generator``) so results are reproducible.
    """

    def __init__(self, prob: float = 0.5):
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"{type(self).__name__}: prob must be in [0, 1], got {prob}")
        self.prob = prob

    def _fires(self, generator: torch.Generator) -> bool:
        return bool(torch.rand((), generator=generator) < self.prob)

    def _uniform(self, lo: float, hi: float, generator: torch.Generator, n: int = 1):
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    def __call__(self, image, boxes, generator):
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class RandomFlip(Augmentation):
    """Flip left-right (``horizontal=True``) or top-bottom, moving the boxes with the image.

    Args:
        prob: probability of flipping.
        horizontal: flip along x; ``False`` flips along y.
    """

    def __init__(self, prob: float = 0.5, *, horizontal: bool = True):
        super().__init__(prob)
        self.horizontal = horizontal

    def __call__(self, image, boxes, generator):
        if not self._fires(generator):
            return image, boxes
        h, w = image.shape[-2:]
        boxes = boxes.clone()
        if self.horizontal:
            image = image.flip(-1)
            boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
        else:
            image = image.flip(-2)
            boxes[:, [1, 3]] = h - boxes[:, [3, 1]]
        return image, boxes


class RandomTranspose(Augmentation):
    """Swap the image's axes (a reflection about the diagonal), moving the boxes with it;
    with both :class:`RandomFlip` s it reaches all eight rotations and reflections, under
    which the sky has no preferred orientation.

    Args:
        prob: probability of transposing.
    """

    def __call__(self, image, boxes, generator):
        if not self._fires(generator):
            return image, boxes
        return image.transpose(-1, -2), boxes[:, [1, 0, 3, 2]].clone()


def geometric_augmentations() -> list[Augmentation]:
    """Rotations and reflections only (flips both ways and a transpose): for labels that a
    source finder made from the pixels, which blur or contrast changes would contradict."""
    return [
        RandomFlip(0.5, horizontal=True),
        RandomFlip(0.5, horizontal=False),
        RandomTranspose(0.5),
    ]


class RandomGaussianBlur(Augmentation):
    """Blur with a Gaussian of random width (a coarser beam or seeing).

    Args:
        prob: probability of blurring.
        sigma: range of the Gaussian's standard deviation in pixels.
    """

    def __init__(self, prob: float = 0.25, *, sigma: tuple[float, float] = (0.3, 1.5)):
        super().__init__(prob)
        self.sigma = tuple(sigma)

    def __call__(self, image, boxes, generator):
        if not self._fires(generator):
            return image, boxes
        sigma = float(self._uniform(*self.sigma, generator))
        radius = max(1, math.ceil(3.0 * sigma))
        x = torch.arange(-radius, radius + 1, dtype=image.dtype)
        kernel = torch.exp(-0.5 * (x / sigma) ** 2)
        kernel = kernel / kernel.sum()
        c, h, w = image.shape
        out = image.unsqueeze(1)  # (C, 1, H, W): one depthwise pass per channel
        # reflect padding needs pad < size; replicate is the safe fallback for tiny images
        mode = "reflect" if radius < min(h, w) else "replicate"
        out = F.pad(out, (radius, radius, 0, 0), mode=mode)
        out = F.conv2d(out, kernel.view(1, 1, 1, -1))
        out = F.pad(out, (0, 0, radius, radius), mode=mode)
        out = F.conv2d(out, kernel.view(1, 1, -1, 1))
        return out.squeeze(1).clamp_(0.0, 1.0), boxes


class RandomContrast(Augmentation):
    """Scale the contrast about the image mean by a random factor.

    Args:
        prob: probability of applying.
        intensity: range of the contrast factor.
    """

    def __init__(self, prob: float = 0.5, *, intensity: tuple[float, float] = (0.8, 1.2)):
        super().__init__(prob)
        self.intensity = tuple(intensity)

    def __call__(self, image, boxes, generator):
        if not self._fires(generator):
            return image, boxes
        factor = float(self._uniform(*self.intensity, generator))
        mean = image.mean()
        return (mean + factor * (image - mean)).clamp_(0.0, 1.0), boxes


class RandomColorJitter(Augmentation):
    """Random brightness and per-channel gain (matters for multi-stretch channels).

    Args:
        prob: probability of applying.
        brightness: the brightness factor is drawn from ``1 +- brightness``.
        channel_gain: each channel's gain is drawn from ``1 +- channel_gain``.
    """

    def __init__(self, prob: float = 0.5, *, brightness: float = 0.1, channel_gain: float = 0.05):
        super().__init__(prob)
        self.brightness = brightness
        self.channel_gain = channel_gain

    def __call__(self, image, boxes, generator):
        if not self._fires(generator):
            return image, boxes
        b = float(self._uniform(1 - self.brightness, 1 + self.brightness, generator))
        gain = self._uniform(
            1 - self.channel_gain, 1 + self.channel_gain, generator, image.shape[0]
        )
        return (image * (b * gain.to(image.dtype)).view(-1, 1, 1)).clamp_(0.0, 1.0), boxes


def default_augmentations() -> list[Augmentation]:
    """The default training augmentations: flips both ways, blur, contrast, colour jitter."""
    return [
        RandomFlip(0.5, horizontal=True),
        RandomFlip(0.5, horizontal=False),
        RandomGaussianBlur(0.25),
        RandomContrast(0.5),
        RandomColorJitter(0.5),
    ]


_AUGMENTATION_SETS = {"default": default_augmentations, "geometric": geometric_augmentations}


# --------------------------------------------------------------------------- dataset
def _prepare_targets(dicts: Sequence[dict]) -> tuple[list[tuple[np.ndarray, np.ndarray]], int]:
    """Boxes (XYXY, clipped to the image) and labels (category_id + 1) for every dict.

    Returns:
        (per-dict (boxes N x 4 float32, labels N int64), number of degenerate boxes dropped).
    """
    out, dropped = [], 0
    for d in dicts:
        anns = [a for a in d.get("annotations", []) if not a.get("iscrowd", 0)]
        if not anns:
            out.append((np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)))
            continue
        boxes = np.stack(
            [
                np.asarray(
                    BoxMode.convert(
                        list(a["bbox"]), a.get("bbox_mode", BoxMode.XYWH_ABS), BoxMode.XYXY_ABS
                    ),
                    np.float32,
                )
                for a in anns
            ]
        )
        labels = np.asarray([int(a["category_id"]) + 1 for a in anns], np.int64)
        if "width" in d and "height" in d:
            boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, d["width"])
            boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, d["height"])
        # torchvision rejects boxes without positive extent deep inside the model
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        dropped += int((~keep).sum())
        out.append((boxes[keep], labels[keep]))
    return out, dropped


def _describe(d: dict) -> str:
    return str(d.get("file_name", f"image_id {d.get('image_id')} (in-memory image)"))


class DetectionDataset(Dataset):
    """Map-style dataset over Detectron2 dataset dicts.

    Items are ``(image CHW float32 [0, 1] 3-channel, target, dict)``. An index may be an int
    or ``(int, sample_seed)``; with a seed and augmentations, the augmentations draw from a
    generator seeded by it.

    Args:
        dicts: dataset dicts (``file_name`` or ``image``, ``height``, ``width``, ``image_id``,
            ``annotations`` with ``bbox``/``bbox_mode``/``category_id``).
        stretch: passed to :func:`astrodet.data.stretch.to_rgb` (None: already in [0, 1]).
        augmentations: applied in order to training images (None or empty: none).
    """

    def __init__(
        self,
        dicts: Sequence[dict],
        *,
        stretch: str | None = "zscale",
        augmentations: Sequence[Augmentation] | None = None,
    ):
        self.dicts = list(dicts)
        self.stretch = stretch
        self.augmentations = list(augmentations or [])
        missing = [
            d["file_name"]
            for d in self.dicts
            if "image" not in d and "file_name" in d and not os.path.exists(d["file_name"])
        ]
        if missing:
            more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
            raise FileNotFoundError(
                f"{len(missing)} of {len(self.dicts)} images not found: "
                f"{', '.join(map(str, missing[:3]))}{more}"
            )
        self._targets, dropped = _prepare_targets(self.dicts)
        if dropped:
            logger.warning("dropped %d boxes with zero width or height", dropped)

    def __len__(self) -> int:
        return len(self.dicts)

    def num_boxes(self, index: int) -> int:
        """Number of (valid) boxes of item ``index``, without reading the image."""
        return len(self._targets[index][1])

    def read_image(self, index: int) -> torch.Tensor:
        """The stretched CHW float32 image of item ``index``; checks its size against the dict.

        Raises:
            ValueError: the image's size disagrees with the dict's ``height``/``width``.
        """
        from astrodet.data.io import load_dict_image
        from astrodet.data.stretch import to_rgb

        d = self.dicts[index]
        image = load_dict_image(d)
        h, w = image.shape[:2]
        if (d.get("height", h), d.get("width", w)) != (h, w):
            raise ValueError(
                f"image {_describe(d)} is {h}x{w} (height x width) but its annotations say "
                f"{d['height']}x{d['width']}; the json does not match the image"
            )
        rgb = to_rgb(image, stretch=self.stretch)
        return torch.from_numpy(
            np.ascontiguousarray(np.asarray(rgb, np.float32).transpose(2, 0, 1))
        )

    def __getitem__(self, index):
        index, sample_seed = index if isinstance(index, tuple) else (index, None)
        d = self.dicts[index]
        image = self.read_image(index)
        boxes, labels = (torch.from_numpy(a.copy()) for a in self._targets[index])
        if self.augmentations and sample_seed is not None:
            g = torch.Generator().manual_seed(int(sample_seed))
            for aug in self.augmentations:
                image, boxes = aug(image, boxes, g)
            image = image.contiguous()
        target = {"boxes": boxes, "labels": labels, "image_id": d.get("image_id", index)}
        return image, target, d


def detection_collate(batch: Sequence[tuple]) -> tuple[list, list, list]:
    """Batch items as ``(images, targets, dicts)`` lists (images keep their own sizes)."""
    images, targets, dicts = zip(*batch) if batch else ((), (), ())
    return list(images), list(targets), list(dicts)


# --------------------------------------------------------------------------- samplers
def _dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _sample_seed(seed: int, position: int) -> int:
    return int(np.random.SeedSequence([seed, position]).generate_state(1, np.uint64)[0] >> 1)


class TrainingSampler(Sampler):
    """An infinite stream of seeded permutations; rank ``r`` of ``W`` takes positions
    ``start + r, start + r + W, ...``. Yields ``(index, sample_seed)``.

    The stream does not depend on the number of ranks, so ``start`` (a global position)
    resumes it exactly.

    Args:
        size: dataset length.
        seed: the run seed.
        start: global stream position to begin at.
        rank, world_size: this process's shard.
    """

    def __init__(
        self, size: int, *, seed: int = 0, start: int = 0, rank: int = 0, world_size: int = 1
    ):
        if size <= 0:
            raise ValueError("TrainingSampler needs a non-empty dataset")
        self.size, self.seed, self.start = size, int(seed), int(start)
        self.rank, self.world_size = rank, world_size

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        pos = self.start + self.rank
        epoch, perm = None, None
        while True:
            e = pos // self.size
            if e != epoch:
                epoch, perm = e, self._permutation(e)
            yield int(perm[pos % self.size]), _sample_seed(self.seed, pos)
            pos += self.world_size


class InferenceSampler(Sampler):
    """Every index once, in order, split into contiguous shards across ranks."""

    def __init__(self, size: int, *, rank: int = 0, world_size: int = 1):
        per = math.ceil(size / world_size) if size else 0
        self.indices = list(range(min(rank * per, size), min((rank + 1) * per, size)))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


# --------------------------------------------------------------------------- loaders
def _loader_options(
    num_workers: int, pin_memory: bool | None, prefetch_factor: int | None
) -> dict[str, Any]:
    """DataLoader keyword arguments: pinned (page-locked) batches when asked, or by default
    when CUDA is available, so copies to the GPU need not block; the prefetch depth only
    where worker processes exist (DataLoader refuses it without them)."""
    options: dict[str, Any] = {
        "pin_memory": torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
    }
    if num_workers > 0 and prefetch_factor is not None:
        if int(prefetch_factor) < 1:
            raise ValueError(f"prefetch_factor must be a positive integer, got {prefetch_factor}")
        options["prefetch_factor"] = int(prefetch_factor)
    return options


class DetectionTrainLoader:
    """Infinite iterable of training batches with a resumable position.

    ``state_dict()`` records how many batches this process has handed out;
    ``load_state_dict()`` makes the next ``iter()`` continue from there. ``pin_memory``
    (None: when CUDA is available) and ``prefetch_factor`` (batches loaded ahead per worker;
    None: DataLoader's default) may be changed before iterating.
    """

    def __init__(
        self,
        dataset: DetectionDataset,
        *,
        batch_size: int,
        total_batch_size: int,
        num_workers: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        image_size: int | None = None,
        pin_memory: bool | None = None,
        prefetch_factor: int | None = None,
    ):
        self.dataset = dataset
        self.batch_size = batch_size
        self.total_batch_size = total_batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.image_size = image_size
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        self._batches = 0

    def state_dict(self) -> dict[str, Any]:
        """Position of the stream: ``{"batches": n, "total_batch_size", "seed"}``."""
        return {
            "batches": self._batches,
            "total_batch_size": self.total_batch_size,
            "seed": self.seed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue after ``state["batches"]`` batches (of the saved total batch size)."""
        if state.get("seed", self.seed) != self.seed:
            logger.warning(
                "resuming the data stream of seed %s with seed %s", state.get("seed"), self.seed
            )
        samples = int(state["batches"]) * int(state.get("total_batch_size", self.total_batch_size))
        if samples % self.total_batch_size:
            logger.warning("total batch size changed on resume; the stream restarts mid-batch")
        self._batches = samples // self.total_batch_size

    def __iter__(self) -> Iterator[tuple[list, list, list]]:
        sampler = TrainingSampler(
            len(self.dataset),
            seed=self.seed,
            start=self._batches * self.total_batch_size,
            rank=self.rank,
            world_size=self.world_size,
        )
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=detection_collate,
            # its own generator: creating the iterator must not draw from torch's global RNG
            generator=torch.Generator().manual_seed(self.seed),
            # the stream is infinite: one iterator per run, its workers live as long as it
            persistent_workers=False,
            **_loader_options(self.num_workers, self.pin_memory, self.prefetch_factor),
        )
        for batch in loader:
            self._batches += 1
            yield batch


def build_detection_train_loader(
    *,
    dataset: Sequence[dict],
    total_batch_size: int = 16,
    image_size: int = 512,
    stretch: str | None = "zscale",
    fraction: float = 1.0,
    augment: bool | str | Sequence[Augmentation] = True,
    num_workers: int = 2,
    seed: int = 0,
    filter_empty: bool = True,
    pin_memory: bool | None = None,
    prefetch_factor: int | None = None,
) -> DetectionTrainLoader:
    """The infinite, seeded training loader.

    Args:
        dataset: Detectron2 dataset dicts.
        total_batch_size: images per step over all DDP ranks (split evenly across them).
        image_size: the detector's input size (images are returned at native size; the
            detector's transform resizes them); recorded on the loader.
        stretch: the stretch for :func:`astrodet.data.stretch.to_rgb`.
        fraction: fraction of the training images used (seeded subset, by image).
        augment: True or ``"default"`` for :func:`default_augmentations`, ``"geometric"``
            for :func:`geometric_augmentations`, False for none, or a list.
        num_workers: DataLoader worker processes per rank.
        seed: seed of the subset, the sample order and the augmentations.
        filter_empty: drop images without boxes (counted and logged); False keeps them as
            background-only examples.
        pin_memory: page-locked batches for non-blocking copies to a GPU (None: when CUDA
            is available; the trainer sets it from ``train.device`` unless given here).
        prefetch_factor: batches each worker loads ahead (None: DataLoader's default of 2;
            only with ``num_workers > 0``).
    """
    rank, world_size = _dist_info()
    if total_batch_size <= 0 or total_batch_size % world_size:
        raise ValueError(
            f"total_batch_size={total_batch_size} must be a positive multiple of the "
            f"number of processes ({world_size})"
        )
    dicts = list(dataset)
    if not dicts:
        raise ValueError("the training dataset is empty")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if fraction < 1.0:
        from astrodet.data.coco import subset_dicts

        n_all = len(dicts)
        dicts = subset_dicts(dicts, fraction, seed)
        logger.info("using %d of %d training images (fraction %g)", len(dicts), n_all, fraction)
    if isinstance(augment, str):
        if augment not in _AUGMENTATION_SETS:
            raise ValueError(
                f"augment={augment!r} is not one of {sorted(_AUGMENTATION_SETS)} "
                "(or True, False, a list of augmentations)"
            )
        augs = _AUGMENTATION_SETS[augment]()
    elif augment is True:
        augs = default_augmentations()
    elif augment is False or augment is None:
        augs = []
    else:
        augs = list(augment)
    ds = DetectionDataset(dicts, stretch=stretch, augmentations=augs)
    n_empty = sum(ds.num_boxes(i) == 0 for i in range(len(ds)))
    if n_empty and filter_empty:
        keep = [d for i, d in enumerate(ds.dicts) if ds.num_boxes(i) > 0]
        logger.warning("skipped %d of %d training images that have no boxes", n_empty, len(ds))
        if not keep:
            raise ValueError(f"none of the {len(ds)} training images has a box")
        ds = DetectionDataset(keep, stretch=stretch, augmentations=augs)
    elif n_empty:
        logger.info("%d of %d training images have no boxes (kept)", n_empty, len(ds))
    ds.num_skipped_empty = n_empty if filter_empty else 0
    logger.info(
        "train loader: %d images, batch %d (%d per process), augmentations: %s",
        len(ds),
        total_batch_size,
        total_batch_size // world_size,
        ", ".join(type(a).__name__ for a in augs) or "none",
    )
    return DetectionTrainLoader(
        ds,
        batch_size=total_batch_size // world_size,
        total_batch_size=total_batch_size,
        num_workers=num_workers,
        seed=seed,
        rank=rank,
        world_size=world_size,
        image_size=image_size,
        pin_memory=pin_memory,
        prefetch_factor=prefetch_factor,
    )


def build_detection_test_loader(
    *,
    dataset: Sequence[dict],
    batch_size: int = 1,
    image_size: int = 512,
    stretch: str | None = "zscale",
    num_workers: int = 0,
    pin_memory: bool | None = None,
    persistent_workers: bool = False,
    prefetch_factor: int | None = None,
) -> DataLoader:
    """Every image once, in order, no augmentation; under DDP each rank gets a contiguous
    shard (the evaluator gathers the predictions).

    Args:
        dataset: Detectron2 dataset dicts.
        batch_size: images per batch.
        image_size: the detector's input size (recorded; images stay at native size).
        stretch: the stretch for :func:`astrodet.data.stretch.to_rgb`.
        num_workers: DataLoader worker processes.
        pin_memory: page-locked batches (None: when CUDA is available).
        persistent_workers: keep the workers between evaluations (only with workers).
        prefetch_factor: batches each worker loads ahead (None: DataLoader's default).
    """
    rank, world_size = _dist_info()
    ds = DetectionDataset(list(dataset), stretch=stretch)
    loader = DataLoader(
        ds,
        batch_size=batch_size,
        sampler=InferenceSampler(len(ds), rank=rank, world_size=world_size),
        num_workers=num_workers,
        collate_fn=detection_collate,
        persistent_workers=bool(persistent_workers) and num_workers > 0,
        **_loader_options(num_workers, pin_memory, prefetch_factor),
    )
    loader.image_size = image_size
    return loader
