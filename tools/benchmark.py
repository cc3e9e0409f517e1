#!/usr/bin/env python
"""Speed ratios of the toolkit's parts, each measured within one run on one machine.

    python tools/benchmark.py --quick                    # a few minutes on 2 CPU cores
    python tools/benchmark.py --output output/benchmark  # the full run
    python tools/benchmark.py --only eval,probe          # some parts

Every figure compares two ways of doing the same work, timed in alternating rounds
(A B, B A, A B, ...) and summarised by medians, so a busy or noisy machine slows both sides
alike and the ratio holds. Writes ``OUTPUT/benchmark.json`` and ``OUTPUT/benchmark.md``
(the table it prints).

Parts:

* features: images/s of ``probe.features`` extraction (stretch, resize, batching) against
  the bare ``Trunk.features`` forward on the same, already prepared batch; a feature cache
  hit against recomputing.
* probe: ``--protocol fast`` (and ``logistic``) against ``--protocol paper``, 4 label
  fractions x 3 seeds, on 768-d features of 8000 training images, as cached features are
  (synthetic Gaussian class clusters here, not a trunk's); time and macro F1 of each.
* detection: seconds per training iteration of Faster R-CNN, frozen against fine-tuned
  backbone, ViTDet-B and R50-FPN at 224 and 512 px (random initialisation); inference
  images/s; trainable parameter counts.
* eval: faster-coco-eval against pycocotools on 1000 images x 30 boxes, and how far their
  AP50 differ.
* on a CUDA GPU, in addition: bf16 autocast against fp32 (detection training step, ViT-B/16
  features) and ViT-B/16 feature throughput at 224 px.

Timings run on a busy machine too, but a CPU shared with other jobs slows multi-threaded
code unevenly; ``--threads 1`` gives steadier figures there.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import logging
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch
from tqdm.auto import tqdm

from astrodet.utils import atomic_write_json, atomic_write_text, prepare_output_dir

logger = logging.getLogger("benchmark")

SECTIONS = ("features", "probe", "detection", "eval")
PROBE_PROTOCOLS = ("fast", "logistic", "paper")
BACKBONES = ("vitdet_b", "r50_fpn")
BENCH_DATASET = "benchmark_galaxies"
# Between-class spread of the synthetic probe features (in units of the mean within-class
# standard deviation): linear probes reach macro F1 ~0.75 at 10 % and ~0.9 at 100 % of
# 8000 labels, like foundation-model features on GalaxyMNIST.
PROBE_SEPARATION = 0.055
PAPER_EPOCHS = 100

# Settings of the full run and of --quick; every one can be set on the command line.
PRESETS: dict[str, dict[str, Any]] = {
    "full": dict(
        repeats=3,
        feature_model="dino",
        feature_images=128,
        feature_batch_size=32,
        probe_train=8000,
        probe_test=2000,
        probe_epochs=PAPER_EPOCHS,
        det_sizes=[224, 512],
        det_batch=2,
        det_warmup=1,
        det_iters=3,
        eval_images=1000,
        eval_boxes=30,
    ),
    "quick": dict(
        repeats=3,
        feature_model="resnet18",
        feature_images=32,
        feature_batch_size=16,
        probe_train=4000,
        probe_test=1000,
        probe_epochs=20,
        det_sizes=[224],
        det_batch=1,
        det_warmup=1,
        det_iters=2,
        eval_images=1000,
        eval_boxes=30,
    ),
}


# ----------------------------------------------------------------------------- timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(
    fns: dict[str, Callable[[], Any]], *, repeats: int, device: torch.device, desc: str
) -> dict[str, list[float]]:
    """Wall seconds of each function, called in alternating order for ``repeats`` rounds.

    Args:
        fns: name -> function of no arguments.
        repeats: rounds; round ``r`` runs the functions forwards when ``r`` is even and
            backwards when odd, so a slow spell of the machine hits every side alike.
        device: CUDA work is synchronised before and after each call.
        desc: progress bar label.

    Returns:
        name -> list of ``repeats`` durations.
    """
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in tqdm(range(repeats), desc=desc, unit="round", leave=False):
        for name in names if r % 2 == 0 else names[::-1]:
            _sync(device)
            start = time.perf_counter()
            fns[name]()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("nan")


def _geomean(values: list[float]) -> float:
    values = [v for v in values if v is not None and math.isfinite(v) and v > 0]
    return float(math.exp(sum(math.log(v) for v in values) / len(values))) if values else math.nan


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------- device


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def device_info(device: torch.device) -> dict[str, Any]:
    """What the benchmark ran on: CPU model and cores, GPU name, torch version, threads."""
    info: dict[str, Any] = {
        "device": str(device),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(AttributeError, OSError):
        info["usable_cores"] = len(os.sched_getaffinity(0))
    with contextlib.suppress(AttributeError, OSError):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine")
    return device


# ----------------------------------------------------------------------------- features


@contextlib.contextmanager
def registered_galaxy_set(n_images: int, *, seed: int = 0, name: str = BENCH_DATASET):
    """Register ``n_images`` simulated 64 px galaxies, in memory, as the probe data set ``name``
    (``name_train`` and ``name_test`` hold the same images) for the duration of the block.

    Yields:
        the data set name.
    """
    from astrodet.data import DatasetCatalog, MetadataCatalog
    from astrodet.data.synthetic import GALAXY_CLASSES, generate_galaxies

    images, labels = generate_galaxies(n_images, seed=seed, size=64)
    dicts = [
        {"image_id": i, "label": int(label), "image": image}
        for i, (image, label) in enumerate(zip(images, labels))
    ]
    names = [f"{name}_{split}" for split in ("train", "test")]
    for full in names:
        if full in DatasetCatalog.list():
            raise ValueError(f"dataset {full!r} is already registered; pick another name")
    try:
        for full in names:
            DatasetCatalog.register(full, lambda: dicts)
            MetadataCatalog.get(full).set(
                thing_classes=list(GALAXY_CLASSES), task="classification", stretch=None
            )
        yield name
    finally:
        for full in names:
            if full in DatasetCatalog.list():
                DatasetCatalog.remove(full)
            if full in MetadataCatalog.list():
                MetadataCatalog.remove(full)


@contextlib.contextmanager
def _reuse_built_trunks():
    """Build each trunk once and hand the same module to later ``build_trunk`` calls, so the
    pipeline timings measure loading, stretching, resizing, batching and the forward pass,
    not model construction (timed separately)."""
    import astrodet.zoo as zoo

    real = zoo.build_trunk
    built: dict[str, Any] = {}
    build_seconds: list[float] = []

    def build(name, **kwargs):
        key = json.dumps([name, kwargs], sort_keys=True, default=str)
        if key not in built:
            start = time.perf_counter()
            built[key] = real(name, **kwargs)
            build_seconds.append(time.perf_counter() - start)
        return built[key]

    with mock.patch.object(zoo, "build_trunk", build):
        yield built, build_seconds


@contextlib.contextmanager
def _quiet(*names: str, level: int = logging.WARNING):
    """Silence per-call INFO lines of library loggers while they are timed in a loop."""
    loggers = [logging.getLogger(n) for n in names]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, old):
            lg.setLevel(lv)


def bench_features(
    *,
    model: str,
    n_images: int,
    batch_size: int,
    image_size: int = 224,
    repeats: int = 3,
    device: torch.device,
    model_kwargs: dict | None = None,
) -> dict[str, Any]:
    """The probe feature pipeline against the bare trunk forward, and a cache hit against
    recomputing.

    Args:
        model: zoo name of the trunk (random initialisation).
        n_images: simulated 64 px galaxies, upscaled to ``image_size`` as the paper did.
        batch_size: images per forward pass, the same on both sides.
        image_size: model input size.
        repeats: timed rounds.
        device: where the trunk runs.
        model_kwargs: architecture kwargs for the trunk (tiny trunks in tests).
    """
    from probe.datasets import load_split, prepare_image, stack_images
    from probe.features import extract_features

    common = dict(
        model=model,
        dataset=BENCH_DATASET,
        split="train",
        weights="none",
        image_size=image_size,
        stretch=None,
        batch_size=batch_size,
        device=str(device),
        model_kwargs=model_kwargs,
    )
    with (
        registered_galaxy_set(n_images, name=BENCH_DATASET),
        tempfile.TemporaryDirectory(prefix="astrodet-bench-cache-") as cache_dir,
        _reuse_built_trunks() as (built, build_seconds),
        _quiet("probe"),
    ):
        # builds the trunk, warms up and fills the cache
        extract_features(**common, use_cache=True, cache_dir=cache_dir)
        (trunk,) = built.values()
        split = load_split(BENCH_DATASET, "train")
        batch = stack_images(
            [prepare_image(d, stretch=None, image_size=image_size) for d in split.dicts]
        ).to(device)
        trunk.features(batch[:batch_size])  # warm-up of the bare path
        times = time_interleaved(
            {
                "pipeline": lambda: extract_features(**common, use_cache=False),
                "bare": lambda: trunk.features(batch, batch_size=batch_size),
                "cache_hit": lambda: extract_features(
                    **common, use_cache=True, cache_dir=cache_dir
                ),
            },
            repeats=repeats,
            device=device,
            desc="features",
        )
    med = {k: _median(v) for k, v in times.items()}
    out = {
        "model": model,
        "weights": "none",
        "feature_dim": int(trunk.feature_dim),
        "n_images": n_images,
        "native_size": 64,
        "image_size": image_size,
        "batch_size": batch_size,
        "images_per_s_pipeline": n_images / med["pipeline"],
        "images_per_s_bare": n_images / med["bare"],
        "overhead_ratio": _ratio(med["pipeline"], med["bare"]),
        "cache_hit_seconds": med["cache_hit"],
        "recompute_seconds": med["pipeline"],
        "cache_speedup": _ratio(med["pipeline"], med["cache_hit"]),
        "trunk_build_seconds": build_seconds[0] if build_seconds else None,
        "seconds": times,
    }
    return out


# ----------------------------------------------------------------------------- probe


def synthetic_probe_features(
    *,
    n_train: int,
    n_test: int,
    dim: int = 768,
    num_classes: int = 4,
    separation: float = PROBE_SEPARATION,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian class clusters standing in for cached frozen features.

    Within-class scatter has a power-law spectrum along random directions (as real
    embeddings have a few dominant directions), the class means differ by ``separation``
    per dimension, and every dimension gets its own offset and scale (raw, unstandardised
    features). Classes are balanced.

    Returns:
        ``(train_x, train_y, test_x, test_y)``: float32 (N, dim) and int64 (N,).
    """
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    spectrum = 1.0 / np.arange(1, dim + 1)
    spectrum *= dim / spectrum.sum()  # mean within-class variance 1 per dimension
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    means = rng.normal(size=(num_classes, dim)) * separation
    x = (means[labels] + rng.normal(size=(n, dim)) * np.sqrt(spectrum)) @ rotation.T
    x = x * np.exp(rng.normal(0.0, 0.5, dim)) + rng.normal(0.0, 1.0, dim)
    x = x.astype(np.float32)
    labels = labels.astype(np.int64)
    return x[:n_train], labels[:n_train], x[n_train:], labels[n_train:]


