"""Cross-match a catalogue with a reference one: completeness, reliability, by S/N.

Matching is one-to-one: every pair closer than the radius is a candidate, and pairs are
accepted nearest first, each source used once (so two catalogue sources near one reference
source give one match and one spurious source). Positions are compared on the sky
(``SkyCoord.search_around_sky``) when both catalogues have ra/dec, in pixels otherwise.

Radius. Given explicitly, or half the beam FWHM (major axis): from the ``beam`` argument, else
the reference catalogue's meta (``BEAM_MAJ``), else the catalogue's; without any beam, half
the reference's median minor axis (for mostly unresolved sources, the beam).

Metrics. completeness = matched / reference sources; reliability = matched / catalogue
sources; f1 their harmonic mean. Per reference S/N bin (5-10, 10-20, 20-50, >50): reference
sources fall in the bin of their own snr; a matched catalogue source falls in the bin of its
reference source, an unmatched one in the bin of its own snr. Sources whose snr is below 5 or
unknown count in the totals only.
"""

from __future__ import annotations

import io
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "SNR_BINS",
    "Match",
    "compare_catalogues",
    "crossmatch",
    "default_radius",
    "match_metrics",
]

#: Reference S/N bins (lower edge inclusive).
SNR_BINS = ((5.0, 10.0), (10.0, 20.0), (20.0, 50.0), (50.0, math.inf))


@dataclass
class Match:
    """One-to-one matches: ``ref[i]`` is matched to ``cat[i]`` at ``separation[i]``
    (arcsec on the sky, pixels otherwise)."""

    ref: np.ndarray
    cat: np.ndarray
    separation: np.ndarray
    radius: float
    frame: str  # "sky" or "pixel"


def _has_sky(table) -> bool:
    # An empty table has no positions to contradict either frame.
    return bool(
        np.isfinite(np.asarray(table["ra"], float)).all()
        and np.isfinite(np.asarray(table["dec"], float)).all()
    )


def default_radius(reference, catalog=None, *, beam=None) -> tuple[float, str]:
    """Half the beam's major-axis FWHM in arcsec, and where the beam came from.

    Args:
        reference: the reference catalogue.
        catalog: the compared catalogue (its meta beam is the second choice).
        beam: an explicit :class:`~astrodet.sky.field.Beam` or ``(maj, min, pa)`` (arcsec).
    """
    from .catalogue import catalogue_beam

    if beam is not None:
        maj = beam.maj if hasattr(beam, "maj") else float(beam[0])
        return 0.5 * maj, "the given beam"
    for name, table in (("reference", reference), ("catalogue", catalog)):
        b = catalogue_beam(table) if table is not None else None
        if b is not None:
            return 0.5 * b[0], f"the {name}'s beam"
    sizes = np.asarray(reference["min"], float)
    sizes = sizes[np.isfinite(sizes)]
    if len(sizes):
        return 0.5 * float(np.median(sizes)), "the reference's median minor axis"
    raise ValueError(
        "no beam in either catalogue and no sizes in the reference: give the radius "
        "(--radius-arcsec) or the beam (--beam MAJ MIN PA)"
    )


def _candidate_pairs(reference, catalog, radius: float, frame: str):
    if frame == "sky":
        import astropy.units as u
        from astropy.coordinates import SkyCoord

        r = SkyCoord(
            np.asarray(reference["ra"], float) * u.deg, np.asarray(reference["dec"], float) * u.deg
        )
        c = SkyCoord(
            np.asarray(catalog["ra"], float) * u.deg, np.asarray(catalog["dec"], float) * u.deg
        )
        # self.search_around_sky(other) gives (indices into other, indices into self, ...)
        ic, ir, sep, _ = r.search_around_sky(c, radius * u.arcsec)
        return np.asarray(ir), np.asarray(ic), sep.to_value(u.arcsec)
    from scipy.spatial import cKDTree

    pr = np.stack([np.asarray(reference["x"], float), np.asarray(reference["y"], float)], 1)
    pc = np.stack([np.asarray(catalog["x"], float), np.asarray(catalog["y"], float)], 1)
    pairs = cKDTree(pr).sparse_distance_matrix(cKDTree(pc), radius, output_type="ndarray")
    return pairs["i"], pairs["j"], pairs["v"]


