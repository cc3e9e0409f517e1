"""Injection-recovery: every finder scored on truth (sources injected into real fields) and on
the inverted field (the field times -1, where every detection is false).

For each field, each finder runs on the original field, on the inverted one, and on the field
with sources injected (:mod:`astrodet.sky.inject`), once per seed. Scores pool over fields and
seeds:

* completeness per injected peak S/N bin (the truth's ``snr``; lower edges inclusive) with
  the Wilson score interval at 68.27 % (one sigma) as its binomial error;
* per bin, the median total-flux ratio found / injected with its 16-84 % spread, and the
  median position offset (arcsec; pixels for a field without a pixel scale);
* false detections on the injected field: detections that match neither an injected source
  nor the same finder's detection on the original field (new noise peaks the sources brought
  or detections they split); detections on the inverted field (the persistent false ones: noise
  peaks and artefacts) and the percentage of real detections ``(N_img - N_inv) / N_img``
  with ``N_img`` the detections on the original field; both also per 100,000 beam areas
  searched (the fields' data pixels over the beam area);
* seconds per megapixel over every run of the finder;
* for a finder with scores (the detector), all of that again as its score threshold varies
  (the finder runs once at a low threshold; its catalogues are cut at each threshold).

Matching is one-to-one within a radius (:func:`astrodet.sky.crossmatch.crossmatch`), by
default half the beam's major-axis FWHM. The tables and pictures are drawn by
:mod:`astrodet.sky.recovery_report`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BINS",
    "FieldRecord",
    "collect_images",
    "count_false",
    "match_truth",
    "run_injection_recovery",
    "score_finder",
    "snr_bins",
    "summarise",
    "threshold_curve",
]

#: Injected peak S/N bins (lower edge inclusive).
DEFAULT_BINS = ((3.0, 5.0), (5.0, 7.0), (7.0, 10.0), (10.0, 20.0), (20.0, 100.0))
#: Wider views of the same sources: the issue's targets are stated for these.
AGGREGATES = {"all": (0.0, math.inf), ">=7": (7.0, math.inf), ">=10": (10.0, math.inf)}
#: Score thresholds of the threshold curve.
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.05))
_PER_BEAMS = 1e5
_CONFIDENCE = 0.6827  # one sigma
_FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz")


def snr_bins(snr_high: float = 100.0) -> tuple[tuple[float, float], ...]:
    """The default S/N bins, with an open top bin (100, inf) when S/N above 100 is injected."""
    return DEFAULT_BINS + (((100.0, math.inf),) if snr_high > 100.0 else ())


def collect_images(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """FITS files from a list of files and folders (a folder gives its ``*.fits``, ``*.fit``,
    ``*.fts`` and ``*.fits.gz`` files, sorted).

    Raises:
        FileNotFoundError: a path that does not exist, or a folder without FITS files.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(
                f for f in p.iterdir() if f.is_file() and f.name.lower().endswith(_FITS_SUFFIXES)
            )
            if not found:
                raise FileNotFoundError(f"folder {p} holds no FITS images (*.fits, *.fit, *.fts)")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"FITS image {p} not found")
    return out


# --------------------------------------------------------------------------- records
@dataclass
class FieldRecord:
    """One finder's catalogues on one field.

    Attributes:
        name: the field's name (its file stem).
        beam_areas: beam areas searched (data pixels over the beam area in pixels).
        radius: the match radius (arcsec; pixels when ``pixel_scale`` is None).
        pixel_scale: arcsec per pixel, or None.
        original, inverted: the catalogues on the original and the inverted field (None:
            the finder failed there).
        injected: seed -> ``(truth, catalogue)`` for each injected field it ran on.
        seconds, megapixels: time spent and pixels searched, over every run.
        errors: ``{"image", "seed", "error"}`` of each failed run.
    """

    name: str
    beam_areas: float
    radius: float
    pixel_scale: float | None = None
    original: object = None
    inverted: object = None
    injected: dict = field(default_factory=dict)
    seconds: float = 0.0
    megapixels: float = 0.0
    errors: list = field(default_factory=list)


def _cut(table, score_thresh):
    if table is None or score_thresh is None or not len(table):
        return table
    return table[np.asarray(table["score"], float) >= score_thresh]


def _crossmatch(reference, catalog, *, radius, pixel_scale):
    from .crossmatch import crossmatch

    pixel_radius = radius / pixel_scale if pixel_scale else radius
    return crossmatch(reference, catalog, radius=radius, pixel_radius=pixel_radius)


