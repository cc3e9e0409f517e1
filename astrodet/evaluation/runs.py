"""Detection runs as a table: every run folder's ``config.yaml`` and ``metrics.json`` in one
row, mAP@50 summarised per data set x backbone x frozen/fine-tuned x label fraction (mean
and min/max over seeds), and the paper's Figure 4 (mAP@50 per backbone, frozen against
fine-tuned, one panel per data set). ``tools/report.py`` is the command line."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from astrodet.utils import atomic_save_figure, atomic_write_text, error_bars

__all__ = [
    "COLUMNS",
    "collect_runs",
    "find_runs",
    "plot_figure4",
    "read_run",
    "summarize",
    "summary_markdown",
    "write_runs_csv",
]

COLUMNS = ("run", "dataset", "backbone", "mode", "fraction", "seed", "max_iter", "epochs",
           "complete", "bbox/AP50", "bbox/AP", "bbox/AP75")  # fmt: skip
METRICS = ("bbox/AP50", "bbox/AP", "bbox/AP75")
# the paper's order of backbones, where present
_ORDER = ("mae", "dino", "dinov2", "msn", "resnet50", "resnet18")
_MODES = ("frozen", "fine-tuned")


def find_runs(roots: Iterable[str | os.PathLike]) -> list[Path]:
    """Run folders (holding ``config.yaml``) under ``roots``, sorted."""
    found = set()
    for root in map(Path, roots):
        if not root.exists():
            raise FileNotFoundError(f"{root} does not exist")
        found.update(p.parent for p in root.rglob("config.yaml"))
    return sorted(found)


def _get(cfg, dotted: str, default=None):
    node = cfg
    for part in dotted.split("."):
        if not hasattr(node, "get") or part not in node:
            return default
        node = node[part]
    return node


def _dataset(cfg) -> str:
    """The training set's name: its catalogue name (``mgcls_train`` -> ``mgcls``), else the
    folder above its split folder, else the simulated kind."""
    ds = _get(cfg, "dataloader.train.dataset")
    name = _get(ds, "dataset_name")
    if name:
        return str(name).removesuffix("_train")
    json_file = _get(ds, "json_file")
    if json_file:
        return Path(str(json_file)).parent.parent.name
    kind = _get(ds, "kind")
    return f"synthetic_{kind}" if kind else "unknown"


def read_run(run_dir: str | os.PathLike) -> dict:
    """One row of :data:`COLUMNS` from a run folder.

    ``mode`` is ``frozen`` or ``fine-tuned`` (``model.backbone.freeze``); a backbone with
    ``weights=none`` is labelled ``(random init)``; ``complete`` says whether the metrics are
    the run's final ones.

    Raises:
        FileNotFoundError: the folder has no ``metrics.json``.
    """
    from astrodet.config import LazyConfig
    from astrodet.sweep.state import run_finished

    run_dir = Path(run_dir)
    path = run_dir / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (the run has not been evaluated)")
    metrics = json.loads(path.read_text())
    cfg = LazyConfig.load(run_dir / "config.yaml")
    backbone = str(_get(cfg, "model.backbone.trunk", "unknown"))
    if str(_get(cfg, "model.backbone.weights", "")).lower() == "none":
        backbone += " (random init)"
    freeze = _get(cfg, "model.backbone.freeze", "none")
    row = {
        "run": str(run_dir),
        "dataset": _dataset(cfg),
        "backbone": backbone,
        "mode": "fine-tuned" if str(freeze).lower() == "none" else "frozen",
        "fraction": float(_get(cfg, "dataloader.train.fraction", 1.0) or 1.0),
        "seed": _get(cfg, "train.seed"),
        "max_iter": _get(cfg, "train.max_iter"),
        "epochs": _get(cfg, "train.epochs"),
        "complete": run_finished(run_dir),
    }
    for key in METRICS:
        value = metrics.get(key)
        row[key] = None if value is None else float(value)
    return row


def collect_runs(roots: Iterable[str | os.PathLike]) -> tuple[list[dict], dict[str, str]]:
    """Rows of every run folder under ``roots``, and the folders left out with the reason."""
    rows, skipped = [], {}
    for run_dir in find_runs(roots):
        try:
            rows.append(read_run(run_dir))
        except (FileNotFoundError, ValueError, json.JSONDecodeError) as e:
            skipped[str(run_dir)] = str(e)
    return rows, skipped


def write_runs_csv(rows: Sequence[dict], path: str | os.PathLike) -> Path:
    """All rows as CSV (empty cells for missing values), written atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in COLUMNS})
    return atomic_write_text(path, buf.getvalue())


def _backbone_key(name: str) -> tuple:
    base = name.split(" ")[0]
    return (_ORDER.index(base) if base in _ORDER else len(_ORDER), name)