def crossmatch(reference, catalog, *, radius: float, pixel_radius: float | None = None) -> Match:
    """Greedy nearest-first one-to-one matching within ``radius``.

    Args:
        reference, catalog: catalogues in our columns.
        radius: arcsec (on the sky).
        pixel_radius: pixels, used when either catalogue lacks ra/dec (default: ``radius``
            over the ``PIXSCALE`` in the meta).
    """
    frame = "sky" if _has_sky(reference) and _has_sky(catalog) else "pixel"
    if frame == "pixel":
        if pixel_radius is None:
            scale = reference.meta.get("PIXSCALE") or catalog.meta.get("PIXSCALE")
            if not scale:
                raise ValueError(
                    "pixel positions only and no pixel scale (PIXSCALE) in the catalogues: "
                    "give the radius in pixels"
                )
            pixel_radius = radius / float(scale)
        radius = pixel_radius
    empty = Match(np.zeros(0, int), np.zeros(0, int), np.zeros(0), radius, frame)
    if len(reference) == 0 or len(catalog) == 0:
        return empty
    ir, ic, sep = _candidate_pairs(reference, catalog, radius, frame)
    keep = sep <= radius
    ir, ic, sep = ir[keep], ic[keep], sep[keep]
    order = np.lexsort((ic, ir, sep))  # nearest first; ties broken by index
    used_r, used_c = set(), set()
    out = []
    for k in order:
        if ir[k] in used_r or ic[k] in used_c:
            continue
        used_r.add(ir[k])
        used_c.add(ic[k])
        out.append(k)
    out = np.asarray(out, dtype=int)
    if not len(out):
        return empty
    return Match(ir[out].astype(int), ic[out].astype(int), sep[out].astype(float), radius, frame)


def _ratios(n: int, d: int) -> float:
    return n / d if d else math.nan


def _f1(c: float, r: float) -> float:
    return (
        2 * c * r / (c + r)
        if (c + r) > 0
        else (math.nan if math.isnan(c) or math.isnan(r) else 0.0)
    )


def _bin_of(snr: np.ndarray) -> np.ndarray:
    """Index of the S/N bin of each value (-1 outside every bin)."""
    out = np.full(len(snr), -1)
    for b, (lo, hi) in enumerate(SNR_BINS):
        out[(snr >= lo) & (snr < hi)] = b
    return out


def match_metrics(reference, catalog, match: Match) -> dict:
    """Completeness, reliability, f1 overall and per reference S/N bin, median offset and
    median total-flux ratio (catalogue / reference) of the matches."""
    n_ref, n_cat, n_match = len(reference), len(catalog), len(match.ref)
    c, r = _ratios(n_match, n_ref), _ratios(n_match, n_cat)
    unit = "arcsec" if match.frame == "sky" else "pixels"
    out = {
        "n_reference": n_ref,
        "n_catalog": n_cat,
        "n_matched": n_match,
        "completeness": c,
        "reliability": r,
        "f1": _f1(c, r),
        "match_frame": match.frame,
        f"radius_{unit}": match.radius,
        f"median_offset_{unit}": float(np.median(match.separation)) if n_match else math.nan,
    }
    ratio = (
        np.asarray(catalog["total_flux"], float)[match.cat]
        / np.asarray(reference["total_flux"], float)[match.ref]
    )
    ratio = ratio[np.isfinite(ratio)]
    out["median_flux_ratio"] = float(np.median(ratio)) if len(ratio) else math.nan

    ref_bin = _bin_of(np.asarray(reference["snr"], float))
    cat_bin = _bin_of(np.asarray(catalog["snr"], float))
    cat_bin[match.cat] = ref_bin[match.ref]  # matched: the bin of their reference source
    ref_matched = np.zeros(n_ref, bool)
    ref_matched[match.ref] = True
    cat_matched = np.zeros(n_cat, bool)
    cat_matched[match.cat] = True
    bins = []
    for b, (lo, hi) in enumerate(SNR_BINS):
        nr, nc = int((ref_bin == b).sum()), int((cat_bin == b).sum())
        mr, mc = (
            int((ref_matched & (ref_bin == b)).sum()),
            int((cat_matched & (cat_bin == b)).sum()),
        )
        bc, br = _ratios(mr, nr), _ratios(mc, nc)
        bins.append(
            {
                "snr_min": lo,
                "snr_max": None if math.isinf(hi) else hi,
                "label": f"{lo:g}-{hi:g}" if math.isfinite(hi) else f">{lo:g}",
                "n_reference": nr,
                "n_catalog": nc,
                "n_matched": mr,
                "completeness": bc,
                "reliability": br,
                "f1": _f1(bc, br),
            }
        )
    out["snr_bins"] = bins
    return out