def match_truth(truth, catalogue, *, radius: float, pixel_scale: float | None = None) -> dict:
    """Match injected sources to a catalogue, one to one within ``radius``.

    Args:
        truth: the truth table (:func:`astrodet.sky.inject.inject_field`).
        catalogue: the finder's catalogue on the injected field.
        radius: arcsec (pixels without a pixel scale).
        pixel_scale: arcsec per pixel, for matching on pixels and offsets in arcsec.

    Returns:
        ``found`` (per truth row), ``cat_index`` (the matched catalogue row, -1), ``offset``
        (arcsec, NaN where not found), ``flux_ratio`` (found / injected total flux, NaN where
        not found) and ``matched`` (per catalogue row).
    """
    n = len(truth)
    found = np.zeros(n, bool)
    cat_index = np.full(n, -1)
    offset = np.full(n, np.nan)
    ratio = np.full(n, np.nan)
    matched = np.zeros(len(catalogue), bool)
    if n and len(catalogue):
        m = _crossmatch(truth, catalogue, radius=radius, pixel_scale=pixel_scale)
        found[m.ref] = True
        cat_index[m.ref] = m.cat
        sep = m.separation if m.frame == "sky" else m.separation * (pixel_scale or 1.0)
        offset[m.ref] = sep
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio[m.ref] = (
                np.asarray(catalogue["total_flux"], float)[m.cat]
                / np.asarray(truth["total_flux"], float)[m.ref]
            )
        matched[m.cat] = True
    return {
        "found": found,
        "cat_index": cat_index,
        "offset": offset,
        "flux_ratio": ratio,
        "matched": matched,
    }


def count_false(
    catalogue, matched: np.ndarray, original, *, radius: float, pixel_scale: float | None = None
) -> int:
    """Detections on the injected field that match neither an injected source (``matched``)
    nor a detection of the same finder on the original field."""
    rest = catalogue[~np.asarray(matched, bool)]
    if not len(rest) or original is None or not len(original):
        return len(rest)
    m = _crossmatch(original, rest, radius=radius, pixel_scale=pixel_scale)
    return len(rest) - len(m.cat)