def bench_probe(
    *,
    n_train: int,
    n_test: int,
    epochs: int = PAPER_EPOCHS,
    fractions=(0.1, 0.3, 0.5, 1.0),
    seeds=(0, 1, 2),
    device: torch.device,
    seed: int = 0,
) -> dict[str, Any]:
    """``--protocol fast`` and ``logistic`` against ``--protocol paper`` over label
    fractions x seeds.

    Each (fraction, seed) trains the three heads on the same subset with
    ``probe.heads.fit_predict`` (what ``probe.linear`` runs per entry), rotating which goes
    first.

    Args:
        n_train, n_test: feature vectors in the training and the fixed test split.
        epochs: epochs of the paper protocol (the paper: 100 on GalaxyMNIST).
        fractions: label fractions of the training split.
        seeds: seeds of the subsets, the validation split and the paper's shuffling.
        device: where the heads train.
        seed: seed of the synthetic features.
    """
    from astrodet.evaluation.classification import classification_metrics
    from probe.datasets import is_unbalanced
    from probe.heads import fit_predict
    from probe.linear import fraction_indices

    num_classes = 4
    train_x, train_y, test_x, test_y = synthetic_probe_features(
        n_train=n_train, n_test=n_test, num_classes=num_classes, seed=seed
    )
    balanced = is_unbalanced(train_y, num_classes)
    runs = []
    jobs = [(float(f), int(s)) for f in fractions for s in seeds]
    with _quiet("probe"):
        for i, (fraction, s) in enumerate(tqdm(jobs, desc="probe", unit="run", leave=False)):
            idx, _ = fraction_indices(train_y, fraction, s)
            run: dict[str, Any] = {"fraction": fraction, "seed": s, "n_train": len(idx)}
            # rotate the order so that no protocol always runs on a warm cache
            for protocol in PROBE_PROTOCOLS[i % 3 :] + PROBE_PROTOCOLS[: i % 3]:
                _sync(device)
                start = time.perf_counter()
                pred, _ = fit_predict(
                    train_x[idx],
                    train_y[idx],
                    test_x,
                    num_classes=num_classes,
                    protocol=protocol,
                    balanced=balanced,
                    seed=s,
                    epochs=epochs,
                    device=str(device),
                )
                _sync(device)
                run[f"{protocol}_seconds"] = time.perf_counter() - start
                m = classification_metrics(test_y, pred, num_classes=num_classes)
                run[f"{protocol}_macro_f1"] = m["macro_f1"]
            runs.append(run)
    seconds = {p: sum(r[f"{p}_seconds"] for r in runs) for p in PROBE_PROTOCOLS}
    f1 = {p: float(np.mean([r[f"{p}_macro_f1"] for r in runs])) for p in PROBE_PROTOCOLS}
    fast_s, paper_s, logistic_s = seconds["fast"], seconds["paper"], seconds["logistic"]
    f1_fast, f1_paper = f1["fast"], f1["paper"]
    per_fraction = {}
    for fraction in sorted({r["fraction"] for r in runs}):
        rs = [r for r in runs if r["fraction"] == fraction]
        per_fraction[f"{fraction:g}"] = {
            **{
                f"macro_f1_{p}": float(np.mean([r[f"{p}_macro_f1"] for r in rs]))
                for p in PROBE_PROTOCOLS
            },
            **{f"{p}_seconds": sum(r[f"{p}_seconds"] for r in rs) for p in PROBE_PROTOCOLS},
        }
    out: dict[str, Any] = {
        "features_source": (
            f"synthetic: {n_train} train / {n_test} test 768-d Gaussian class clusters, "
            f"{num_classes} balanced classes, power-law within-class spectrum"
        ),
        "n_train": n_train,
        "n_test": n_test,
        "fractions": [float(f) for f in fractions],
        "seeds": [int(s) for s in seeds],
        "paper_epochs": epochs,
        "fast_seconds": fast_s,
        "paper_seconds": paper_s,
        "speedup_fast_vs_paper": _ratio(paper_s, fast_s),
        "median_run_speedup": _median(
            [_ratio(r["paper_seconds"], r["fast_seconds"]) for r in runs]
        ),
        "macro_f1_fast": f1_fast,
        "macro_f1_paper": f1_paper,
        "macro_f1_fast_minus_paper": f1_fast - f1_paper,
        "logistic_seconds": logistic_s,
        "speedup_logistic_vs_paper": _ratio(paper_s, logistic_s),
        "macro_f1_logistic": f1["logistic"],
        "worst_fraction_f1_fast_minus_paper": min(
            v["macro_f1_fast"] - v["macro_f1_paper"] for v in per_fraction.values()
        ),
        "per_fraction": per_fraction,
        "runs": runs,
    }
    if epochs != PAPER_EPOCHS:
        # the paper protocol's time is proportional to its epochs (identical passes)
        out["speedup_at_100_epochs_estimated"] = _ratio(paper_s * PAPER_EPOCHS / epochs, fast_s)
    return out