def _plot(metrics: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from astrodet.utils import atomic_save_figure

    bins = metrics["snr_bins"]
    labels = [b["label"] for b in bins]
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    for key, marker in (("completeness", "o"), ("reliability", "s")):
        ax.plot(
            labels, [np.nan if b[key] is None else b[key] for b in bins], marker=marker, label=key
        )
    ax.set_xlabel("reference S/N (peak / rms)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(
        f"{metrics['n_matched']} matched / {metrics['n_reference']} reference / {metrics['n_catalog']} found"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    atomic_save_figure(fig, path)


def _pixels(table, field) -> tuple[np.ndarray, np.ndarray]:
    if field.wcs is not None and _has_sky(table):
        return field.world_to_pixel(table["ra"], table["dec"])
    return np.asarray(table["x"], float), np.asarray(table["y"], float)


def in_field(table, field, *, chunk: int = 2048) -> np.ndarray:
    """Which sources of ``table`` lie on the data of ``field``: inside its bounds, on a
    finite pixel (not the blanked corners of a mosaic or beyond a primary-beam cut).

    Args:
        table: a catalogue (sky positions when both it and the field have them, else x/y).
        field: an open :class:`~astrodet.sky.field.Field`.
        chunk: pixels are read in blocks of this side, so memory stays bounded.
    """
    x, y = _pixels(table, field)
    ny, nx = field.shape
    with np.errstate(invalid="ignore"):
        ix, iy = np.floor(np.asarray(x) + 0.5), np.floor(np.asarray(y) + 0.5)
        inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
    ix, iy = np.where(inside, ix, 0).astype(int), np.where(inside, iy, 0).astype(int)
    keys = (iy // chunk) * (nx // chunk + 1) + ix // chunk
    for key in np.unique(keys[inside]):
        rows = np.flatnonzero(inside & (keys == key))
        y0, x0 = (iy[rows[0]] // chunk) * chunk, (ix[rows[0]] // chunk) * chunk
        finite = field.finite_mask(y0, y0 + chunk, x0, x0 + chunk)
        inside[rows] = finite[iy[rows] - y0, ix[rows] - x0]
    return inside


def snr_from_field(table, field) -> np.ndarray:
    """S/N of each source measured on ``field``: the brightest pixel within a beam of its
    position over the local rms (background map), as the detector's catalogue measures
    it; for reference lists that give no noise (e.g. integrated fluxes only)."""
    from .finders.detector import measure_field

    x, y = _pixels(table, field)
    half = max(field.beam_pixels(), 1.0)
    boxes = np.stack([x + 0.5 - half, y + 0.5 - half, x + 0.5 + half, y + 0.5 + half], 1)
    if not len(boxes):
        return np.zeros(0)
    measured = measure_field(field, boxes.reshape(-1, 4), np.ones(len(boxes)), meta={})
    return np.asarray(measured["snr"], float)


def _beyond_extent(ref, cat, radius_arcsec: float) -> int:
    """How many reference sources lie farther from the catalogue's centre than its farthest
    source plus the match radius (0 without sky positions on both sides)."""
    if len(cat) < 2 or not (_has_sky(ref) and _has_sky(cat)):
        return 0
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    c = SkyCoord(np.asarray(cat["ra"], float) * u.deg, np.asarray(cat["dec"], float) * u.deg)
    r = SkyCoord(np.asarray(ref["ra"], float) * u.deg, np.asarray(ref["dec"], float) * u.deg)
    centre = SkyCoord(c.cartesian.mean(), representation_type="cartesian").spherical
    centre = SkyCoord(centre.lon, centre.lat)
    reach = c.separation(centre).max() + radius_arcsec * u.arcsec
    return int((r.separation(centre) > reach).sum())


def _restrict(ref, cat, field, metrics: dict):
    """Both catalogues cut to the field's data; unknown reference S/N measured on it."""
    kept = []
    for name, table in (("reference", ref), ("catalog", cat)):
        keep = in_field(table, field)
        metrics[f"n_{name}_outside_image"] = int((~keep).sum())
        if not keep.all():
            logger.info("%s: %d of %d sources off the image's data", name, (~keep).sum(), len(keep))
        kept.append(table[keep])
    ref, cat = kept
    unknown = ~np.isfinite(np.asarray(ref["snr"], float))
    metrics["n_reference_snr_from_image"] = int(unknown.sum())
    if unknown.any():
        logger.info("reference: S/N of %d sources measured on the image", unknown.sum())
        snr = np.asarray(ref["snr"], float)
        snr[unknown] = snr_from_field(ref[unknown], field)
        ref["snr"] = snr
    return ref, cat


def compare_catalogues(
    *,
    reference: str | os.PathLike,
    catalog: str | os.PathLike,
    output_dir: str | os.PathLike,
    radius_arcsec: float | None = None,
    beam=None,
    image: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> dict:
    """Cross-match ``catalog`` with ``reference`` and write the comparison.

    Writes ``output_dir/metrics.json`` (see :func:`match_metrics`, plus the files and the
    radius and where it came from), ``output_dir/matches.csv`` (reference and catalogue row,
    separation) and ``output_dir/completeness.png``.

    Args:
        reference: reference catalogue (PyBDSF srl/gaul, Aegean or ours).
        catalog: the catalogue to score (any format :func:`read_catalogue` reads).
        output_dir: the output folder (refused when it exists, unless ``overwrite``).
        radius_arcsec: the match radius; default half the beam (see the module notes).
        beam: ``(maj, min, pa)`` arcsec/deg or a Beam, for the default radius (and the
            image's beam when its header has none).
        image: the FITS field both catalogues were made from. Sources off its data (out of
            bounds or on NaN pixels) are left out of both, as a survey-wide reference list
            would otherwise count the sky around the field as missed; its beam gives the
            default radius; reference sources without an S/N (no rms column) get one
            measured on it. The counts are in the metrics (``n_*_outside_image``,
            ``n_reference_snr_from_image``).
        overwrite: replace an existing output folder.
    """
    from astropy.table import Table

    from astrodet.utils import atomic_write_json, atomic_write_text, prepare_output_dir

    from .catalogue import read_catalogue

    ref = read_catalogue(reference)
    cat = read_catalogue(catalog)
    source = None if radius_arcsec is None else "given"
    cut: dict = {}
    if image is not None:
        from .field import open_field

        with open_field(image, beam=beam) as field:
            ref, cat = _restrict(ref, cat, field, cut)
            if source is None and beam is None:
                radius_arcsec, source = 0.5 * field.beam.maj, "the image's beam"
    if source is None:
        radius_arcsec, source = default_radius(ref, cat, beam=beam)
    if not radius_arcsec > 0:
        raise ValueError(f"the match radius must be positive, got {radius_arcsec}")
    if image is None:
        beyond = _beyond_extent(ref, cat, radius_arcsec)
        if beyond > 0.2 * len(ref):
            logger.warning(
                "%d of %d reference sources lie beyond the sky the catalogue covers: they count "
                "as missed; give the field (--image) to compare on its data only",
                beyond,
                len(ref),
            )
    out = prepare_output_dir(output_dir, overwrite=overwrite)
    match = crossmatch(ref, cat, radius=radius_arcsec)
    metrics = match_metrics(ref, cat, match)
    metrics.update(
        reference=str(reference),
        catalog=str(catalog),
        radius_arcsec=radius_arcsec,
        radius_from=source,
        **({"image": str(image), **cut} if image is not None else {}),
    )
    atomic_write_json(out / "metrics.json", metrics)
    pairs = Table(
        {"reference_row": match.ref, "catalog_row": match.cat, "separation": match.separation}
    )
    buf = io.StringIO()
    pairs.write(buf, format="ascii.csv")
    atomic_write_text(out / "matches.csv", buf.getvalue())
    _plot(metrics, out / "completeness.png")
    logger.info(
        "%d/%d reference sources matched within %.2f %s (%s): completeness %.3f, reliability %.3f",
        match.ref.size,
        len(ref),
        match.radius,
        "arcsec" if match.frame == "sky" else "px",
        source,
        metrics["completeness"],
        metrics["reliability"],
    )
    return metrics
