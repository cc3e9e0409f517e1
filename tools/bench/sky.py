"""Whole-field source finding: the detector's catalogue against PyBDSF's.

As a benchmark part (``run``/``rows``): seconds per megapixel of the small FIRST detector's
tiled finder against PyBDSF on the same synthetic FIRST-like field (one run each), and
the finder's peak memory on a large memory-mapped field written here.

As a script, the held-out check on real FIRST fields:

    python tools/bench/sky.py --weights output/first_pybdsf_vit_small/model_final.pth \\
        --output output/first_pybdsf_heldout

runs the detector and the classical finder over the held-out fields of the FIRST PyBDSF
set (``--split train``: the training fields, for development; ``--no-deblend``: one source
per detected box) and scores both against PyBDSF's catalogues (completeness and reliability per PyBDSF
S/N bin, and over PyBDSF's islands: one detection covering the sources of an island finds it;
optimal one-to-one matching, ``astrodet.sky.crossmatch``), writing ``DIR/summary.json``, ``DIR/table.md`` and
one comparison folder per finder. Beside them, PyBDSF on the same fields mirrored left to
right is scored against PyBDSF (``--no-mirror`` skips it): how much its catalogue moves
when only the order of the pixels changes; and PyBDSF on the fields with a little more
noise (``--added-noise 0.5``: beam-correlated, half their rms, 12 % more noise in all; 0
skips it): how much it moves with the noise.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("benchmark")

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "first_pybdsf_vit_small.py"
DEFAULT_WEIGHTS = ROOT / "output" / "first_pybdsf_vit_small" / "model_final.pth"
#: FIRST-like synthetic sky: 1.8"/px, 5.4" beam, 150 uJy/beam noise. The synthetic fields lie
#: at Dec +30, where FIRST's beam is 5.4" circular. On the real fields, whose beam follows the
#: declination (6.4" or 6.8" x 5.4" north-south south of Dec +4 deg 33': 18 of the 178
#: training fields), BEAM is only the pooled catalogues' metadata and matching beam: one
#: radius, 2.7" (half the 5.4" axis every FIRST beam has), for every field. Half of those
#: fields' own major axis (3.2-3.4") matched 35 instead of 34 of their 68 PyBDSF sources
#: with the classical finder: too few to need a radius per field.
PIXEL, BEAM, NOISE = 1.8, 5.4, 1.5e-4


# ----------------------------------------------------------------------------- fields
def _header(ny: int, nx: int):
    from astropy.io import fits

    h = fits.Header()
    h["SIMPLE"], h["BITPIX"], h["NAXIS"] = True, -32, 2
    h["NAXIS1"], h["NAXIS2"] = nx, ny
    h["CTYPE1"], h["CRVAL1"], h["CRPIX1"], h["CDELT1"] = "RA---SIN", 150.0, nx / 2, -PIXEL / 3600
    h["CTYPE2"], h["CRVAL2"], h["CRPIX2"], h["CDELT2"] = "DEC--SIN", 30.0, ny / 2, PIXEL / 3600
    h["BMAJ"], h["BMIN"], h["BPA"] = BEAM / 3600, BEAM / 3600, 0.0
    h["BUNIT"] = "JY/BEAM"
    return h


def write_synthetic_field(
    path: Path, *, size: int, sources_per_mp: float = 25.0, seed: int = 0, rows: int = 512
) -> Path:
    """A FIRST-like field (noise + Gaussian point and slightly resolved sources, S/N 5-300;
    FIRST lists about 90 sources per square degree, 25 per megapixel at 1.8"/px) written
    block by block, so an 8k or 16k field never sits in memory whole."""
    from astropy.io import fits

    rng = np.random.default_rng(seed)
    n = int(sources_per_mp * size * size / 1e6)
    xs, ys = rng.uniform(0, size, n), rng.uniform(0, size, n)
    peaks = NOISE * np.exp(rng.uniform(np.log(5), np.log(300), n))
    sig = BEAM / PIXEL / 2.3548 * rng.uniform(1.0, 1.6, n)
    header = _header(size, size)
    with open(path, "wb") as f:
        f.write(fits.Header(header).tostring().encode())
        for y0 in range(0, size, rows):
            y1 = min(size, y0 + rows)
            block = rng.normal(0.0, NOISE, (y1 - y0, size)).astype(np.float32)
            near = np.flatnonzero((ys > y0 - 20) & (ys < y1 + 20))
            yy = np.arange(y0, y1)[:, None]
            for k in near:
                x0, x1 = max(0, int(xs[k]) - 12), min(size, int(xs[k]) + 13)
                xx = np.arange(x0, x1)[None, :]
                block[:, x0:x1] += peaks[k] * np.exp(
                    -((xx - xs[k]) ** 2 + (yy - ys[k]) ** 2) / (2 * sig[k] ** 2)
                )
            f.write(block.astype(">f4").tobytes())
        pad = (-f.tell()) % 2880
        f.write(b"\0" * pad)
    return path


def _detector(weights: Path | None, **kwargs):
    from astrodet.sky.finders.detector import DetectorFinder

    if weights is not None and Path(weights).is_file():
        return DetectorFinder.from_config(CONFIG, weights, progress=False, **kwargs), True
    # the same network, random weights: the same compute per tile
    import torch

    from astrodet.config import LazyConfig, instantiate

    cfg = LazyConfig.load(str(CONFIG))
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"sky_bench_random_{os.getpid()}.pth"
    torch.manual_seed(0)
    torch.save({"model": instantiate(cfg.model).state_dict()}, tmp)
    try:
        return DetectorFinder.from_config(CONFIG, tmp, progress=False, **kwargs), False
    finally:
        tmp.unlink(missing_ok=True)


def _peak_memory_child(path: str, weights: str | None, queue) -> None:
    import resource

    from astrodet.sky import open_field

    finder, _ = _detector(Path(weights) if weights else None, num_threads=1)
    start = time.perf_counter()
    with open_field(path) as field:
        table = finder.find(field)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB -> MiB
    queue.put({"peak_rss_mib": rss, "seconds": seconds, "sources": len(table)})


def _best_of(finder, field, repeats: int):
    """(fastest seconds of ``repeats`` timed ``finder.find(field)`` after an untimed one, the
    catalogue): the first call pays for imports, thread pools and worker start-up."""
    result = finder.find(field)
    best = math.inf
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = finder.find(field)
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_sky(
    *,
    workdir: Path,
    size: int = 1024,
    large: int = 4096,
    weights: Path | None = None,
    seed=0,
    repeats: int = 2,
) -> dict[str, Any]:
    """Seconds per megapixel of the detector finder and of PyBDSF on one synthetic field
    (the fastest of ``repeats`` runs after a warm-up, at one core each and at all cores
    each), and the detector finder's peak memory on a ``large`` x ``large`` memory-mapped
    field."""
    from astrodet.sky import open_field
    from astrodet.sky.finders import build_finder
    from astrodet.sky.finders.detector import default_threads

    workdir.mkdir(parents=True, exist_ok=True)
    field_path = write_synthetic_field(workdir / f"sky_{size}.fits", size=size, seed=seed)
    mp = size * size / 1e6
    cores = default_threads()
    out: dict[str, Any] = {"field_pixels": size, "cores": cores}
    # one core each (PyBDSF's default), then every core each (torch threads, PyBDSF workers)
    for suffix, n in (("", 1), ("_all_cores", cores)):
        finder, trained = _detector(weights, num_threads=n)
        out["trained_weights"], out["precision"] = trained, finder.precision
        pybdsf = build_finder("pybdsf", ncores=n)
        with open_field(field_path) as field:
            seconds, det = _best_of(finder, field, repeats)
            out[f"detector_s_per_mp{suffix}"] = seconds / mp
            seconds, ref = _best_of(pybdsf, field, repeats)
            out[f"pybdsf_s_per_mp{suffix}"] = seconds / mp
        out[f"speedup_vs_pybdsf{suffix}"] = (
            out[f"pybdsf_s_per_mp{suffix}"] / out[f"detector_s_per_mp{suffix}"]
        )
    out["detector_sources"], out["pybdsf_sources"] = len(det), len(ref)
    logger.info("sky: %s", out)
    big = write_synthetic_field(workdir / f"sky_{large}.fits", size=large, seed=seed + 1)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(
        target=_peak_memory_child, args=(str(big), str(weights) if trained else None, queue)
    )
    proc.start()
    mem = None
    while mem is None:
        try:
            mem = queue.get(timeout=5)
        except Exception:  # queue.Empty: a child that died sends nothing
            if not proc.is_alive():
                raise RuntimeError(
                    f"the memory check on {big} failed (exit {proc.exitcode})"
                ) from None
    proc.join()
    big.unlink(missing_ok=True)
    out.update(
        large_field_pixels=large,
        large_field_mib=large * large * 4 / 2**20,
        large_peak_rss_mib=mem["peak_rss_mib"],
        large_seconds=mem["seconds"],
        large_sources=mem["sources"],
    )
    return out


def run(s: dict[str, Any], device) -> dict[str, Any]:
    """The part with the benchmark's settings ``s`` (CPU; ``device`` unused). The field is
    ``$ASTRODET_SKY_FIELD`` px (1024), the memory check's ``$ASTRODET_SKY_LARGE`` px (8192);
    a trained detector is used when ``$ASTRODET_SKY_WEIGHTS`` or the default run folder
    holds one."""
    import tempfile

    weights = Path(os.environ.get("ASTRODET_SKY_WEIGHTS", DEFAULT_WEIGHTS))
    size = int(os.environ.get("ASTRODET_SKY_FIELD", 1024))
    large = int(os.environ.get("ASTRODET_SKY_LARGE", 8192))
    with tempfile.TemporaryDirectory(prefix="sky_bench_") as tmp:
        return bench_sky(
            workdir=Path(tmp),
            size=size,
            large=large,
            weights=weights,
            seed=s.get("seed", 0),
            repeats=min(int(s.get("repeats", 2)), 2),
        )


def rows(results: dict[str, Any]) -> list[str]:
    """Rows of the Markdown table for this part of a ``benchmark.json`` dict."""
    r = results.get("sky")
    if not r:
        return []
    w = "trained" if r["trained_weights"] else "random-init"
    return [
        f"| sky | find_sources speedup vs PyBDSF (s/MP), one core each | "
        f"{r['speedup_vs_pybdsf']:.2f}x | {r['field_pixels']} px FIRST-like field: "
        f"{r['detector_s_per_mp']:.2f} vs {r['pybdsf_s_per_mp']:.2f} s/MP ({w} detector, "
        f"{r.get('precision', 'fp32')} backbone) |",
        *(
            [
                f"| sky | find_sources speedup vs PyBDSF (s/MP), {r['cores']} cores each | "
                f"{r['speedup_vs_pybdsf_all_cores']:.2f}x | "
                f"{r['detector_s_per_mp_all_cores']:.2f} vs "
                f"{r['pybdsf_s_per_mp_all_cores']:.2f} s/MP |"
            ]
            if "speedup_vs_pybdsf_all_cores" in r
            else []
        ),
        f"| sky | find_sources peak RSS, {r['large_field_pixels']} px field | "
        f"{r['large_peak_rss_mib']:.0f} MiB | field {r['large_field_mib']:.0f} MiB memory-mapped, "
        f"{r['large_seconds']:.0f} s |",
    ]


# ----------------------------------------------------------------------------- held-out
def _stack(tables, path: Path) -> Path:
    from astropy.table import vstack

    from astrodet.sky import new_catalogue, write_catalogue
    from astrodet.sky.catalogue import COLUMNS

    if tables:
        extra = {}
        if all("island_id" in t.colnames for t in tables):
            # island numbers restart in each field: offset them so islands stay apart
            ids, start = [], 0
            for table in tables:
                own = np.asarray(table["island_id"], np.int64)
                ids.append(own + start)
                start += int(own.max()) + 1 if len(own) else 0
            extra["island_id"] = np.concatenate(ids)
        t = vstack(tables, metadata_conflicts="silent")
        t = new_catalogue(
            meta={"BEAM_MAJ": BEAM, "BEAM_MIN": BEAM, "BEAM_PA": 0.0},
            **{c: np.asarray(t[c]) for c in COLUMNS if c != "source_id"},
            **extra,
        )
    else:
        t = new_catalogue()
    write_catalogue(t, path.with_suffix(""), formats=("fits",), overwrite=True)
    return path


def _pooled(metrics: dict, lo: float) -> dict:
    """Completeness and reliability over the S/N bins from ``lo`` up."""
    bins = [b for b in metrics["snr_bins"] if b["snr_min"] >= lo]
    nr = sum(b["n_reference"] for b in bins)
    nc = sum(b["n_catalog"] for b in bins)
    mr = sum(b["n_matched"] for b in bins)
    mc = sum(round(b["reliability"] * b["n_catalog"]) if b["n_catalog"] else 0 for b in bins)
    return {
        "n_reference": nr,
        "n_catalog": nc,
        "completeness": mr / nr if nr else math.nan,
        "reliability": mc / nc if nc else math.nan,
    }


def _write_fits(out: Path, data: np.ndarray, header) -> Path:
    """``data`` and ``header`` as a FITS file at ``out``, written under a temporary name and
    renamed: a field cut short is never taken for a finished one (their PyBDSF runs are
    cached by content)."""
    from astropy.io import fits

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    fits.PrimaryHDU(data, header).writeto(tmp, overwrite=True)
    os.replace(tmp, out)
    return out


def mirror_field(path: Path, out: Path) -> Path:
    """``path`` mirrored left to right, its WCS mirrored with it (the same sky, the pixels in
    another order), written to ``out`` unless it is there already."""
    from astropy.io import fits
    from astropy.wcs import WCS

    if out.is_file():
        return out
    with fits.open(path) as hdul:
        data, header = hdul[0].data[..., ::-1], hdul[0].header.copy()
    w = WCS(header)
    w.wcs.crpix[0] = header["NAXIS1"] + 1 - w.wcs.crpix[0]
    # the first pixel axis reversed: its column of the linear transformation changes sign
    if w.wcs.has_cd():
        w.wcs.cd[:, 0] *= -1
    else:
        pc = w.wcs.get_pc().copy()
        pc[:, 0] *= -1
        w.wcs.pc = pc
    # the old keywords out first: a CD matrix left beside the new PC form would win
    for key in [*WCS(header).to_header(), *(k for k in header if re.match(r"(CD|PC)\d+_\d+$", k))]:
        header.remove(key, ignore_missing=True, remove_all=True)
    header.update(w.to_header())
    return _write_fits(out, np.ascontiguousarray(data), header)


def noisier_field(path: Path, out: Path, *, fraction: float = 0.5, seed: int = 0) -> Path:
    """``path`` with more noise: Gaussian noise correlated like the beam (interferometric
    noise is correlated over a beam, white noise is not) with an rms of ``fraction`` times
    the field's own (sigma-clipped), written to ``out`` unless it is there already. The noise
    differs from field to field (the file name seeds it with ``seed``) and not from run to
    run. The same sky, a noise level ``sqrt(1 + fraction**2)`` times higher.

    White noise smoothed by a Gaussian of width s is correlated over a Gaussian of width
    s * sqrt(2) (the kernel convolved with itself): the kernel is the beam's sigma over
    sqrt(2), so the noise's autocorrelation has the beam's width.

    Args:
        path: a FITS field (2-D, with a beam in its header).
        out: the noisier copy (the same header).
        fraction: the added noise's rms over the field's.
        seed: with the file name, the noise's random seed.
    """
    import zlib

    from astropy.io import fits
    from astropy.stats import sigma_clipped_stats
    from scipy import ndimage

    from astrodet.sky import open_field

    if out.is_file():
        return out
    if not fraction > 0:
        raise ValueError(f"the added noise fraction must be > 0, got {fraction}")
    with open_field(path) as field:
        sigma_px = field.beam_pixels() / (2.0 * math.sqrt(2.0 * math.log(2.0))) / math.sqrt(2.0)
    with fits.open(path) as hdul:
        data, header = np.asarray(hdul[0].data, np.float64), hdul[0].header.copy()
    finite = np.isfinite(data)
    _, _, rms = sigma_clipped_stats(data[finite], sigma=3.0, maxiters=5)
    rng = np.random.default_rng([zlib.crc32(path.name.encode()), seed])
    noise = ndimage.gaussian_filter(rng.standard_normal(data.shape), sigma_px)
    noise *= fraction * rms / noise.std()
    return _write_fits(out, np.where(finite, data + noise, np.nan).astype(np.float32), header)


def score_first_heldout(
    *,
    weights: Path,
    output: Path,
    config_file: Path = CONFIG,
    overwrite: bool = False,
    score_thresh: float = 0.5,
    split: str = "test",
    deblend: bool = False,
    mirror: bool = True,
    added_noise: float = 0.5,
) -> dict:
    """Detector and classical finder against PyBDSF on the held-out FIRST fields
    (``split="train"``: the training fields).

    With ``mirror``, PyBDSF itself is scored the same way on the fields mirrored left to
    right (``pybdsf_mirrored``): the same sky and noise, so what it misses or adds is how
    far PyBDSF's own catalogue moves when nothing physical changes, a ceiling for any
    finder scored against it. With ``added_noise`` > 0, PyBDSF is scored the same way on the
    fields with beam-correlated noise of that fraction of their rms added
    (``pybdsf_noisier``, :func:`noisier_field`; 0.5: a noise level 12 % higher): how far its
    catalogue moves with the noise, which no finder trained on its labels can predict.

    Returns:
        ``{"fields", "megapixels", finder: {"seconds", "metrics", "snr_ge_10"}}``.
    """
    from astrodet.sky import open_field, read_catalogue
    from astrodet.sky.crossmatch import compare_catalogues
    from astrodet.sky.finders import build_finder
    from astrodet.sky.finders.detector import DetectorFinder
    from astrodet.sky.labels import build_first_pybdsf, pybdsf_catalogue
    from astrodet.utils import atomic_write_json, atomic_write_text, prepare_output_dir

    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test, got {split!r}")
    if not added_noise >= 0:
        raise ValueError(f"--added-noise must be >= 0 (0 skips it), got {added_noise}")
    output = prepare_output_dir(output, overwrite=overwrite)
    root = build_first_pybdsf()
    fields = sorted((root / "fields" / split).glob("*.fits"))
    finders = {
        "detector": DetectorFinder.from_config(
            config_file, weights, score_thresh=score_thresh, progress=False, deblend=deblend
        ),
        "classical": build_finder("classical"),
    }
    names = [*finders, *(["pybdsf_mirrored"] if mirror else [])]
    names += ["pybdsf_noisier"] if added_noise > 0 else []
    found: dict[str, list] = {k: [] for k in names}
    seconds = {k: 0.0 for k in finders}  # PyBDSF's runs on the altered fields are cached: not timed
    reference, mp = [], 0.0
    for path in fields:
        # the labels' own PyBDSF run (cached): the same options as the training labels
        reference.append(read_catalogue(pybdsf_catalogue(path, thresh_isl=3.0, thresh_pix=5.0)))
        if mirror:
            # written once beside the set; PyBDSF's run of it is cached like the others
            flipped = mirror_field(path, root / "mirrored" / split / path.name)
            srl = pybdsf_catalogue(flipped, thresh_isl=3.0, thresh_pix=5.0)
            found["pybdsf_mirrored"].append(read_catalogue(srl))
        if added_noise > 0:
            # "beam": fields whose noise is correlated like the beam (folders without it
            # hold the earlier, wider correlation and are not reused)
            noisier = noisier_field(
                path,
                root / f"noisier_{added_noise:g}_beam" / split / path.name,
                fraction=added_noise,
            )
            srl = pybdsf_catalogue(noisier, thresh_isl=3.0, thresh_pix=5.0)
            found["pybdsf_noisier"].append(read_catalogue(srl))
        with open_field(path) as field:
            mp += field.shape[0] * field.shape[1] / 1e6
            for name, finder in finders.items():
                start = time.perf_counter()
                found[name].append(finder.find(field))
                seconds[name] += time.perf_counter() - start
    ref_path = _stack(reference, output / "pybdsf.fits")
    summary: dict[str, Any] = {
        "split": split,
        "deblend": deblend,
        "added_noise": added_noise,
        "fields": len(fields),
        "megapixels": mp,
    }
    for name in names:
        cat_path = _stack(found[name], output / f"{name}.fits")
        metrics = compare_catalogues(
            reference=ref_path,
            catalog=cat_path,
            output_dir=output / f"{name}_vs_pybdsf",
            beam=(BEAM, BEAM, 0.0),
            overwrite=True,
        )
        summary[name] = {"metrics": metrics, "snr_ge_10": _pooled(metrics, 10.0)}
        if name in seconds:
            summary[name]["seconds"] = seconds[name]
            summary[name]["s_per_mp"] = seconds[name] / mp if mp else math.nan
    atomic_write_json(output / "summary.json", summary)
    atomic_write_text(output / "table.md", format_heldout(summary))
    return summary


def format_heldout(summary: dict) -> str:
    """Markdown table: completeness / reliability per PyBDSF S/N bin, pooled at S/N >= 10,
    over all sources, and over PyBDSF's islands (the island-level score), for each finder."""
    names = [
        k for k in ("detector", "classical", "pybdsf_mirrored", "pybdsf_noisier") if k in summary
    ]
    bins = summary[names[0]]["metrics"]["snr_bins"]
    head = "| PyBDSF S/N | PyBDSF sources | " + " | ".join(
        f"{n} completeness | {n} reliability" for n in names
    )
    lines = [head + " |", "|" + "---|" * (2 + 2 * len(names))]

    def cell(v):
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"

    for i, b in enumerate(bins):
        row = [b["label"], str(b["n_reference"])]
        for n in names:
            nb = summary[n]["metrics"]["snr_bins"][i]
            row += [cell(nb["completeness"]), f"{cell(nb['reliability'])} ({nb['n_catalog']})"]
        lines.append("| " + " | ".join(row) + " |")
    row = [">= 10 (pooled)", str(summary[names[0]]["snr_ge_10"]["n_reference"])]
    for n in names:
        p = summary[n]["snr_ge_10"]
        row += [cell(p["completeness"]), f"{cell(p['reliability'])} ({p['n_catalog']})"]
    lines.append("| " + " | ".join(row) + " |")
    row = ["all", str(summary[names[0]]["metrics"]["n_reference"])]
    for n in names:
        m = summary[n]["metrics"]
        row += [cell(m["completeness"]), f"{cell(m['reliability'])} ({m['n_catalog']})"]
    lines.append("| " + " | ".join(row) + " |")
    first = summary[names[0]]["metrics"]
    if first.get("n_islands") is not None:
        # one detection covering the several PyBDSF sources of an island finds the island
        row = ["islands", str(first["n_islands"])]
        for n in names:
            m = summary[n]["metrics"]
            row += [
                cell(m.get("island_completeness")),
                f"{cell(m.get('island_reliability'))} ({m['n_catalog']})",
            ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


_ISLAND_KEYS = ("n_islands", "n_islands_found", "island_completeness", "island_reliability")


def compare_folders(
    *, reference_dir: Path, catalog_dir: Path, output: Path, overwrite: bool = False
) -> dict:
    """Pool the catalogues of two find_sources folders (the same image stems) and score
    one against the other (``astrodet.sky.crossmatch.compare_catalogues``)."""
    from astrodet.sky import read_catalogue
    from astrodet.sky.crossmatch import compare_catalogues
    from astrodet.utils import prepare_output_dir

    refs = sorted(Path(reference_dir).glob("*.fits"))
    missing = [r.name for r in refs if not (Path(catalog_dir) / r.name).is_file()]
    if not refs or missing:
        raise FileNotFoundError(
            f"{catalog_dir} lacks catalogues of {missing[:3]}"
            if refs
            else f"no catalogues (*.fits) in {reference_dir}"
        )
    output = prepare_output_dir(output, overwrite=overwrite)
    ref = _stack([read_catalogue(r) for r in refs], output / "reference.fits")
    cat = _stack(
        [read_catalogue(Path(catalog_dir) / r.name) for r in refs], output / "catalog.fits"
    )
    metrics = compare_catalogues(
        reference=ref, catalog=cat, output_dir=output / "compare", beam=(BEAM, BEAM, 0.0)
    )
    metrics["snr_ge_10"] = _pooled(metrics, 10.0)
    return metrics


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description="Detector and classical finder against PyBDSF "
        "on the held-out real FIRST fields (or two find_sources folders compared, pooled)."
    )
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS), help="the detector checkpoint")
    p.add_argument("--config-file", default=str(CONFIG))
    p.add_argument("--output", default="output/first_pybdsf_heldout")
    p.add_argument("--score-thresh", type=float, default=0.5)
    p.add_argument(
        "--split",
        choices=["train", "test"],
        default="test",
        help="the FIRST fields scored: test (held out, the default) or train (development)",
    )
    p.add_argument(
        "--deblend",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="detector: one source per separate maximum in a box (DetectorFinder(deblend))",
    )
    p.add_argument(
        "--mirror",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also score PyBDSF on the fields mirrored left to right against itself: how "
        "far its catalogue moves when nothing physical changes",
    )
    p.add_argument(
        "--added-noise",
        type=float,
        default=0.5,
        metavar="F",
        help="also score PyBDSF on the fields with beam-correlated noise of F times their rms "
        "added against itself (0.5: 12%% more noise; 0 skips it): how far its catalogue "
        "moves with the noise",
    )
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--reference-dir", help="find_sources folder of the reference (e.g. PyBDSF)")
    p.add_argument("--catalog-dir", help="find_sources folder to score against it")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if bool(args.reference_dir) != bool(args.catalog_dir):
        p.error("--reference-dir and --catalog-dir go together")
    if args.reference_dir:
        try:
            m = compare_folders(
                reference_dir=Path(args.reference_dir),
                catalog_dir=Path(args.catalog_dir),
                output=Path(args.output),
                overwrite=args.overwrite,
            )
        except (FileNotFoundError, FileExistsError, ValueError) as e:
            p.exit(2, f"{p.prog}: error: {e}\n")
        print(json.dumps(m["snr_ge_10"]))
        print(json.dumps({k: m[k] for k in _ISLAND_KEYS}))
        return 0
    try:
        summary = score_first_heldout(
            weights=Path(args.weights),
            output=Path(args.output),
            config_file=Path(args.config_file),
            overwrite=args.overwrite,
            score_thresh=args.score_thresh,
            split=args.split,
            deblend=args.deblend,
            mirror=args.mirror,
            added_noise=args.added_noise,
        )
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        p.exit(2, f"{p.prog}: error: {e}\n")
    print(format_heldout(summary))
    print(json.dumps({k: summary[k] for k in ("fields", "megapixels")}))
    for n in ("detector", "classical"):
        print(f"{n}: {summary[n]['s_per_mp']:.2f} s/MP")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
