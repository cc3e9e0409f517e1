"""Macro F1 against label fraction from one or more ``results.json``: the paper's Figure 3
(one line per model with min/max error bars, supervised baselines dashed) and a Markdown
table of mean [min, max].

``python -m probe.report output/probe/gmnist/results.json output/probe/gmnist_supervised_resnet18/results.json``
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np

from astrodet.utils import atomic_save_figure, atomic_write_text, error_bars

from .results import load_results

logger = logging.getLogger(__name__)

__all__ = ["collect", "main", "make_report", "markdown_table", "plot_f1_vs_fraction"]


def _label(results: dict, model: str, protocols: set[str]) -> str:
    protocol = results["protocol"]
    if protocol == "supervised":
        return f"{model} (supervised)"
    head = results.get("head") or "linear"
    if len(protocols - {"supervised"}) > 1 or head != "linear":
        return f"{model} ({head}, {protocol})"
    return model


def collect(results_list: list[dict]) -> list[dict]:
    """One series per (results file, model): fractions and macro F1 mean/min/max from the runs.

    Returns:
        list of ``{"dataset", "label", "supervised", "fractions", "mean", "min", "max"}``.
    """
    protocols = {r["protocol"] for r in results_list}
    series = []
    for results in results_list:
        by_model: dict[str, dict[float, list[float]]] = {}
        for run in results["runs"]:
            by_model.setdefault(run["model"], {}).setdefault(float(run["fraction"]), []).append(
                float(run["macro_f1"])
            )
        for model, per_fraction in by_model.items():
            fr = sorted(per_fraction)
            series.append(
                {
                    "dataset": results["dataset"],
                    "label": _label(results, model, protocols),
                    "supervised": results["protocol"] == "supervised",
                    "fractions": fr,
                    "mean": [float(np.mean(per_fraction[f])) for f in fr],
                    "min": [float(np.min(per_fraction[f])) for f in fr],
                    "max": [float(np.max(per_fraction[f])) for f in fr],
                    "n": [len(per_fraction[f]) for f in fr],
                }
            )
    return series


def markdown_table(series: list[dict], *, digits: int = 3) -> str:
    """Markdown table per data set: rows are models, columns label fractions, cells
    ``mean [min, max]`` of macro F1."""
    blocks = []
    for dataset in dict.fromkeys(s["dataset"] for s in series):
        rows = [s for s in series if s["dataset"] == dataset]
        fractions = sorted({f for s in rows for f in s["fractions"]})
        head = "| model | " + " | ".join(f"{100 * f:g} %" for f in fractions) + " |"
        sep = "|---|" + "---|" * len(fractions)
        lines = [f"### {dataset}: macro F1, mean [min, max] over seeds", "", head, sep]
        for s in rows:
            cells = []
            for f in fractions:
                if f in s["fractions"]:
                    i = s["fractions"].index(f)
                    cells.append(
                        f"{s['mean'][i]:.{digits}f} [{s['min'][i]:.{digits}f}, "
                        f"{s['max'][i]:.{digits}f}]"
                    )
                else:
                    cells.append("-")
            lines.append(f"| {s['label']} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def plot_f1_vs_fraction(series: list[dict], path: str | os.PathLike) -> Path:
    """Draw macro F1 against label fraction (percent), one panel per data set; saves a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(s["dataset"] for s in series))
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(5.5 * len(datasets), 4.2), squeeze=False, sharey=True
    )
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, dataset in zip(axes[0], datasets):
        rows = [s for s in series if s["dataset"] == dataset]
        for i, s in enumerate(rows):
            x = 100 * np.asarray(s["fractions"])
            mean = np.asarray(s["mean"])
            yerr = error_bars(mean, s["min"], s["max"])
            ax.errorbar(
                x,
                mean,
                yerr=yerr,
                label=s["label"],
                color="black" if s["supervised"] else colours[i % len(colours)],
                linestyle="--" if s["supervised"] else "-",
                marker="o",
                markersize=4,
                capsize=3,
            )
        ax.set_title(dataset)
        ax.set_xlabel("labelled training data (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("macro F1 (test)")
    fig.tight_layout()
    return atomic_save_figure(fig, path, dpi=150)


def make_report(
    results_paths: list[str | os.PathLike], *, output: str | os.PathLike | None = None
) -> dict:
    """Figure and Markdown table from ``results.json`` files.

    Args:
        results_paths: ``results.json`` files (or folders holding one).
        output: folder for ``f1_vs_fraction.png`` and ``report.md`` (default: the folder
            of the first results file).

    Returns:
        ``{"figure": path, "markdown": path, "table": the Markdown text}``.
    """
    if not results_paths:
        raise ValueError("no results files given")
    results_list = [load_results(p) for p in results_paths]
    series = collect(results_list)
    if not series:
        raise ValueError("the results files hold no runs")
    first = Path(results_paths[0])
    output = Path(output) if output else (first if first.is_dir() else first.parent)
    table = markdown_table(series)
    md = atomic_write_text(output / "report.md", table)
    fig = plot_f1_vs_fraction(series, output / "f1_vs_fraction.png")
    return {"figure": fig, "markdown": md, "table": table}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m probe.report",
        description="Macro F1 against label fraction (figure + Markdown table) from results.json.",
    )
    parser.add_argument("results", nargs="+", help="results.json files (or their folders)")
    parser.add_argument("--output", default=None, help="folder (default: the first file's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        out = make_report(args.results, output=args.output)
    except (ValueError, FileNotFoundError) as e:
        logger.error("%s", e)
        return 1
    print(out["table"])
    print(f"figure: {out['figure']}\ntable: {out['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
