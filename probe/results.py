"""The results format shared by ``probe.linear`` and ``probe.supervised``.

``OUTPUT/results.json``::

    {"dataset", "protocol", "head", "class_names", "settings": {...},
     "runs": [{"model", "fraction", "seed", "n_train", "macro_f1", "accuracy",
               "per_class_f1", "confusion_matrix", "predictions", ...}, ...],
     "summary": [{"model", "fraction", "n_runs", "n_train",
                  "macro_f1": {"mean", "min", "max"}, "accuracy": {"mean", "min", "max"}}]}

``predictions`` is the path, relative to OUTPUT, of a CSV ``index,y_true,y_pred`` over the
fixed test split, from which every number can be recomputed. ``OUTPUT/results.csv`` holds
one row per run.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from astrodet.evaluation.classification import classification_metrics
from astrodet.utils import atomic_write_json, atomic_write_text

__all__ = [
    "load_results",
    "make_run",
    "predictions_path",
    "read_predictions",
    "summarize",
    "write_predictions",
    "write_results",
]

RUN_KEYS = ("model", "fraction", "seed", "n_train", "macro_f1", "accuracy", "predictions")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def predictions_path(model: str, fraction: float, seed: int) -> str:
    """Relative path of a run's predictions CSV: ``predictions/<model>/f<fraction>_s<seed>.csv``."""
    return f"predictions/{_safe(model)}/f{fraction:g}_s{seed}.csv"


def write_predictions(path: str | os.PathLike, y_true, y_pred) -> None:
    """Write ``index,y_true,y_pred`` atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", "y_true", "y_pred"])
    for i, (t, p) in enumerate(zip(np.asarray(y_true).tolist(), np.asarray(y_pred).tolist())):
        w.writerow([i, int(t), int(p)])
    atomic_write_text(path, buf.getvalue())


def read_predictions(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a predictions CSV back as (y_true, y_pred)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and set(rows[0]) != {"index", "y_true", "y_pred"}:
        raise ValueError(f"{path}: expected columns index,y_true,y_pred, got {list(rows[0])}")
    return (
        np.asarray([int(r["y_true"]) for r in rows], dtype=np.int64),
        np.asarray([int(r["y_pred"]) for r in rows], dtype=np.int64),
    )


def make_run(
    *,
    output: str | os.PathLike,
    model: str,
    fraction: float,
    seed: int,
    n_train: int,
    y_true,
    y_pred,
    num_classes: int,
    **extra,
) -> dict:
    """Write a run's predictions CSV under ``output`` and return its results entry."""
    rel = predictions_path(model, fraction, seed)
    write_predictions(Path(output) / rel, y_true, y_pred)
    metrics = classification_metrics(y_true, y_pred, num_classes=num_classes)
    return {
        "model": model,
        "fraction": float(fraction),
        "seed": int(seed),
        "n_train": int(n_train),
        **metrics,
        "predictions": rel,
        **extra,
    }


def _stats(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())}


def summarize(runs: list[dict]) -> list[dict]:
    """Mean, min and max of macro F1 and accuracy over seeds, per model and fraction."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["model"], float(r["fraction"])), []).append(r)
    out = []
    for (model, fraction), rs in groups.items():
        out.append(
            {
                "model": model,
                "fraction": fraction,
                "n_runs": len(rs),
                "seeds": sorted(int(r["seed"]) for r in rs),
                "n_train": int(round(np.mean([r["n_train"] for r in rs]))),
                "macro_f1": _stats([r["macro_f1"] for r in rs]),
                "accuracy": _stats([r["accuracy"] for r in rs]),
            }
        )
    return out


def write_results(
    output: str | os.PathLike,
    *,
    dataset: str,
    protocol: str,
    head: str,
    class_names: list[str],
    runs: list[dict],
    settings: dict | None = None,
) -> Path:
    """Write ``results.json`` and ``results.csv`` into ``output``; returns the json path."""
    output = Path(output)
    runs = sorted(runs, key=lambda r: (r["model"], r["fraction"], r["seed"]))
    results = {
        "dataset": dataset,
        "protocol": protocol,
        "head": head,
        "class_names": list(class_names),
        "settings": settings or {},
        "runs": runs,
        "summary": summarize(runs),
    }
    path = atomic_write_json(output / "results.json", results)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(RUN_KEYS))
    for r in runs:
        w.writerow([r[k] for k in RUN_KEYS])
    atomic_write_text(output / "results.csv", buf.getvalue())
    return path


def load_results(path: str | os.PathLike) -> dict:
    """Read a ``results.json``, checking the keys the report needs."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"results file {path} not found") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    for key in ("dataset", "protocol", "runs"):
        if key not in results:
            raise ValueError(f"{path}: missing key {key!r}")
    for i, r in enumerate(results["runs"]):
        missing = [k for k in ("model", "fraction", "seed", "macro_f1") if k not in r]
        if missing:
            raise ValueError(f"{path}: run {i} lacks {missing}")
    return results
