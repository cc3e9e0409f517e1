"""Probe feature extraction against the bare trunk forward; feature cache hit against recomputing."""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from typing import Any
from unittest import mock

import torch

from .common import fmt, median, quiet, ratio, time_interleaved

BENCH_DATASET = "benchmark_galaxies"


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
        quiet("probe"),
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
    med = {k: median(v) for k, v in times.items()}
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
        "overhead_ratio": ratio(med["pipeline"], med["bare"]),
        "cache_hit_seconds": med["cache_hit"],
        "recompute_seconds": med["pipeline"],
        "cache_speedup": ratio(med["pipeline"], med["cache_hit"]),
        "trunk_build_seconds": build_seconds[0] if build_seconds else None,
        "seconds": times,
    }
    return out


def run(s: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The part with the benchmark's resolved settings ``s``."""
    return bench_features(
        model=s["feature_model"],
        n_images=s["feature_images"],
        batch_size=s["feature_batch_size"],
        image_size=s["feature_image_size"],
        repeats=s["repeats"],
        device=device,
        model_kwargs=s["feature_model_kwargs"],
    )


def rows(results: dict[str, Any]) -> list[str]:
    """Rows of the Markdown table for this part of a ``benchmark.json`` dict."""
    f = results.get("features")
    if not f:
        return []
    return [
        f"| features | pipeline overhead (probe.features / bare trunk) | "
        f"{fmt(f['overhead_ratio'])}x | {f['model']} at {f['image_size']} px, "
        f"{f['n_images']} images from {f['native_size']} px, batch {f['batch_size']}: "
        f"{fmt(f['images_per_s_pipeline'])} vs {fmt(f['images_per_s_bare'])} images/s |",
        f"| features | cache speedup (recompute / hit) | {fmt(f['cache_speedup'])}x | "
        f"hit {fmt(f['cache_hit_seconds'])} s, recompute {fmt(f['recompute_seconds'])} s "
        f"(trunk build {fmt(f['trunk_build_seconds'])} s not counted) |",
    ]