# ----------------------------------------------------------------------------- detection


TINY_TRUNK = dict(embed_dim=32, depth=2, num_heads=2, img_size=32)
TINY_HEADS = dict(
    representation_size=64,
    rpn_batch_size_per_image=64,
    box_batch_size_per_image=64,
    rpn_post_nms_top_n_train=200,
    rpn_post_nms_top_n_test=200,
)


def build_benchmark_detector(
    *, backbone: str, freeze: str, image_size: int, tiny: bool = False
) -> torch.nn.Module:
    """A one-class Faster R-CNN on a random-init ``vitdet_b`` (ViT-B/16 + simple feature
    pyramid) or ``r50_fpn`` backbone; ``tiny`` shrinks trunk and heads (tests)."""
    from astrodet.modeling import build_detector, build_resnet_fpn_backbone, build_vit_backbone

    out_channels = 32 if tiny else 256
    if backbone == "vitdet_b":
        bb = build_vit_backbone(
            trunk="dino",
            weights="none",
            freeze=freeze,
            image_size=image_size,
            out_channels=out_channels,
            trunk_kwargs=dict(TINY_TRUNK) if tiny else None,
        )
    elif backbone == "r50_fpn":
        bb = build_resnet_fpn_backbone(
            trunk="resnet50", weights="none", freeze=freeze, out_channels=out_channels
        )
    else:
        raise ValueError(f"unknown backbone {backbone!r}; valid: {', '.join(BACKBONES)}")
    return build_detector(
        backbone=bb, num_classes=1, image_size=image_size, **(TINY_HEADS if tiny else {})
    )


