"""Probe protocols (fast, logistic) against the paper protocol over label fractions x seeds."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .common import fmt, median, quiet, ratio, sync

PROBE_PROTOCOLS = ("fast", "logistic", "paper")
# Between-class spread of the synthetic probe features (in units of the mean within-class
# standard deviation): linear probes reach macro F1 ~0.75 at 10 % and ~0.9 at 100 % of
# 8000 labels, like foundation-model features on GalaxyMNIST.
PROBE_SEPARATION = 0.055
PAPER_EPOCHS = 100


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
    fractions=(0.1, 0.3, 0.5, 1.0),
    seeds=(0, 1, 2),
    device: torch.device,
    seed: int = 0,
) -> dict[str, Any]:
    """``--protocol fast`` and ``logistic`` against ``--protocol paper`` over label
    fractions x seeds.

    Each (fraction, seed) trains the three heads on the same subset with
    ``probe.heads.fit_predict`` (what ``probe.linear`` runs per entry), rotating which goes
    first. The paper protocol always runs its :data:`PAPER_EPOCHS` epochs: a figure under the
    paper's name is measured with the paper's protocol, never scaled from a shorter run (a
    quicker benchmark uses fewer vectors instead).

    Args:
        n_train, n_test: feature vectors in the training and the fixed test split.
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
    with quiet("probe"):
        for i, (fraction, s) in enumerate(tqdm(jobs, desc="probe", unit="run", leave=False)):
            idx, _ = fraction_indices(train_y, fraction, s)
            run: dict[str, Any] = {"fraction": fraction, "seed": s, "n_train": len(idx)}
            # rotate the order so that no protocol always runs on a warm cache
            for protocol in PROBE_PROTOCOLS[i % 3 :] + PROBE_PROTOCOLS[: i % 3]:
                sync(device)
                start = time.perf_counter()
                pred, _ = fit_predict(
                    train_x[idx],
                    train_y[idx],
                    test_x,
                    num_classes=num_classes,
                    protocol=protocol,
                    balanced=balanced,
                    seed=s,
                    epochs=PAPER_EPOCHS,
                    device=str(device),
                )
                sync(device)
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
        "paper_epochs": PAPER_EPOCHS,
        "fast_seconds": fast_s,
        "paper_seconds": paper_s,
        "speedup_fast_vs_paper": ratio(paper_s, fast_s),
        "median_run_speedup": median([ratio(r["paper_seconds"], r["fast_seconds"]) for r in runs]),
        "macro_f1_fast": f1_fast,
        "macro_f1_paper": f1_paper,
        "macro_f1_fast_minus_paper": f1_fast - f1_paper,
        "logistic_seconds": logistic_s,
        "speedup_logistic_vs_paper": ratio(paper_s, logistic_s),
        "macro_f1_logistic": f1["logistic"],
        "worst_fraction_f1_fast_minus_paper": min(
            v["macro_f1_fast"] - v["macro_f1_paper"] for v in per_fraction.values()
        ),
        "per_fraction": per_fraction,
        "runs": runs,
    }
    return out


def run(s: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The part with the benchmark's resolved settings ``s``."""
    return bench_probe(
        n_train=s["probe_train"],
        n_test=s["probe_test"],
        fractions=s["probe_fractions"],
        seeds=range(s["probe_seeds"]),
        device=device,
        seed=s["seed"],
    )


def rows(results: dict[str, Any]) -> list[str]:
    """Rows of the Markdown table for this part of a ``benchmark.json`` dict."""
    p = results.get("probe")
    if not p:
        return []
    out = [
        f"| probe | speedup fast vs paper | {fmt(p['speedup_fast_vs_paper'])}x | "
        f"{len(p['fractions'])} fractions x {len(p['seeds'])} seeds, {p['n_train']} x 768 "
        f"synthetic features: fast {fmt(p['fast_seconds'])} s, paper "
        f"({p['paper_epochs']} epochs) {fmt(p['paper_seconds'])} s; target >= 50x |",
        f"| probe | macro F1 fast / paper | {p['macro_f1_fast']:.4f} / "
        f"{p['macro_f1_paper']:.4f} | fast - paper {p['macro_f1_fast_minus_paper']:+.4f} "
        f"(worst fraction {p['worst_fraction_f1_fast_minus_paper']:+.4f}); target >= -0.01 |",
    ]
    if "speedup_logistic_vs_paper" in p:
        out.append(
            f"| probe | speedup logistic vs paper | "
            f"{fmt(p['speedup_logistic_vs_paper'])}x | `--protocol logistic` "
            f"{fmt(p['logistic_seconds'])} s, macro F1 {p['macro_f1_logistic']:.4f} |"
        )
    return out
