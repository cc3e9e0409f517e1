"""Cross-match a catalogue with a reference one: completeness, reliability, by S/N, and by
island.

Matching is one-to-one and optimal: every pair closer than the radius is a candidate, and
the pairs kept are those that match the most sources and, among such choices, have the
smallest total separation (``scipy.optimize.linear_sum_assignment`` on each connected group
of candidates, so large crowded catalogues stay fast). Accepting pairs nearest first would
not: in a crowded field one close pair can take a source that two other pairs needed.
Positions are compared on the sky (``SkyCoord.search_around_sky``) when both catalogues
have ra/dec, in pixels otherwise. Rows without a sky position in a catalogue that has them
elsewhere (a NaN ra or dec) do not switch the rest to pixels: they are matched by their
pixel position, the pixel separation turned into arcsec with the pixel scale
(``pixel_radius`` over ``radius``, or ``PIXSCALE``); without a pixel position or scale they
stay unmatched, and a warning counts them (``n_*_without_sky`` in the metrics).

Radius. Given explicitly, or half the beam FWHM (major axis): from the ``beam`` argument, else
the reference catalogue's meta (``BEAM_MAJ``), else the catalogue's; without any beam, half
the reference's median minor axis (for mostly unresolved sources, the beam).

Metrics. completeness = matched / reference sources; reliability = matched / catalogue
sources; f1 their harmonic mean. Per reference S/N bin (5-10, 10-20, 20-50, >50): reference
sources fall in the bin of their own snr; a matched catalogue source falls in the bin of its
reference source, an unmatched one in the bin of its own snr. Sources whose snr is below 5 or
unknown count in the totals only.

Islands. When the reference gives islands (``island_id``: PyBDSF's ``Isl_id``), a second
score counts islands rather than sources, as one detection covering the several PyBDSF
sources of one island has found that island. Each catalogue source is given to at most one
island: that of its one-to-one match, else that of the nearest reference source within the
radius, inside the catalogue source's FWHM ellipse, or whose FWHM ellipse it lies in (a
detection of a piece of an extended island). island completeness = islands given at
least one catalogue source / islands; island reliability = catalogue sources given an island
/ catalogue sources (``island_*`` keys; None without island ids).
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
    "island_metrics",
    "match_metrics",
    "optimal_pairs",
    "snr_from_field",
]

#: Reference S/N bins (lower edge inclusive).
SNR_BINS = ((5.0, 10.0), (10.0, 20.0), (20.0, 50.0), (50.0, math.inf))


@dataclass
class Match:
    """One-to-one matches: ``ref[i]`` is matched to ``cat[i]`` at ``separation[i]``
    (arcsec on the sky, pixels otherwise). ``by_pixels[i]``: that pair was matched on pixel
    positions (every pair in the pixel frame; in the sky frame, rows without ra/dec)."""

    ref: np.ndarray
    cat: np.ndarray
    separation: np.ndarray
    radius: float
    frame: str  # "sky" or "pixel"
    by_pixels: np.ndarray | None = None
    #: rows of the reference and of the catalogue that had no position to match by
    n_reference_unplaced: int = 0
    n_catalog_unplaced: int = 0

    def __post_init__(self):
        if self.by_pixels is None:
            self.by_pixels = np.full(len(self.ref), self.frame == "pixel")


#: Groups of candidate pairs up to this many reference x catalogue sources are solved with a
#: dense cost matrix; larger ones (a radius much larger than the source spacing) sparsely.
DENSE_LIMIT = 1_000_000


def _sky_rows(table) -> np.ndarray:
    return np.isfinite(np.asarray(table["ra"], float)) & np.isfinite(
        np.asarray(table["dec"], float)
    )


def _pixel_rows(table) -> np.ndarray:
    return np.isfinite(np.asarray(table["x"], float)) & np.isfinite(np.asarray(table["y"], float))


def _has_sky(table) -> bool:
    # An empty table has no positions to contradict either frame.
    return bool(_sky_rows(table).all())


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


def _skycoord(table, rows):
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    return SkyCoord(
        np.asarray(table["ra"], float)[rows] * u.deg, np.asarray(table["dec"], float)[rows] * u.deg
    )


def _sky_pairs(reference, catalog, rows_r, rows_c, radius: float):
    """Pairs (reference row, catalogue row, arcsec) closer than ``radius`` among the given
    rows (integer arrays) of each."""
    import astropy.units as u

    if not len(rows_r) or not len(rows_c):
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    r, c = _skycoord(reference, rows_r), _skycoord(catalog, rows_c)
    # self.search_around_sky(other) gives (indices into other, indices into self, ...)
    ic, ir, sep, _ = r.search_around_sky(c, radius * u.arcsec)
    return rows_r[np.asarray(ir, int)], rows_c[np.asarray(ic, int)], sep.to_value(u.arcsec)


def _pixel_pairs(reference, catalog, rows_r, rows_c, radius: float):
    """Pairs (reference row, catalogue row, pixels) closer than ``radius`` pixels."""
    from scipy.spatial import cKDTree

    if not len(rows_r) or not len(rows_c):
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    pr = np.stack([np.asarray(reference["x"], float), np.asarray(reference["y"], float)], 1)
    pc = np.stack([np.asarray(catalog["x"], float), np.asarray(catalog["y"], float)], 1)
    pairs = cKDTree(pr[rows_r]).sparse_distance_matrix(
        cKDTree(pc[rows_c]), radius, output_type="ndarray"
    )
    return rows_r[pairs["i"]], rows_c[pairs["j"]], np.asarray(pairs["v"], float)


def _solve_group(r, c, w, big: float) -> np.ndarray:
    """Indices into the pairs ``(r, c, w)`` (one connected group; local row and column
    numbers) of the assignment with the most pairs, then the least total ``w``."""
    from scipy.optimize import linear_sum_assignment

    nr, nc = int(r.max()) + 1, int(c.max()) + 1
    if nr * nc <= DENSE_LIMIT:
        # non-candidates cost more than any assignment of candidates can save: the number
        # of matches comes first, then the separations
        cost = np.full((nr, nc), big)
        index = np.full((nr, nc), -1)
        cost[r, c], index[r, c] = w, np.arange(len(r))
        rows, cols = linear_sum_assignment(cost)
        chosen = index[rows, cols]
        return chosen[chosen >= 0]
    return _solve_sparse(r, c, w, big, nr, nc)


def _solve_sparse(r, c, w, big: float, nr: int, nc: int) -> np.ndarray:
    """:func:`_solve_group` on a sparse matrix (LAPJVsp). Each source may instead pair with
    a dummy of its own at cost ``big`` (left unmatched); the dummies of a matched pair pair
    with each other at almost no cost, so a full matching always exists."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    eps = 1e-9 * big  # the solver reads zero weights as missing edges
    n = len(r)
    rows = np.concatenate([r, np.arange(nr), nr + np.arange(nc), nr + c])
    cols = np.concatenate([c, nc + np.arange(nr), np.arange(nc), nc + r])
    vals = np.concatenate([w + eps, np.full(nr, big), np.full(nc, big), np.full(n, eps)])
    graph = csr_matrix((vals, (rows, cols)), shape=(nr + nc, nc + nr))
    row_ind, col_ind = min_weight_full_bipartite_matching(graph)
    real = (row_ind < nr) & (col_ind < nc)
    keys = r.astype(np.int64) * nc + c
    order = np.argsort(keys)
    found = row_ind[real].astype(np.int64) * nc + col_ind[real]
    return order[np.searchsorted(keys, found, sorter=order)]