def detection_batch(*, n: int, size: int, seed: int = 0):
    """``n`` simulated radio fields of ``size`` px as a train-loader batch
    ``(images, targets, dicts)`` (zscale-stretched, 3 channels, XYXY boxes, labels 1)."""
    from astrodet.data import to_rgb
    from astrodet.data.synthetic import make_radio_field
    from astrodet.structures import BoxMode

    rng = np.random.default_rng(seed)
    images, targets, dicts = [], [], []
    for i in range(n):
        image, anns, _ = make_radio_field(rng, size=size)
        rgb = to_rgb(image, stretch="zscale")
        images.append(torch.from_numpy(rgb).permute(2, 0, 1).contiguous())
        boxes = BoxMode.convert(
            np.asarray([a["bbox"] for a in anns], np.float32).reshape(-1, 4),
            BoxMode.XYWH_ABS,
            BoxMode.XYXY_ABS,
        )
        targets.append(
            {
                "boxes": torch.from_numpy(boxes),
                "labels": torch.ones(len(boxes), dtype=torch.int64),
                "image_id": i,
            }
        )
        dicts.append({"image_id": i, "height": size, "width": size})
    return images, targets, dicts


def _trainer(model, batch, device, *, amp=False, optimizer=None):
    from astrodet.engine import SimpleTrainer
    from astrodet.modeling import get_optimizer_params

    if optimizer is None:
        # the configs' AdamW recipe (configs/common/optim.py)
        params = get_optimizer_params(model=model, base_lr=1e-4, weight_decay=0.1)
        optimizer = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1)
    return SimpleTrainer(model, itertools.repeat(batch), optimizer, device=device, amp=amp)


