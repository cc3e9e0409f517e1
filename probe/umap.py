"""Pictures of feature space: PCA to 10 components, then UMAP to 2-D, coloured by class,
one panel per model (the paper's Figure 2).

``python -m probe.umap --model mae dino dinov2 msn --dataset gmnist``
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np

from astrodet.utils import atomic_save_figure, atomic_write_json

from .datasets import check_dataset, is_unbalanced, load_split
from .features import add_feature_args, dataset_arg, extract_splits, feature_options, setup_logging

logger = logging.getLogger(__name__)

__all__ = ["balanced_sample", "embed", "main", "plot_embeddings", "umap_grid"]


def balanced_sample(labels: np.ndarray, n: int | None, *, balanced: bool, seed: int = 0):
    """Indices of a random sample of at most ``n`` points; with ``balanced``, the same number
    from every class (as many as the smallest class allows, up to ``n / K``)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    if balanced:
        classes = np.unique(labels)
        per_class = min(np.bincount(labels)[classes].min(), (n or len(labels)) // len(classes))
        per_class = max(per_class, 1)
        idx = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in classes]
        return np.sort(np.concatenate(idx))
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    return np.sort(rng.choice(len(labels), size=n, replace=False))


def embed(features: np.ndarray, *, n_pca: int = 10, seed: int = 0, n_neighbors: int = 15):
    """PCA to ``n_pca`` components (fewer when there are fewer points or dimensions), then
    UMAP to 2-D; returns (N, 2)."""
    import umap
    from sklearn.decomposition import PCA

    n = len(features)
    if n < 4:
        raise ValueError(f"UMAP needs at least 4 points, got {n}")
    k = min(n_pca, features.shape[1], n - 1)
    reduced = PCA(n_components=k, random_state=seed).fit_transform(features.astype(np.float64))
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(n_neighbors, n - 1),
        random_state=seed,
        init="spectral" if n > 10 else "random",
        n_jobs=1,  # a seeded UMAP runs on one thread anyway
    )
    return reducer.fit_transform(reduced).astype(np.float32)


def plot_embeddings(
    panels: list[tuple[str, np.ndarray, np.ndarray]],
    class_names: list[str],
    path: str | os.PathLike,
    *,
    title: str | None = None,
) -> Path:
    """One scatter panel per (title, embedding (N, 2), labels); a shared class legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(len(panels), 4)
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (name, xy, labels) in zip(axes.flat, panels):
        for c, cname in enumerate(class_names):
            m = labels == c
            if m.any():
                ax.scatter(xy[m, 0], xy[m, 1], s=6, color=cmap(c), label=cname, alpha=0.8)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(class_names), 6), markerscale=3)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97 if title else 1))
    return atomic_save_figure(fig, path, dpi=130)


def umap_grid(
    *,
    models: list[str],
    dataset: str,
    split: str = "train",
    sample: int | None = 2000,
    seed: int = 0,
    output: str | os.PathLike | None = None,
    **feature_kwargs,
) -> Path:
    """PCA(10) + UMAP of each model's cached features; one PNG with a panel per model.

    Args:
        models: zoo model names.
        dataset: probe data set name.
        split: which split's features to draw.
        sample: at most this many points (class-balanced on unbalanced sets).
        seed: seed of the sample, PCA and UMAP.
        output: folder (default ``output/probe/<dataset>``); writes ``umap_<split>.png``
            and the 2-D coordinates as ``umap_<split>.json``.
        **feature_kwargs: passed to :func:`probe.features.extract_splits`.

    Returns:
        the PNG path.
    """
    dataset = check_dataset(dataset)
    output = Path(output or Path("output") / "probe" / dataset)
    class_names = load_split(
        dataset, split, label_scheme=feature_kwargs.get("label_scheme")
    ).class_names
    panels, coords = [], {}
    for model in models:
        feats, labels = extract_splits(
            model=model, dataset=dataset, splits=(split,), **feature_kwargs
        )[split]
        idx = balanced_sample(
            labels, sample, balanced=is_unbalanced(labels, len(class_names)), seed=seed
        )
        xy = embed(feats[idx], seed=seed)
        panels.append((model, xy, labels[idx]))
        coords[model] = {"index": idx.tolist(), "label": labels[idx].tolist(), "xy": xy.tolist()}
        logger.info("%s: embedded %d points", model, len(idx))
    atomic_write_json(output / f"umap_{split}.json", coords, indent=None)
    return plot_embeddings(
        panels, class_names, output / f"umap_{split}.png", title=f"{dataset} ({split})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m probe.umap",
        description="PCA(10) + UMAP pictures of frozen features, one panel per model.",
    )
    add_feature_args(parser, multi_model=True)
    dataset_arg(parser)
    parser.add_argument("--split", choices=("train", "test"), default="train")
    parser.add_argument("--sample", type=int, default=2000, help="at most N points (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="folder (default output/probe/<dataset>)")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        path = umap_grid(
            models=args.model,
            dataset=args.dataset,
            split=args.split,
            sample=args.sample,
            seed=args.seed,
            output=args.output,
            **feature_options(args),
        )
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        logger.error("%s", e)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
