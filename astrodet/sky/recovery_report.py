"""The report of an injection-recovery run (:mod:`astrodet.sky.recovery`): markdown tables
and pictures from its summary and records."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .recovery import AGGREGATES, FieldRecord, _cut, match_truth

__all__ = ["format_table", "plot_completeness", "plot_flux", "plot_threshold"]


def _f(value, spec=".2f") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def format_table(summary: dict) -> str:
    """The markdown tables of a run's ``summary.json``."""
    finders = summary["finders"]
    s = summary["settings"]
    lines = [
        "# Injection-recovery",
        "",
        f"{summary['n_fields']} field(s), seeds {s['seeds']}, {s['n']} sources asked per field "
        f"(peak S/N {s['snr_range'][0]:g}-{s['snr_range'][1]:g} log-uniform, "
        f"{s['resolved_fraction']:.0%} resolved); match radius half the beam FWHM.",
        "",
    ]
    if not finders:
        return "\n".join(lines + ["No finder produced a catalogue.", ""])
    bins = list(next(iter(finders.values()))["bins"])
    aggs = list(AGGREGATES)
    head = (
        "| finder | "
        + " | ".join(
            [f"S/N {b}" for b in bins] + ["all" if a == "all" else f"S/N {a}" for a in aggs]
        )
        + " |"
    )
    sep = "|---" * (len(bins) + len(aggs) + 1) + "|"

    def rows(cell):
        return [
            f"| {name} | "
            + " | ".join(cell({**f["bins"], **f["aggregates"]}[b]) for b in bins + aggs)
            + " |"
            for name, f in finders.items()
        ]

    lines += ["## Completeness (Wilson 68 % interval; found / injected)", "", head, sep]
    lines += rows(
        lambda b: (
            f"{_f(b['completeness'])} ({_f(b['completeness_low'])}-"
            f"{_f(b['completeness_high'])}; {b['n_found']}/{b['n_injected']})"
            if b["n_injected"]
            else "- (0/0)"
        )
    )
    lines += ["", "## Total flux found / injected: median (16-84 %)", "", head, sep]
    lines += rows(
        lambda b: (
            f"{_f(b['flux_ratio_median'])} ({_f(b['flux_ratio_p16'])}-{_f(b['flux_ratio_p84'])})"
            if b["n_found"]
            else "-"
        )
    )
    unit = summary.get("offset_unit", "arcsec")
    lines += ["", f"## Median position offset ({unit})", "", head, sep]
    lines += rows(lambda b: _f(b["offset_median"]))
    lines += [
        "",
        "## False detections and speed",
        "",
        "| finder | detections on the original | on the inverted | real detections % | "
        "inverted per 1e5 beams | false on the injected | per 1e5 beams | s / megapixel | "
        "failed runs |",
        "|---" * 9 + "|",
    ]
    for name, f in finders.items():
        lines.append(
            f"| {name} | {f['n_original']} | {f['n_inverted']} | {_f(f['percent_real'], '.1f')} "
            f"| {_f(f['inverted_per_1e5_beams'], '.1f')} | {f['false_injected']} | "
            f"{_f(f['false_injected_per_1e5_beams'], '.1f')} | "
            f"{_f(f['seconds_per_megapixel'], '.3g')} | {f['failed_runs']} |"
        )
    for name, f in finders.items():
        curve = f.get("threshold_curve")
        if not curve:
            continue
        lines += [
            "",
            f"## {name}: score threshold (rows above at {f['score_thresh']:g})",
            "",
            "| score >= | completeness | S/N " + " | S/N ".join(bins) + " | on the inverted | "
            "false on the injected | real % |",
            "|---" * (len(bins) + 5) + "|",
        ]
        for c in curve:
            lines.append(
                f"| {c['threshold']:.2f} | {_f(c['completeness'])} | "
                + " | ".join(_f(c["completeness_bins"][b]) for b in bins)
                + f" | {c['n_inverted']} | {c['false_injected']} | {_f(c['percent_real'], '.1f')} |"
            )
    failures = summary.get("failures") or []
    failed_fields = summary.get("fields_failed") or []
    if failures or failed_fields:
        lines += ["", "## Failures", ""]
        lines += [f"- field {e['field']}: {e['error']}" for e in failed_fields]
        lines += [
            f"- {e['finder']} on {e['field']} ({e['image']}"
            + (f", seed {e['seed']}" if e.get("seed") is not None else "")
            + f"): {e['error']}"
            for e in failures
        ]
    return "\n".join(lines) + "\n"