def _bench_one_detector(*, backbone, size, batch_size, warmup, iters, device, tiny, seed):
    from astrodet.modeling import count_parameters

    models = {
        mode: build_benchmark_detector(
            backbone=backbone, freeze=freeze, image_size=size, tiny=tiny
        ).to(device)
        for mode, freeze in (("frozen", "backbone"), ("finetune", "none"))
    }
    params = {mode: count_parameters(m) for mode, m in models.items()}
    batch = detection_batch(n=batch_size, size=size, seed=seed)
    trainers = {mode: _trainer(m, batch, device) for mode, m in models.items()}
    if device.type == "cuda":
        trainers["finetune_bf16"] = _trainer(
            models["finetune"], batch, device, amp=True, optimizer=trainers["finetune"].optimizer
        )
    for trainer in trainers.values():
        for _ in range(warmup):
            trainer.run_step()
    times = time_interleaved(
        {mode: t.run_step for mode, t in trainers.items()},
        repeats=iters,
        device=device,
        desc=f"{backbone} {size}px train",
    )
    step = {mode: _median(v) for mode, v in times.items()}
    # inference: one architecture whatever is frozen; the frozen model is timed
    model = models["frozen"].eval()
    images = [im.to(device) for im in batch[0]]

    def infer(amp=False):
        ctx = torch.autocast(device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
        with torch.inference_mode(), ctx:
            model(images)

    infer_fns = {"fp32": infer}
    if device.type == "cuda":
        infer_fns["bf16"] = lambda: infer(amp=True)
        # lazily loaded kernels; on CPU the training steps above already warmed the layers
        for fn in infer_fns.values():
            fn()
    itimes = time_interleaved(
        infer_fns, repeats=iters, device=device, desc=f"{backbone} {size}px inference"
    )
    out = {
        **step,
        "frozen_over_finetune": _ratio(step["frozen"], step["finetune"]),
        "inference_images_per_s": batch_size / _median(itimes["fp32"]),
        "trainable_parameters": {m: p["trainable"] for m, p in params.items()},
        "frozen_parameters": {m: p["frozen"] for m, p in params.items()},
        "seconds": {**times, **{f"inference_{k}": v for k, v in itimes.items()}},
    }
    if "finetune_bf16" in step:
        out["bf16_speedup"] = _ratio(step["finetune"], step["finetune_bf16"])
        out["inference_images_per_s_bf16"] = batch_size / _median(itimes["bf16"])
    return out


def bench_detection(
    *,
    backbones=BACKBONES,
    sizes=(224, 512),
    batch_size: int = 2,
    warmup: int = 1,
    iters: int = 3,
    device: torch.device,
    tiny: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """Seconds per training iteration, frozen against fine-tuned backbone, per backbone and
    input size; inference images/s; trainable parameter counts.

    Args:
        backbones: ``vitdet_b`` and/or ``r50_fpn`` (random initialisation).
        sizes: input sizes in px (simulated radio fields of that size).
        batch_size: images per iteration.
        warmup: untimed iterations per model first.
        iters: timed iterations per model, frozen and fine-tuned alternating.
        device: where the models train.
        tiny: tiny trunk and heads (tests).
        seed: seed of the simulated fields.
    """
    step_seconds: dict[str, Any] = {}
    for backbone in backbones:
        for size in sizes:
            key = f"{backbone}_{size}"
            logger.info("detection %s: batch %d, %d+%d iterations", key, batch_size, warmup, iters)
            try:
                step_seconds[key] = _bench_one_detector(
                    backbone=backbone,
                    size=size,
                    batch_size=batch_size,
                    warmup=warmup,
                    iters=iters,
                    device=device,
                    tiny=tiny,
                    seed=seed,
                )
            except (RuntimeError, FloatingPointError) as e:  # e.g. out of memory: keep the rest
                logger.error("detection %s failed: %s", key, e)
                step_seconds[key] = {"error": f"{type(e).__name__}: {e}"}
                _release(device)
                continue
            _release(device)
            r = step_seconds[key]
            logger.info(
                "detection %s: %.3f s frozen, %.3f s fine-tuned per iteration (ratio %.2f); "
                "%.2f images/s inference",
                key,
                r["frozen"],
                r["finetune"],
                r["frozen_over_finetune"],
                r["inference_images_per_s"],
            )
    ok = [r for r in step_seconds.values() if "error" not in r]
    out: dict[str, Any] = {
        "weights": "none",
        "tiny": tiny,
        "batch_size": batch_size,
        "warmup": warmup,
        "iters": iters,
        "optimizer": "AdamW (configs/common/optim.py)",
        # one number over every backbone and size: their geometric mean
        "frozen_over_finetune_step_ratio": _geomean([r["frozen_over_finetune"] for r in ok]),
        "step_seconds": step_seconds,
    }
    if any("bf16_speedup" in r for r in ok):
        out["bf16_speedup"] = _geomean([r.get("bf16_speedup") for r in ok])
    return out


# ----------------------------------------------------------------------------- eval


def synthetic_coco(
    *, n_images: int, boxes_per_image: int, size: int = 512, seed: int = 0
) -> tuple[dict, list[dict]]:
    """COCO ground truth (two categories) and noisy predictions: 85 % of the boxes found with
    10 % jitter and random scores, plus 5 false positives per image.

    Returns:
        ``(gt COCO json dict, COCO results list)``.
    """
    rng = np.random.default_rng(seed)
    images, anns, results = [], [], []
    for i in range(1, n_images + 1):
        images.append({"id": i, "width": size, "height": size, "file_name": f"{i:06d}.png"})
        xy = rng.uniform(0, size - 40, (boxes_per_image, 2))
        wh = rng.uniform(4, 40, (boxes_per_image, 2))
        cats = rng.integers(1, 3, boxes_per_image)
        found = rng.random(boxes_per_image) < 0.85
        jitter = rng.normal(0.0, 0.1, (boxes_per_image, 4)) * np.concatenate([wh, wh], 1)
        scores = rng.uniform(0.3, 1.0, boxes_per_image)
        for k in range(boxes_per_image):
            box = [*xy[k], *wh[k]]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(cats[k]),
                    "bbox": [float(v) for v in box],
                    "area": float(wh[k, 0] * wh[k, 1]),
                    "iscrowd": 0,
                }
            )
            if found[k]:
                pred = np.asarray(box) + jitter[k]
                pred[2:] = np.maximum(pred[2:], 1.0)
                results.append(
                    {
                        "image_id": i,
                        "category_id": int(cats[k]),
                        "bbox": [float(v) for v in pred],
                        "score": float(scores[k]),
                    }
                )
        for _ in range(5):
            results.append(
                {
                    "image_id": i,
                    "category_id": int(rng.integers(1, 3)),
                    "bbox": [
                        *map(float, rng.uniform(0, size - 40, 2)),
                        *map(float, rng.uniform(4, 40, 2)),
                    ],
                    "score": float(rng.uniform(0.0, 0.6)),
                }
            )
    categories = [{"id": 1, "name": "compact"}, {"id": 2, "name": "extended"}]
    return {"images": images, "annotations": anns, "categories": categories}, results