def optimal_pairs(ir, ic, sep, *, radius: float) -> np.ndarray:
    """Indices of the candidate pairs ``(ir[k], ic[k], sep[k])`` (each pair once, every
    ``sep`` at most ``radius``) kept in the optimal one-to-one assignment: the most matches,
    then the least total separation. Solved per connected group of candidates.

    Args:
        ir, ic: reference and catalogue rows of each candidate pair.
        sep: their separations.
        radius: the largest separation (sets the cost of leaving a source unmatched).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ir, ic, sep = np.asarray(ir, int), np.asarray(ic, int), np.asarray(sep, float)
    if not len(ir):
        return np.zeros(0, int)
    _, ref_node = np.unique(ir, return_inverse=True)
    _, cat_node = np.unique(ic, return_inverse=True)
    n_ref = int(ref_node.max()) + 1
    n = n_ref + int(cat_node.max()) + 1
    graph = coo_matrix((np.ones(len(ir)), (ref_node, n_ref + cat_node)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    group = label[ref_node]
    size = np.bincount(group)
    keep = [np.flatnonzero(size[group] == 1)]  # a lone pair is its own answer
    multi = np.flatnonzero(size[group] > 1)
    multi = multi[np.argsort(group[multi], kind="stable")]
    bounds = np.flatnonzero(np.diff(group[multi])) + 1
    for pairs in np.split(multi, bounds) if len(multi) else []:
        _, r = np.unique(ir[pairs], return_inverse=True)
        _, c = np.unique(ic[pairs], return_inverse=True)
        # larger than any total of separations over the group: one more match always wins
        big = (min(r.max(), c.max()) + 2.0) * (float(radius) + 1.0)
        keep.append(pairs[_solve_group(r.ravel(), c.ravel(), sep[pairs], big)])
    return np.sort(np.concatenate(keep))


def crossmatch(reference, catalog, *, radius: float, pixel_radius: float | None = None) -> Match:
    """Optimal one-to-one matching within ``radius``: the most matches, then the smallest
    total separation (see the module notes).

    Args:
        reference, catalog: catalogues in our columns.
        radius: arcsec (on the sky).
        pixel_radius: pixels, used when either catalogue has no ra/dec at all, and for the
            rows without ra/dec of one that has them elsewhere (default: ``radius`` over
            the ``PIXSCALE`` in the meta).
    """
    sky_r, sky_c = _sky_rows(reference), _sky_rows(catalog)
    pix_r, pix_c = _pixel_rows(reference), _pixel_rows(catalog)
    # an empty side has no positions to contradict either frame
    frame = (
        "sky"
        if (sky_r.any() or not len(reference)) and (sky_c.any() or not len(catalog))
        else "pixel"
    )
    if pixel_radius is None:
        scale = reference.meta.get("PIXSCALE") or catalog.meta.get("PIXSCALE")
        pixel_radius = radius / float(scale) if scale else None
    if frame == "pixel" and pixel_radius is None and len(reference) and len(catalog):
        raise ValueError(
            "pixel positions only and no pixel scale (PIXSCALE) in the catalogues: "
            "give the radius in pixels"
        )
    ir, ic, sep = [np.zeros(0, int)], [np.zeros(0, int)], [np.zeros(0)]
    by_pix = [np.zeros(0, bool)]

    def add(pairs, pixels: bool):
        ir.append(pairs[0])
        ic.append(pairs[1])
        sep.append(pairs[2])
        by_pix.append(np.full(len(pairs[0]), pixels))

    if frame == "pixel":
        unplaced_r, unplaced_c = ~pix_r, ~pix_c
        if pixel_radius is not None:
            add(
                _pixel_pairs(
                    reference, catalog, *map(np.flatnonzero, (pix_r, pix_c)), pixel_radius
                ),
                True,
            )
        radius = pixel_radius if pixel_radius is not None else radius
    else:
        add(_sky_pairs(reference, catalog, *map(np.flatnonzero, (sky_r, sky_c)), radius), False)
        # rows without ra/dec: by pixels against every row of the other side that has them
        lone_r, lone_c = ~sky_r & pix_r, ~sky_c & pix_c
        if pixel_radius is not None and (lone_r.any() or lone_c.any()):
            arcsec_per_pixel = radius / pixel_radius
            for rows_r, rows_c in ((lone_r, pix_c), (sky_r & pix_r, lone_c)):
                r, c, s = _pixel_pairs(
                    reference, catalog, *map(np.flatnonzero, (rows_r, rows_c)), pixel_radius
                )
                add((r, c, s * arcsec_per_pixel), True)
            unplaced_r, unplaced_c = ~sky_r & ~pix_r, ~sky_c & ~pix_c
        else:
            unplaced_r, unplaced_c = ~sky_r, ~sky_c
        lacking = int((~sky_r).sum()), int((~sky_c).sum())
        if any(lacking):
            logger.warning(
                "%d reference and %d catalogue sources have no ra/dec: %s",
                *lacking,
                "matched by pixel position"
                if pixel_radius is not None
                else "left unmatched (no pixel scale to match them by pixel position)",
            )
    ir, ic, sep, by_pix = (np.concatenate(a) for a in (ir, ic, sep, by_pix))
    keep = sep <= radius
    ir, ic, sep, by_pix = ir[keep], ic[keep], sep[keep], by_pix[keep]
    chosen = optimal_pairs(ir, ic, sep, radius=radius)
    chosen = chosen[np.lexsort((ic[chosen], ir[chosen]))]  # by reference row
    unplaced = int(unplaced_r.sum()), int(unplaced_c.sum())
    if frame == "pixel" and any(unplaced):
        logger.warning(
            "%d reference and %d catalogue sources have no position: left unmatched", *unplaced
        )
    return Match(
        ir[chosen].astype(int),
        ic[chosen].astype(int),
        sep[chosen].astype(float),
        float(radius),
        frame,
        by_pix[chosen],
        *unplaced,
    )


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


def _island_ids(reference) -> np.ndarray | None:
    """Island of each reference source (a source with a negative or missing id is an
    island of its own), or None when the reference gives no islands."""
    if "island_id" not in reference.colnames:
        return None
    ids = np.ma.filled(np.ma.asarray(reference["island_id"]), -1).astype(np.int64)
    lone = ids < 0
    ids[lone] = ids.max(initial=0) + 1 + np.arange(int(lone.sum()))
    return ids


def _covering_pairs(points, shapes, match: Match):
    """Pairs (row of ``points``, row of ``shapes``, separation) where the source of
    ``points`` lies within the match radius of the source of ``shapes`` or inside its FWHM
    ellipse, in the match's frame (the sky; pixels when it is the pixel frame)."""
    reference, catalog = points, shapes
    maj = np.asarray(catalog["maj"], float)
    mn = np.asarray(catalog["min"], float)
    pa = np.deg2rad(np.nan_to_num(np.asarray(catalog["pa"], float)))
    if match.frame == "sky":
        import astropy.units as u

        rows_r, rows_c = np.flatnonzero(_sky_rows(reference)), np.flatnonzero(_sky_rows(catalog))
        half = maj[rows_c] / 2.0
    else:
        rows_r, rows_c = (
            np.flatnonzero(_pixel_rows(reference)),
            np.flatnonzero(_pixel_rows(catalog)),
        )
        scale = float(catalog.meta.get("PIXSCALE") or 1.0)  # sizes in pixels without one
        maj, mn = maj / scale, mn / scale
        half = maj[rows_c] / 2.0
    half = half[np.isfinite(half)]
    reach = max(match.radius, float(half.max()) if len(half) else 0.0)
    if match.frame == "sky":
        ir, ic, sep = _sky_pairs(reference, catalog, rows_r, rows_c, reach)
        if len(ir):
            c = _skycoord(catalog, ic)
            east, north = c.spherical_offsets_to(_skycoord(reference, ir))
            east, north = east.to_value(u.arcsec), north.to_value(u.arcsec)
        else:
            east = north = np.zeros(0)
    else:
        ir, ic, sep = _pixel_pairs(reference, catalog, rows_r, rows_c, reach)
        # pixel sizes assume north up, east to -x (as the pixel regions do)
        east = -(np.asarray(reference["x"], float)[ir] - np.asarray(catalog["x"], float)[ic])
        north = np.asarray(reference["y"], float)[ir] - np.asarray(catalog["y"], float)[ic]
    along = east * np.sin(pa[ic]) + north * np.cos(pa[ic])
    across = east * np.cos(pa[ic]) - north * np.sin(pa[ic])
    with np.errstate(invalid="ignore", divide="ignore"):
        inside = (along / (maj[ic] / 2.0)) ** 2 + (across / (mn[ic] / 2.0)) ** 2 <= 1.0
    keep = (sep <= match.radius) | inside
    return ir[keep], ic[keep], sep[keep]