def summarize(rows: Sequence[dict], metric: str = "bbox/AP50") -> list[dict]:
    """``metric`` per (dataset, backbone, mode, fraction) over the complete runs (seeds):
    ``{"dataset", "backbone", "mode", "fraction", "n", "mean", "min", "max", "seeds"}``,
    sorted in the paper's backbone order. Runs whose metric is undefined are left out."""
    groups: dict[tuple, list[tuple]] = {}
    for r in rows:
        value = r.get(metric)
        if not r.get("complete") or value is None or not math.isfinite(value):
            continue
        key = (r["dataset"], r["backbone"], r["mode"], float(r["fraction"]))
        groups.setdefault(key, []).append((value, r.get("seed")))
    out = []
    for (dataset, backbone, mode, fraction), values in groups.items():
        v = np.asarray([x for x, _ in values], dtype=float)
        out.append(
            dict(
                dataset=dataset,
                backbone=backbone,
                mode=mode,
                fraction=fraction,
                n=len(v),
                mean=float(v.mean()),
                min=float(v.min()),
                max=float(v.max()),
                seeds=sorted(str(s) for _, s in values),
            )  # fmt: skip
        )
    out.sort(key=lambda s: (s["dataset"], _backbone_key(s["backbone"]),
                            _MODES.index(s["mode"]), s["fraction"]))  # fmt: skip
    return out


def summary_markdown(summary: Sequence[dict], *, metric: str = "bbox/AP50", digits: int = 3) -> str:
    """One table per data set: rows backbone x frozen/fine-tuned, columns label fractions,
    cells ``mean [min, max] (n)`` over seeds."""
    blocks = []
    for dataset in dict.fromkeys(s["dataset"] for s in summary):
        rows = [s for s in summary if s["dataset"] == dataset]
        fractions = sorted({s["fraction"] for s in rows})
        cells = {(s["backbone"], s["mode"], s["fraction"]): s for s in rows}
        lines = [
            f"### {dataset}: {metric}, mean [min, max] (runs) over seeds",
            "",
            "| backbone | mode | " + " | ".join(f"{100 * f:g} %" for f in fractions) + " |",
            "|---|---|" + "---|" * len(fractions),
        ]
        for backbone, mode in dict.fromkeys((s["backbone"], s["mode"]) for s in rows):
            row = []
            for f in fractions:
                s = cells.get((backbone, mode, f))
                row.append(
                    "" if s is None else
                    f"{s['mean']:.{digits}f} [{s['min']:.{digits}f}, {s['max']:.{digits}f}] ({s['n']})"
                )  # fmt: skip
            lines.append(f"| {backbone} | {mode} | " + " | ".join(row) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def plot_figure4(
    summary: Sequence[dict],
    path: str | os.PathLike,
    *,
    fraction: float | None = None,
    metric: str = "bbox/AP50",
) -> Path:
    """The paper's Figure 4: ``metric`` per backbone, frozen and fine-tuned bars side by
    side with min/max over seeds, one panel per data set; saves a PNG atomically.

    Args:
        summary: from :func:`summarize`.
        path: the PNG.
        fraction: the label fraction drawn (default: each data set's largest).

    Raises:
        ValueError: nothing to draw.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(s["dataset"] for s in summary))
    if not datasets:
        raise ValueError("no complete runs with a defined mAP@50 to draw")
    n_backbones = max(len({s["backbone"] for s in summary if s["dataset"] == d}) for d in datasets)
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(len(datasets) * (2.2 + 1.1 * n_backbones), 4.2), squeeze=False
    )
    colours = {"frozen": "#4c72b0", "fine-tuned": "#dd8452"}
    for ax, dataset in zip(axes[0], datasets):
        rows = [s for s in summary if s["dataset"] == dataset]
        f = fraction if fraction is not None else max(s["fraction"] for s in rows)
        rows = [s for s in rows if math.isclose(s["fraction"], f)]
        backbones = sorted({s["backbone"] for s in rows}, key=_backbone_key)
        x = np.arange(len(backbones))
        width = 0.38
        for i, mode in enumerate(_MODES):
            cells = {s["backbone"]: s for s in rows if s["mode"] == mode}
            have = [j for j, b in enumerate(backbones) if b in cells]
            if not have:
                continue
            mean = np.array([cells[backbones[j]]["mean"] for j in have])
            lo = np.array([cells[backbones[j]]["min"] for j in have])
            hi = np.array([cells[backbones[j]]["max"] for j in have])
            ax.bar(x[have] + (i - 0.5) * width, mean, width, label=mode, color=colours[mode],
                   yerr=error_bars(mean, lo, hi), capsize=3)  # fmt: skip
        ax.set_xticks(x, [b.replace(" (", "\n(") for b in backbones], fontsize=8)
        ax.set_xlim(-0.75, len(backbones) - 0.25)
        ax.set_title(f"{dataset} ({100 * f:g} % of labels)")
        ax.set_ylabel("mAP@50 (test)")
        ax.set_ylim(0, max(1e-3, ax.get_ylim()[1]))
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return atomic_save_figure(fig, path, dpi=150)