def bench_eval(
    *, n_images: int, boxes_per_image: int, repeats: int = 3, seed: int = 0
) -> dict[str, Any]:
    """faster-coco-eval against pycocotools through ``evaluate_coco`` on the same data.

    Args:
        n_images: images of synthetic ground truth.
        boxes_per_image: ground-truth boxes per image.
        repeats: timed rounds (both backends each round, alternating order).
        seed: seed of the synthetic data.
    """
    import faster_coco_eval  # noqa: F401  (imported before timing, as pycocotools below)
    import pycocotools.cocoeval  # noqa: F401

    from astrodet.evaluation import evaluate_coco

    gt, results = synthetic_coco(n_images=n_images, boxes_per_image=boxes_per_image, seed=seed)
    metrics: dict[str, dict] = {}

    def run(backend):
        metrics[backend] = evaluate_coco(gt=gt, results=results, backend=backend)

    times = time_interleaved(
        {b: (lambda b=b: run(b)) for b in ("pycocotools", "faster")},
        repeats=repeats,
        device=torch.device("cpu"),
        desc="eval",
    )
    med = {k: _median(v) for k, v in times.items()}
    ap50 = {b: metrics[b]["AP50"] for b in metrics}
    ap = {b: metrics[b]["AP"] for b in metrics}
    return {
        "n_images": n_images,
        "boxes_per_image": boxes_per_image,
        "n_detections": len(results),
        "pycocotools_seconds": med["pycocotools"],
        "faster_seconds": med["faster"],
        "speedup_vs_pycocotools": _ratio(med["pycocotools"], med["faster"]),
        "ap50_pycocotools": ap50["pycocotools"],
        "ap50_faster": ap50["faster"],
        "ap50_abs_diff": abs(ap50["faster"] - ap50["pycocotools"]),
        "ap_abs_diff": abs(ap["faster"] - ap["pycocotools"]),
        "seconds": times,
    }


# ----------------------------------------------------------------------------- GPU extras


def bench_gpu_features(
    *, device: torch.device, batch_size: int = 64, repeats: int = 3
) -> dict[str, Any]:
    """ViT-B/16 (random init) feature throughput at 224 px, fp32 against bf16 autocast."""
    from astrodet.zoo import build_trunk

    trunk = build_trunk("dino", weights="none").to(device).eval()
    x = torch.rand(batch_size, 3, 224, 224, device=device)

    def fp32():
        trunk.features(x)

    def bf16():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            trunk.features(x)

    fp32(), bf16()  # warm-up
    times = time_interleaved(
        {"fp32": fp32, "bf16": bf16}, repeats=repeats, device=device, desc="ViT-B/16 224"
    )
    med = {k: _median(v) for k, v in times.items()}
    return {
        "vit_b16_224_images_per_s_fp32": batch_size / med["fp32"],
        "vit_b16_224_images_per_s_bf16": batch_size / med["bf16"],
        "bf16_speedup_features": _ratio(med["fp32"], med["bf16"]),
        "batch_size": batch_size,
        "seconds": times,
    }


# ----------------------------------------------------------------------------- report


def _fmt(value: Any, spec: str = ".3g") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, spec)


def _params(n: int) -> str:
    return f"{n / 1e6:.1f}M"


def format_table(results: dict[str, Any]) -> str:
    """The Markdown table of a ``benchmark.json`` dict."""
    dev = results.get("device", {})
    where = dev.get("gpu") or f"{dev.get('cpu')} ({dev.get('torch_threads')} threads)"
    lines = [
        f"# Benchmark{' (--quick)' if results.get('quick') else ''}",
        "",
        f"{where}, torch {dev.get('torch')}; {results.get('wall_seconds', 0):.0f} s wall. "
        "Each figure is a ratio of medians of interleaved timings within this run.",
        "",
        "| part | figure | value | detail |",
        "|---|---|---|---|",
    ]
    row = lines.append
    f = results.get("features")
    if f:
        row(
            f"| features | pipeline overhead (probe.features / bare trunk) | "
            f"{_fmt(f['overhead_ratio'])}x | {f['model']} at {f['image_size']} px, "
            f"{f['n_images']} images from {f['native_size']} px, batch {f['batch_size']}: "
            f"{_fmt(f['images_per_s_pipeline'])} vs {_fmt(f['images_per_s_bare'])} images/s |"
        )
        row(
            f"| features | cache speedup (recompute / hit) | {_fmt(f['cache_speedup'])}x | "
            f"hit {_fmt(f['cache_hit_seconds'])} s, recompute {_fmt(f['recompute_seconds'])} s "
            f"(trunk build {_fmt(f['trunk_build_seconds'])} s not counted) |"
        )
    p = results.get("probe")
    if p:
        est = p.get("speedup_at_100_epochs_estimated")
        extra = f"; at 100 epochs about {_fmt(est)}x" if est is not None else ""
        row(
            f"| probe | speedup fast vs paper | {_fmt(p['speedup_fast_vs_paper'])}x | "
            f"{len(p['fractions'])} fractions x {len(p['seeds'])} seeds, {p['n_train']} x 768 "
            f"synthetic features: fast {_fmt(p['fast_seconds'])} s, paper "
            f"({p['paper_epochs']} epochs) {_fmt(p['paper_seconds'])} s{extra}; target >= 50x |"
        )
        row(
            f"| probe | macro F1 fast / paper | {p['macro_f1_fast']:.4f} / "
            f"{p['macro_f1_paper']:.4f} | fast - paper {p['macro_f1_fast_minus_paper']:+.4f} "
            f"(worst fraction {p['worst_fraction_f1_fast_minus_paper']:+.4f}); target >= -0.01 |"
        )
        if "speedup_logistic_vs_paper" in p:
            row(
                f"| probe | speedup logistic vs paper | "
                f"{_fmt(p['speedup_logistic_vs_paper'])}x | `--protocol logistic` "
                f"{_fmt(p['logistic_seconds'])} s, macro F1 {p['macro_f1_logistic']:.4f} |"
            )
    d = results.get("detection")
    if d:
        row(
            f"| detection | step time frozen / fine-tuned | "
            f"{_fmt(d['frozen_over_finetune_step_ratio'])} | geometric mean; batch "
            f"{d['batch_size']}, {d['iters']} timed iterations, random init"
            f"{' (tiny models)' if d.get('tiny') else ''} |"
        )
        for key, r in d["step_seconds"].items():
            if "error" in r:
                row(f"| detection | {key} | failed | {r['error']} |")
                continue
            tp = r["trainable_parameters"]
            bf16 = f"; bf16 step {_fmt(r['bf16_speedup'])}x faster" if "bf16_speedup" in r else ""
            row(
                f"| detection | {key}: s/iteration frozen / fine-tuned | "
                f"{_fmt(r['frozen'])} / {_fmt(r['finetune'])} ({_fmt(r['frozen_over_finetune'])}) | "
                f"trainable {_params(tp['frozen'])} / {_params(tp['finetune'])}; inference "
                f"{_fmt(r['inference_images_per_s'])} images/s{bf16} |"
            )
    e = results.get("eval")
    if e:
        row(
            f"| eval | faster-coco-eval speedup vs pycocotools | "
            f"{_fmt(e['speedup_vs_pycocotools'])}x | {e['n_images']} images x "
            f"{e['boxes_per_image']} boxes: {_fmt(e['faster_seconds'])} s vs "
            f"{_fmt(e['pycocotools_seconds'])} s |"
        )
        row(
            f"| eval | AP50 abs diff | {e['ap50_abs_diff']:.2g} | AP50 {e['ap50_faster']:.4f} "
            f"(faster) vs {e['ap50_pycocotools']:.4f}; target <= 1e-3 |"
        )
    g = results.get("gpu")
    if g:
        row(
            f"| gpu | ViT-B/16 224 px features, images/s fp32 / bf16 | "
            f"{_fmt(g['vit_b16_224_images_per_s_fp32'])} / "
            f"{_fmt(g['vit_b16_224_images_per_s_bf16'])} | bf16 "
            f"{_fmt(g['bf16_speedup_features'])}x; batch {g['batch_size']} |"
        )
    if d and "bf16_speedup" in d:
        row(f"| gpu | detection step fp32 / bf16 | {_fmt(d['bf16_speedup'])}x | fine-tuned |")
    if results.get("notes"):
        lines += ["", *[f"- {n}" for n in results["notes"]]]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- CLI