def island_metrics(reference, catalog, match: Match) -> dict:
    """The island-level score (see the module notes): ``n_islands``, ``n_islands_found``,
    ``n_catalog_on_islands``, ``island_completeness``, ``island_reliability``,
    ``island_f1``; all None when the reference gives no ``island_id``.

    Args:
        reference, catalog: the catalogues matched.
        match: their one-to-one :class:`Match`.
    """
    keys = (
        "n_islands",
        "n_islands_found",
        "n_catalog_on_islands",
        "island_completeness",
        "island_reliability",
        "island_f1",
    )
    islands = _island_ids(reference)
    if islands is None:
        return dict.fromkeys(keys)
    n_cat = len(catalog)
    given = np.full(n_cat, -1, np.int64)  # the island each catalogue source is given
    ir, ic, sep = np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    if n_cat and len(reference):
        # reference sources inside a detection's ellipse, and detections inside a reference
        # source's (a piece of an extended island)
        ir, ic, sep = _covering_pairs(reference, catalog, match)
        jc, jr, sep2 = _covering_pairs(catalog, reference, match)
        ir, ic, sep = (
            np.concatenate([ir, jr]),
            np.concatenate([ic, jc]),
            np.concatenate([sep, sep2]),
        )
    if len(ir):
        # the nearest covered reference source decides: write nearest last
        order = np.argsort(-np.asarray(sep), kind="stable")
        given[np.asarray(ic)[order]] = islands[np.asarray(ir)[order]]
    given[match.cat] = islands[match.ref]  # a one-to-one match decides first
    n_islands = len(np.unique(islands))
    found = len(np.unique(given[given >= 0]))
    on = int((given >= 0).sum())
    c, r = _ratios(found, n_islands), _ratios(on, n_cat)
    return dict(zip(keys, (n_islands, found, on, c, r, _f1(c, r))))