def _interval(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from astropy.stats import binom_conf_interval

    k, n = np.asarray(k), np.asarray(n)
    lo, hi = np.full(len(k), np.nan), np.full(len(k), np.nan)
    ok = n > 0
    if ok.any():
        lo[ok], hi[ok] = binom_conf_interval(k[ok], n[ok], confidence_level=_CONFIDENCE,
                                             interval="wilson")  # fmt: skip
    return lo, hi


def _bin_stats(snr, found, ratio, offset, bins: dict) -> dict:
    out = {}
    for name, (lo, hi) in bins.items():
        sel = (snr >= lo) & (snr < hi)
        n, k = int(sel.sum()), int(found[sel].sum())
        (c_lo,), (c_hi,) = _interval(np.array([k]), np.array([n]))
        r = ratio[sel & found]
        r = r[np.isfinite(r)]
        o = offset[sel & found]
        out[name] = {
            "low": lo,
            "high": hi,
            "n_injected": n,
            "n_found": k,
            "completeness": k / n if n else math.nan,
            "completeness_low": float(c_lo),
            "completeness_high": float(c_hi),
            "flux_ratio_median": float(np.median(r)) if len(r) else math.nan,
            "flux_ratio_p16": float(np.percentile(r, 16)) if len(r) else math.nan,
            "flux_ratio_p84": float(np.percentile(r, 84)) if len(r) else math.nan,
            "offset_median": float(np.median(o)) if len(o) else math.nan,
        }
    return out


def _bin_name(lo: float, hi: float) -> str:
    return f">={lo:g}" if math.isinf(hi) else f"{lo:g}-{hi:g}"


def _per_beams(count: int, areas: float) -> float:
    return count / areas * _PER_BEAMS if areas > 0 else math.nan


def score_finder(
    records: Sequence[FieldRecord],
    *,
    bins: Sequence[tuple[float, float]] = DEFAULT_BINS,
    score_thresh: float | None = None,
) -> dict:
    """One finder's scores pooled over fields and seeds.

    Args:
        records: the finder's :class:`FieldRecord` per field.
        bins: injected peak S/N bins ``(low, high)``.
        score_thresh: keep detections with ``score`` at least this (None: all).

    Returns:
        ``bins`` and ``aggregates`` (per S/N bin and for all, S/N >= 7 and >= 10:
        ``n_injected``, ``n_found``, ``completeness`` with its Wilson 68 % interval
        ``completeness_low``/``_high``, ``flux_ratio_median``/``_p16``/``_p84``,
        ``offset_median``), ``n_original``, ``n_inverted``, ``percent_real``,
        ``false_injected``, both per 100,000 beam areas, the beam areas behind each,
        ``seconds_per_megapixel``, and ``per_field`` counts.
    """
    snr, found, ratio, offset = [], [], [], []
    n_orig = n_inv = n_false = 0
    areas_inv = areas_inj = 0.0
    both_orig = both_inv = 0  # fields with the original and the inverted catalogue
    per_field = {}
    seconds = megapixels = 0.0
    for rec in records:
        seconds += rec.seconds
        megapixels += rec.megapixels
        original, inverted = _cut(rec.original, score_thresh), _cut(rec.inverted, score_thresh)
        pf = {
            "n_original": None if original is None else len(original),
            "n_inverted": None if inverted is None else len(inverted),
            "n_injected": 0,
            "n_found": 0,
            "false_injected": 0,
            "seeds": sorted(rec.injected),
            "errors": len(rec.errors),
        }
        if original is not None:
            n_orig += len(original)
        if inverted is not None:
            n_inv += len(inverted)
            areas_inv += rec.beam_areas
            if original is not None:
                both_orig += len(original)
                both_inv += len(inverted)
        for truth, cat in rec.injected.values():
            cat = _cut(cat, score_thresh)
            m = match_truth(truth, cat, radius=rec.radius, pixel_scale=rec.pixel_scale)
            k = count_false(cat, m["matched"], original, radius=rec.radius,
                            pixel_scale=rec.pixel_scale)  # fmt: skip
            n_false += k
            areas_inj += rec.beam_areas
            snr.append(np.asarray(truth["snr"], float))
            found.append(m["found"])
            ratio.append(m["flux_ratio"])
            offset.append(m["offset"])
            pf["n_injected"] += len(truth)
            pf["n_found"] += int(m["found"].sum())
            pf["false_injected"] += k
        per_field[rec.name] = pf
    cat = lambda a, t: np.concatenate(a) if a else np.zeros(0, t)  # noqa: E731
    snr, found = cat(snr, float), cat(found, bool)
    ratio, offset = cat(ratio, float), cat(offset, float)
    return {
        "score_thresh": score_thresh,
        "bins": _bin_stats(snr, found, ratio, offset, {_bin_name(*b): b for b in bins}),
        "aggregates": _bin_stats(snr, found, ratio, offset, AGGREGATES),
        "n_original": n_orig,
        "n_inverted": n_inv,
        "percent_real": 100.0 * (both_orig - both_inv) / both_orig if both_orig else math.nan,
        "false_injected": n_false,
        "beam_areas_inverted": areas_inv,
        "beam_areas_injected": areas_inj,
        "inverted_per_1e5_beams": _per_beams(n_inv, areas_inv),
        "false_injected_per_1e5_beams": _per_beams(n_false, areas_inj),
        "seconds": seconds,
        "megapixels": megapixels,
        "seconds_per_megapixel": seconds / megapixels if megapixels else math.nan,
        "per_field": per_field,
    }


def threshold_curve(
    records: Sequence[FieldRecord],
    *,
    bins: Sequence[tuple[float, float]] = DEFAULT_BINS,
    thresholds: Iterable[float] = THRESHOLDS,
) -> list[dict]:
    """Completeness against false and inverted-field detections as the score threshold
    varies: per threshold, the completeness overall and per bin, ``n_inverted``,
    ``false_injected`` and both per 100,000 beam areas."""
    out = []
    for t in thresholds:
        s = score_finder(records, bins=bins, score_thresh=float(t))
        out.append(
            {
                "threshold": float(t),
                "completeness": s["aggregates"]["all"]["completeness"],
                "completeness_bins": {k: v["completeness"] for k, v in s["bins"].items()},
                "n_inverted": s["n_inverted"],
                "inverted_per_1e5_beams": s["inverted_per_1e5_beams"],
                "false_injected": s["false_injected"],
                "false_injected_per_1e5_beams": s["false_injected_per_1e5_beams"],
                "percent_real": s["percent_real"],
            }
        )
    return out


def summarise(
    records: dict[str, Sequence[FieldRecord]],
    *,
    bins: Sequence[tuple[float, float]] = DEFAULT_BINS,
    score_thresh: dict[str, float | None] | None = None,
    curves: dict[str, Iterable[float]] | None = None,
) -> dict:
    """Every finder's scores (:func:`score_finder`) and threshold curves.

    Args:
        records: finder name -> its records.
        bins: injected peak S/N bins.
        score_thresh: finder name -> the score its table rows are cut at (None: all).
        curves: finder name -> thresholds of its curve (:func:`threshold_curve`).
    """
    score_thresh, curves = score_thresh or {}, curves or {}
    out = {}
    for name, recs in records.items():
        out[name] = score_finder(recs, bins=bins, score_thresh=score_thresh.get(name))
        if name in curves:
            out[name]["threshold_curve"] = threshold_curve(recs, bins=bins,
                                                           thresholds=curves[name])  # fmt: skip
    return out


# --------------------------------------------------------------------------- running
def _stem(path: Path, used: set) -> str:
    name = path.name
    for suffix in _FITS_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    stem, k = name, 2
    while stem in used:  # two folders, one file name
        stem, k = f"{name}_{k}", k + 1
    used.add(stem)
    return stem


def _run(finder, field, rec: FieldRecord, *, image: str, seed, failures: list, stem: str):
    """A finder on a field, timed; None (counted and reported) when it raises."""
    start = time.perf_counter()
    try:
        table = finder.find(field)
    except Exception as e:  # any finder error is this field's, not the run's
        error = f"{type(e).__name__}: {e}"
        logger.warning("%s failed on %s (%s): %s", finder.name, stem, image, error)
        entry = {"finder": finder.name, "field": stem, "image": image, "seed": seed, "error": error}
        rec.errors.append(entry)
        failures.append(entry)
        return None
    rec.seconds += time.perf_counter() - start
    rec.megapixels += field.shape[0] * field.shape[1] / 1e6
    return table


def run_injection_recovery(
    *,
    images: Sequence[str | os.PathLike],
    finders: dict[str, object],
    output: str | os.PathLike,
    n: int,
    seeds: Sequence[int],
    beam=None,
    snr_range: Sequence[float] = (3.0, 100.0),
    score_thresh: dict[str, float | None] | None = None,
    curves: dict[str, Iterable[float]] | None = None,
    keep_images: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    **inject_kwargs,
) -> dict:
    """Inject, find and score: the whole run, written into ``output``.

    Writes ``summary.json`` (every number of the table per finder, pooled over fields and
    seeds, per-field counts, failures, settings), ``table.md``, ``completeness.png``,
    ``flux.png``, ``threshold.png`` (when a finder has a curve), and per field
    ``fields/<stem>/<finder>_{original,inverted}.{fits,csv}`` and per seed
    ``fields/<stem>/seed<k>/truth.{fits,csv}`` and ``<finder>_injected.{fits,csv}`` (the
    injected and inverted images too with ``keep_images``).

    Args:
        images: FITS fields.
        finders: name -> finder (``find(field)`` -> catalogue).
        output: the output folder; an existing non-empty one is refused without
            ``overwrite``.
        n: sources asked for per field.
        seeds: one injection per seed.
        beam: the beam ``(maj, min, pa)`` for fields whose header has none.
        snr_range: injected peak S/N range (an open top bin when above 100).
        score_thresh: finder -> score cut of its table rows.
        curves: finder -> thresholds of its threshold curve.
        keep_images: keep the injected and inverted FITS images.
        overwrite: replace an existing output folder.
        progress: a tqdm bar over fields x (seeds + 2) x finders.
        **inject_kwargs: more :func:`astrodet.sky.inject.inject_field` settings.

    Returns:
        the summary (also in ``summary.json``).
    """
    from tqdm import tqdm

    from astrodet.utils import atomic_write_json, atomic_write_text, prepare_output_dir

    from .catalogue import write_catalogue
    from .field import Beam, open_field
    from .inject import inject_field, invert_field
    from .measure import background_map
    from .recovery_report import format_table, plot_completeness, plot_flux, plot_threshold

    n = int(n)
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("no seeds: give --seeds K with K >= 1")
    paths = collect_images(images)
    beam = Beam.from_args(beam)
    out = prepare_output_dir(output, overwrite=overwrite)
    bins = snr_bins(float(snr_range[1]))
    records: dict[str, list[FieldRecord]] = {name: [] for name in finders}
    failures: list[dict] = []
    fields_failed: list[dict] = []
    used: set = set()
    n_fields = 0
    injected_total = 0
    pixel_units = False
    bar = tqdm(
        total=len(paths) * (len(seeds) + 2) * len(finders),
        desc="inject-recover",
        unit="run",
        disable=not progress,
    )
    for path in paths:
        stem = _stem(path, used)
        try:
            field = open_field(path, beam=beam)
        except (OSError, ValueError) as e:  # FieldError is a ValueError
            logger.warning("%s: skipped: %s", path, e)
            fields_failed.append({"field": str(path), "error": str(e)})
            bar.update((len(seeds) + 2) * len(finders))
            continue
        fdir = out / "fields" / stem
        with field:
            n_fields += 1
            ny, nx = field.shape
            bkg, rms = background_map(field)
            data_pixels = int(np.isfinite(field.read(0, ny, 0, nx)).sum())
            beam_areas = data_pixels / field.beam_area_pixels()
            pixel_units |= field.pixel_scale is None
            reopen = {"beam": field.beam}
            if field.wcs is None and field.pixel_scale:
                reopen["pixel_scale"] = field.pixel_scale
            recs = {
                name: FieldRecord(
                    name=stem,
                    beam_areas=beam_areas,
                    radius=0.5 * field.beam.maj,
                    pixel_scale=field.pixel_scale,
                )
                for name in finders
            }
            inverted_path = invert_field(field, fdir / "inverted.fits", overwrite=True)
            with open_field(inverted_path, **reopen) as inverted:
                for name, finder in finders.items():
                    rec = recs[name]
                    for kind, f in (("original", field), ("inverted", inverted)):
                        bar.set_postfix_str(f"{stem} {name} {kind}")
                        table = _run(finder, f, rec, image=kind, seed=None, failures=failures,
                                     stem=stem)  # fmt: skip
                        setattr(rec, kind, table)
                        if table is not None:
                            write_catalogue(table, fdir / f"{name}_{kind}", formats=("fits", "csv"))
                        bar.update()
            for seed in seeds:
                sdir = fdir / f"seed{seed}"
                inj = inject_field(
                    field,
                    n=n,
                    seed=seed,
                    output_dir=sdir,
                    snr_range=snr_range,
                    background=(bkg, rms),
                    inverted=False,
                    **inject_kwargs,
                )
                injected_total += len(inj.truth)
                with open_field(inj.injected, **reopen) as injected:
                    for name, finder in finders.items():
                        rec = recs[name]
                        bar.set_postfix_str(f"{stem} {name} seed {seed}")
                        if rec.original is None:  # nothing to tell new from real detections
                            bar.update()
                            continue
                        table = _run(finder, injected, rec, image="injected", seed=seed,
                                     failures=failures, stem=stem)  # fmt: skip
                        if table is not None:
                            write_catalogue(
                                table, sdir / f"{name}_injected", formats=("fits", "csv")
                            )
                            rec.injected[seed] = (inj.truth, table)
                        bar.update()
                if not keep_images:
                    inj.injected.unlink()
            if not keep_images:
                inverted_path.unlink()
            for name in finders:
                if recs[name].original is not None:
                    records[name].append(recs[name])
    bar.close()

    summary_finders = summarise(records, bins=bins, score_thresh=score_thresh, curves=curves)
    for name, s in summary_finders.items():
        s["failed_runs"] = sum(1 for e in failures if e["finder"] == name)
    summary = {
        "n_fields": n_fields,
        "n_injected": injected_total,
        "offset_unit": "pixels" if pixel_units else "arcsec",
        "interval": "Wilson score interval, 68.27 % (one sigma)",
        "settings": {
            "images": [str(p) for p in paths],
            "finders": list(finders),
            "n": n,
            "seeds": seeds,
            "snr_range": [float(v) for v in snr_range],
            "resolved_fraction": inject_kwargs.get("resolved_fraction", 0.3),
            "bins": [[lo, hi] for lo, hi in bins],
            "score_thresh": score_thresh or {},
            **{k: v for k, v in inject_kwargs.items() if k != "resolved_fraction"},
        },
        "finders": summary_finders,
        "failures": failures,
        "fields_failed": fields_failed,
    }
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "table.md", format_table(summary))
    plot_completeness(summary, out / "completeness.png")
    plot_flux(records, out / "flux.png", score_thresh=score_thresh)
    if any(f.get("threshold_curve") for f in summary_finders.values()):
        plot_threshold(summary, out / "threshold.png")
    return summary