def _sections(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in SECTIONS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"--only {value!r}: unknown part(s) {', '.join(bad) or '(none)'}; "
            f"valid: {', '.join(SECTIONS)}"
        )
    return names


def _backbones(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [n for n in names if n not in BACKBONES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"--det-backbones {value!r}: unknown {', '.join(bad) or '(none)'}; "
            f"valid: {', '.join(BACKBONES)}"
        )
    return names


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {n}")
    return n


def _json_dict(value: str) -> dict:
    try:
        obj = json.loads(value)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return obj


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Speed ratios of the toolkit's parts (features, probe, detection, COCO "
        "evaluation), each measured within one run on one machine. --quick takes about 3-4 "
        "minutes on 2 CPU cores; the full run about 30-60 minutes on 2 CPU cores (mostly "
        "ViT-B and ResNet-50 detectors at 512 px and ViT-B features), a few minutes on a GPU.",
        epilog="Defaults written A/B are A for the full run and B for --quick.",
    )
    p.add_argument("--output", default="output/benchmark", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument(
        "--quick",
        action="store_true",
        help="smaller settings: ResNet-18 features on 32 images, 4000 probe vectors with 20 "
        "paper epochs, detectors at 224 px only with batch 1 (defaults below: full/quick)",
    )
    p.add_argument(
        "--only",
        type=_sections,
        default=list(SECTIONS),
        help=f"comma-separated parts to run (default all: {','.join(SECTIONS)})",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda")
    p.add_argument("--repeats", type=_positive, default=None, help="timed rounds (3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    p.add_argument(
        "--threads",
        type=_positive,
        default=None,
        help="torch CPU threads (default: torch's choice, usually one per core)",
    )
    g = p.add_argument_group("features")
    g.add_argument(
        "--feature-model", default=None, help="zoo trunk, random init (full dino, quick resnet18)"
    )
    g.add_argument("--feature-images", type=_positive, default=None, help="images (128/32)")
    g.add_argument("--feature-batch-size", type=_positive, default=None, help="batch (32/16)")
    g.add_argument("--feature-image-size", type=_positive, default=224, help="input px (224)")
    g.add_argument("--feature-model-kwargs", type=_json_dict, default=None, help=argparse.SUPPRESS)
    g = p.add_argument_group("probe")
    g.add_argument("--probe-train", type=_positive, default=None, help="train vectors (8000/4000)")
    g.add_argument("--probe-test", type=_positive, default=None, help="test vectors (2000/1000)")
    g.add_argument("--probe-epochs", type=_positive, default=None, help="paper epochs (100/20)")
    g.add_argument(
        "--probe-fractions",
        type=float,
        nargs="+",
        default=[0.1, 0.3, 0.5, 1.0],
        help="label fractions (0.1 0.3 0.5 1.0)",
    )
    g.add_argument("--probe-seeds", type=_positive, default=3, help="seeds per fraction (3)")
    g = p.add_argument_group("detection")
    g.add_argument(
        "--det-backbones",
        type=_backbones,
        default=list(BACKBONES),
        help=f"comma-separated ({','.join(BACKBONES)})",
    )
    g.add_argument(
        "--det-sizes", type=_positive, nargs="+", default=None, help="input px (224 512/224)"
    )
    g.add_argument("--det-batch", type=_positive, default=None, help="images per iteration (2/1)")
    g.add_argument("--det-warmup", type=int, default=None, help="untimed iterations (1)")
    g.add_argument("--det-iters", type=_positive, default=None, help="timed iterations (3/2)")
    g.add_argument("--det-tiny", action="store_true", help=argparse.SUPPRESS)
    g = p.add_argument_group("eval")
    g.add_argument("--eval-images", type=_positive, default=None, help="images (1000)")
    g.add_argument("--eval-boxes", type=_positive, default=None, help="boxes per image (30)")
    return p


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    preset = PRESETS["quick" if args.quick else "full"]
    out = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in preset.items()}
    out.update(
        feature_image_size=args.feature_image_size,
        feature_model_kwargs=args.feature_model_kwargs,
        probe_fractions=args.probe_fractions,
        probe_seeds=args.probe_seeds,
        det_backbones=args.det_backbones,
        det_tiny=args.det_tiny,
        only=args.only,
        seed=args.seed,
    )
    for f in out["probe_fractions"]:
        if not 0.0 < f <= 1.0:
            raise ValueError(f"--probe-fractions: {f} is not in (0, 1]")
    return out


def _notes(s: dict[str, Any], results: dict[str, Any], quick: bool) -> list[str]:
    notes = []
    if quick:
        notes.append(
            "--quick: features with "
            f"{s['feature_model']} on {s['feature_images']} images; probe on {s['probe_train']} "
            f"training vectors with {s['probe_epochs']} paper epochs (not 8000 x 100); "
            f"detection at {'/'.join(map(str, s['det_sizes']))} px, batch {s['det_batch']}, "
            f"{s['det_iters']} timed iterations. Ratios differ from the full run's."
        )
    if "probe" in results:
        notes.append(
            "probe features are synthetic (Gaussian class clusters in 768-d, not a trunk's)."
        )
    if "detection" in results:
        notes.append(
            "detectors are randomly initialised (weights none); the time per iteration does "
            "not depend on the weights."
        )
    if "features" in results:
        notes.append("all trunks are randomly initialised (weights none).")
    return notes


def run_benchmark(
    *, settings: dict[str, Any], output: Path, device: torch.device, quick: bool
) -> dict[str, Any]:
    """Run the chosen parts, writing ``benchmark.json`` after each.

    Args:
        settings: resolved settings (:func:`_settings`).
        output: the (prepared) output folder.
        device: where models run.
        quick: whether these are the --quick settings (recorded).
    """
    s = settings
    start = time.perf_counter()
    results: dict[str, Any] = {
        "version": 1,
        "quick": quick,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device_info(device),
        "settings": s,
    }

    def save():
        results["wall_seconds"] = time.perf_counter() - start
        results["notes"] = _notes(s, results, quick)
        atomic_write_json(output / "benchmark.json", results)

    runners: dict[str, Callable[[], dict]] = {
        "features": lambda: bench_features(
            model=s["feature_model"],
            n_images=s["feature_images"],
            batch_size=s["feature_batch_size"],
            image_size=s["feature_image_size"],
            repeats=s["repeats"],
            device=device,
            model_kwargs=s["feature_model_kwargs"],
        ),
        "probe": lambda: bench_probe(
            n_train=s["probe_train"],
            n_test=s["probe_test"],
            epochs=s["probe_epochs"],
            fractions=s["probe_fractions"],
            seeds=range(s["probe_seeds"]),
            device=device,
            seed=s["seed"],
        ),
        "detection": lambda: bench_detection(
            backbones=s["det_backbones"],
            sizes=s["det_sizes"],
            batch_size=s["det_batch"],
            warmup=s["det_warmup"],
            iters=s["det_iters"],
            device=device,
            tiny=s["det_tiny"],
            seed=s["seed"],
        ),
        "eval": lambda: bench_eval(
            n_images=s["eval_images"],
            boxes_per_image=s["eval_boxes"],
            repeats=s["repeats"],
            seed=s["seed"],
        ),
    }
    parts = [(name, runners[name]) for name in SECTIONS if name in s["only"]]
    if device.type == "cuda" and ("features" in s["only"] or "detection" in s["only"]):
        parts.append(("gpu", lambda: bench_gpu_features(device=device, repeats=s["repeats"])))
    for name, fn in tqdm(parts, desc="benchmark", unit="part"):
        logger.info("[%s] start", name)
        t0 = time.perf_counter()
        results[name] = fn()
        _release(device)
        logger.info("[%s] done in %.1f s", name, time.perf_counter() - t0)
        save()
    with contextlib.suppress(AttributeError, OSError):
        results["device"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    save()
    return results


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)  # callers in the same process keep their setting


def _run(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
        device = resolve_device(args.device)
        output = prepare_output_dir(args.output, overwrite=args.overwrite)
    except (ValueError, FileExistsError) as e:
        logger.error("%s", e)
        return 1
    results = run_benchmark(settings=settings, output=output, device=device, quick=args.quick)
    table = format_table(results)
    atomic_write_text(output / "benchmark.md", table)
    print(table)
    logger.info("wrote %s and %s", output / "benchmark.json", output / "benchmark.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