def _bin_x(lo: float, hi: float) -> float:
    return lo * 1.5 if math.isinf(hi) else math.sqrt(lo * hi)


def plot_completeness(summary: dict, path: str | os.PathLike) -> Path:
    """Completeness against injected peak S/N, one curve per finder, Wilson 68 % error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from astrodet.utils import atomic_save_figure, error_bars

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, f in summary["finders"].items():
        b = list(f["bins"].values())
        x = np.array([_bin_x(v["low"], v["high"]) for v in b])
        y = np.array([v["completeness"] for v in b], float)
        lo = np.array([v["completeness_low"] for v in b], float)
        hi = np.array([v["completeness_high"] for v in b], float)
        ok = np.isfinite(y)
        ax.errorbar(x[ok], y[ok], yerr=error_bars(y[ok], lo[ok], hi[ok]), marker="o",
                    capsize=3, label=name)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("injected peak S/N")
    ax.set_ylabel("completeness")
    ax.set_ylim(-0.02, 1.05)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Injected sources found")
    return atomic_save_figure(fig, path, dpi=120, bbox_inches="tight")


def plot_flux(
    records: dict[str, Sequence[FieldRecord]],
    path: str | os.PathLike,
    *,
    score_thresh: dict[str, float | None] | None = None,
) -> Path:
    """Recovered against injected total flux, log-log, one panel per finder."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from astrodet.utils import atomic_save_figure

    score_thresh = score_thresh or {}
    names = list(records) or ["none"]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        inj, rec, snr = [], [], []
        for r in records.get(name, []):
            for truth, cat in r.injected.values():
                cat = _cut(cat, score_thresh.get(name))
                m = match_truth(truth, cat, radius=r.radius, pixel_scale=r.pixel_scale)
                f = m["found"]
                inj.append(np.asarray(truth["total_flux"], float)[f])
                rec.append(np.asarray(cat["total_flux"], float)[m["cat_index"][f]])
                snr.append(np.asarray(truth["snr"], float)[f])
        inj = np.concatenate(inj) if inj else np.zeros(0)
        rec = np.concatenate(rec) if rec else np.zeros(0)
        snr = np.concatenate(snr) if snr else np.zeros(0)
        ok = (inj > 0) & (rec > 0)
        if ok.any():
            sc = ax.scatter(inj[ok], rec[ok], c=np.log10(snr[ok]), s=10, cmap="viridis")
            lo, hi = min(inj[ok].min(), rec[ok].min()), max(inj[ok].max(), rec[ok].max())
            ax.plot([lo, hi], [lo, hi], "k--", lw=1)
            fig.colorbar(sc, ax=ax, label="log10 injected S/N")
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_title(f"{name} ({int(ok.sum())} found)")
        ax.set_xlabel("injected total flux (Jy)")
        ax.set_ylabel("recovered total flux (Jy)")
    fig.tight_layout()
    return atomic_save_figure(fig, path, dpi=120)


def plot_threshold(summary: dict, path: str | os.PathLike) -> Path:
    """Completeness against inverted-field detections per 100,000 beam areas as the score
    threshold varies (other finders as single points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from astrodet.utils import atomic_save_figure

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, f in summary["finders"].items():
        curve = f.get("threshold_curve")
        if curve:
            x = [c["inverted_per_1e5_beams"] for c in curve]
            y = [c["completeness"] for c in curve]
            ax.plot(x, y, marker=".", label=f"{name} (score threshold)")
            for c in curve[::4]:
                ax.annotate(f"{c['threshold']:.2f}", (c["inverted_per_1e5_beams"],
                            c["completeness"]), fontsize=7)  # fmt: skip
        else:
            ax.plot([f["inverted_per_1e5_beams"]], [f["aggregates"]["all"]["completeness"]],
                    marker="s", ls="none", label=name)  # fmt: skip
    ax.set_xlabel("detections on the inverted field per 100,000 beam areas")
    ax.set_ylabel("completeness (all injected)")
    ax.grid(alpha=0.3)
    ax.legend()
    return atomic_save_figure(fig, path, dpi=120, bbox_inches="tight")