def match_metrics(reference, catalog, match: Match) -> dict:
    """Completeness, reliability, f1 overall and per reference S/N bin, median offset and
    median total-flux ratio (catalogue / reference) of the matches, the island-level score
    (:func:`island_metrics`) and the rows matched by pixel position for want of ra/dec
    (``n_matched_by_pixels``, ``n_*_unplaced``: without any position, left unmatched)."""
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
        "n_matched_by_pixels": int(np.count_nonzero(match.by_pixels)),
        "n_reference_unplaced": match.n_reference_unplaced,
        "n_catalog_unplaced": match.n_catalog_unplaced,
        **island_metrics(reference, catalog, match),
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


def snr_from_field(table, field, *, chunk: int = 2048) -> np.ndarray:
    """S/N of each source measured on ``field``: the background-subtracted image at the
    source's position (cubic spline interpolation between pixels) over the local rms
    (background map); for reference lists that give no noise (e.g. integrated fluxes only).

    The value at the catalogued position, not the brightest pixel near it: the largest of
    the dozen noisy pixels within a beam is biased high by about one rms at any S/N (the
    expected maximum of a dozen noise draws), so faint sources would land in too high a
    bin; at the position the noise averages out. NaN off the image or on blanked pixels.

    Args:
        table: a catalogue (sky positions when both it and the field have them, else x/y).
        field: an open :class:`~astrodet.sky.field.Field`.
        chunk: the field is read in blocks of this side (plus a margin for the background).
    """
    from scipy import ndimage

    from .measure import background_map

    x, y = (np.asarray(v, float) for v in _pixels(table, field))
    out = np.full(len(x), np.nan)
    ny, nx = field.shape
    ok = np.isfinite(x) & np.isfinite(y) & (x > -0.5) & (x < nx - 0.5) & (y > -0.5) & (y < ny - 0.5)
    # a background box's worth around each block, so the maps at its edge are as inside
    margin = int(math.ceil(8 * max(field.beam_pixels(), 1.0)))
    keys = (np.floor(y + 0.5) // chunk) * (nx // chunk + 1) + np.floor(x + 0.5) // chunk
    for key in np.unique(keys[ok]):
        rows = np.flatnonzero(ok & (keys == key))
        cy, cx = int(np.floor(y[rows[0]] + 0.5)) // chunk, int(np.floor(x[rows[0]] + 0.5)) // chunk
        y0, x0 = max(0, cy * chunk - margin), max(0, cx * chunk - margin)
        y1, x1 = min(ny, (cy + 1) * chunk + margin), min(nx, (cx + 1) * chunk + margin)
        image = field.read(y0, y1, x0, x1).astype(np.float64)
        bkg, rms = background_map(image, beam_pixels=field.beam_pixels())
        signal = image - bkg
        blank = ~np.isfinite(signal)
        # NaN would spread through the spline's prefilter: zero it, and give NaN to any
        # source whose nearest pixel is blank
        signal[blank] = 0.0
        coords = np.stack([y[rows] - y0, x[rows] - x0])
        value = ndimage.map_coordinates(signal, coords, order=3, mode="nearest")
        near = np.clip(np.round(coords).astype(int), 0, np.array(signal.shape)[:, None] - 1)
        value[blank[near[0], near[1]]] = np.nan
        out[rows] = value / rms[near[0], near[1]]
    return out


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

    Writes ``output_dir/metrics.json`` (see :func:`match_metrics`: the source-level and,
    when the reference gives ``island_id``, the island-level score; plus the files and the
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
    if metrics["n_islands"] is not None:
        logger.info(
            "%d/%d reference islands found: island completeness %.3f, reliability %.3f",
            metrics["n_islands_found"],
            metrics["n_islands"],
            metrics["island_completeness"],
            metrics["island_reliability"],
        )
    return metrics
