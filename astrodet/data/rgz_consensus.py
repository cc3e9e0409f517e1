"""Radio Galaxy Zoo DR1 consensus: its sources (one entry per physical source) and the box
of a source on an image.

Boxes (the rule). For each RGZ source the box is the bounding box of the union of
(1) the image's own emission connected to its components: pixels above ``nsigma`` x rms
(sigma-clipped background and rms of the whole image; for clipped 8-bit images every pixel
above zero) in 8-connected regions that come within one beam FWHM of a component's
position, kept within half the source's RGZ angular extent plus two beams of the mean
component position (so that a neighbour joined by faint emission does not widen the box),
and (2) a square of one beam FWHM half-side around each component (a component's own
extent, also where its emission is below the threshold).

Sources. RGZ DR1 lists a source once per subject that shows it: entries sharing a component
position are one source (:func:`unique_rgz_sources`; the highest consensus level stands).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from astrodet.data.rgz import RGZ_CLASSES, read_rgz_catalogue

__all__ = ["consensus_box", "emission_regions", "read_rgz_sources", "unique_rgz_sources"]

#: FIRST's 5.4" beam FWHM in its 1.8" pixels: seed radius and a component's half-side.
FIRST_BEAM_PX = 3.0


# ------------------------------------------------------------------------------ catalogue
def _numbers(text: str, what: str, source: str) -> np.ndarray:
    try:
        return np.asarray([float(v) for v in str(text).split(";") if v.strip()], float)
    except ValueError:
        raise ValueError(
            f"RGZ source {source}: {what} {text!r} is not a ';' list of numbers"
        ) from None


def read_rgz_sources(path: str | os.PathLike) -> list[dict]:
    """The RGZ DR1 sources of ``full_catalogue.csv`` (or its ``.tgz``).

    Args:
        path: the catalogue; ClaRAN's split is its ``training`` column (1 train, 0 test),
            else ``testD1.txt`` beside it.

    Returns:
        ``{"catalog_id", "first_id", "class", "ra", "dec" (arrays, one per component),
        "ang_extent" (arcsec), "cl", "claran_split"}`` per source.

    Raises:
        ValueError: naming the source, when its components and peaks are not one of the six
            classes or its component lists disagree with ``num_cpnts``.
    """
    path = Path(path)
    rows = read_rgz_catalogue(path)
    test_ids = None
    if rows and "training" not in rows[0]:
        listed = path.parent / "testD1.txt"
        if not listed.is_file():
            raise ValueError(f"{path}: no 'training' column and no {listed} for ClaRAN's split")
        test_ids = {ln.strip().split("_")[0] for ln in listed.read_text().splitlines()}
    out = []
    for row in rows:
        name = f"{row.get('catalog_id', '?')} ({row.get('first_id', '?')})"
        if row["rgz_class"] is None:
            raise ValueError(
                f"RGZ source {name} in {path}: {row['num_cpnts']} components and "
                f"{row['num_peaks']} peaks is not one of the six classes {RGZ_CLASSES}"
            )
        ra = _numbers(row["cpnts_ras"], "cpnts_ras", name)
        dec = _numbers(row["cpnts_decs"], "cpnts_decs", name)
        if not len(ra) == len(dec) == row["num_cpnts"]:
            raise ValueError(
                f"RGZ source {name} in {path}: num_cpnts is {row['num_cpnts']} but it lists "
                f"{len(ra)} RAs and {len(dec)} Decs"
            )
        if test_ids is None:
            test = str(row["training"]).strip() == "0"
        else:
            test = row["first_id"] in test_ids
        out.append(
            {
                "catalog_id": int(row["catalog_id"]),
                "first_id": row["first_id"],
                "class": row["rgz_class"],
                "ra": ra,
                "dec": dec,
                "ang_extent": float(row["ang_extent"]),
                "cl": float(row["cl"]),
                "claran_split": "test" if test else "train",
            }
        )
    return out


def unique_rgz_sources(sources: list[dict], *, radius_arcsec: float = 1.0) -> tuple[list, dict]:
    """One entry per physical source: RGZ DR1 lists a source once per subject that shows it
    (overlapping subjects), with the same component positions.

    Entries are taken by decreasing consensus level (then catalogue id); an entry sharing a
    component (within ``radius_arcsec``) with one already taken is dropped: a
    ``duplicate`` when its components are the same, else a ``conflict`` (the subjects'
    volunteers grouped the components differently; the higher consensus stands). The
    kept entry goes to ClaRAN's test split when any entry it stands for is there.

    Returns:
        (kept sources, counts ``duplicates``, ``duplicates_other_class``, ``conflicts``,
        ``claran_split_disagreements``).
    """
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    order = sorted(range(len(sources)), key=lambda i: (-sources[i]["cl"], sources[i]["catalog_id"]))
    owner = np.concatenate([np.full(len(s["ra"]), i) for i, s in enumerate(sources)])
    coords = SkyCoord(
        np.concatenate([s["ra"] for s in sources]),
        np.concatenate([s["dec"] for s in sources]),
        unit="deg",
    )
    a, b, _, _ = coords.search_around_sky(coords, radius_arcsec * u.arcsec)
    matched = defaultdict(set)  # (entry, other entry) -> the entry's components they share
    for ca, cb in zip(a, b):
        if owner[ca] != owner[cb]:
            matched[int(owner[ca]), int(owner[cb])].add(int(ca))
    shares = defaultdict(set)
    for x, y in matched:
        shares[x].add(y)
    taken: dict[int, dict] = {}
    counts = Counter()
    for i in order:
        rivals = sorted(j for j in shares[i] if j in taken)
        if not rivals:
            taken[i] = {**sources[i], "duplicates": []}
            continue
        keep = taken[rivals[0]]
        n = len(sources[i]["ra"])
        same = (
            len(rivals) == 1
            and n == len(keep["ra"])
            and len(matched[i, rivals[0]]) == n
            and len(matched[rivals[0], i]) == n
        )
        if same:
            counts["duplicates"] += 1
            counts["duplicates_other_class"] += sources[i]["class"] != keep["class"]
        else:
            counts["conflicts"] += 1
        keep["duplicates"].append(sources[i]["catalog_id"])
        if sources[i]["claran_split"] != keep["claran_split"]:
            counts["claran_split_disagreements"] += 1
            keep["claran_split"] = "test"
    kept = [taken[i] for i in sorted(taken)]
    names = ("duplicates", "duplicates_other_class", "conflicts", "claran_split_disagreements")
    return kept, {k: int(counts[k]) for k in names}


# ------------------------------------------------------------------------------ boxes
def consensus_box(
    *,
    labels: np.ndarray,
    components: np.ndarray,
    ang_extent_px: float,
    beam_px: float = FIRST_BEAM_PX,
) -> np.ndarray:
    """The box of one RGZ source (the rule of the module docstring).

    Args:
        labels: connected regions of the image's emission (0 = none), FITS orientation.
        components: (K, 2) 0-based pixel positions ``x, y`` of its components.
        ang_extent_px: the source's RGZ angular extent in pixels.
        beam_px: beam FWHM in pixels (seed radius and each component's half-side).

    Returns:
        ``[x0, y0, x1, y1]`` in pixel edges (pixel ``i`` spans ``[i, i + 1)``), in the
        image's frame (not clipped).
    """
    components = np.asarray(components, float).reshape(-1, 2)
    h, w = labels.shape
    yy, xx = np.mgrid[0:h, 0:w]
    picked = set()
    for x, y in components:
        near = (xx - x) ** 2 + (yy - y) ** 2 <= beam_px**2
        picked.update(int(v) for v in np.unique(labels[near]) if v)
    cx, cy = components.mean(axis=0)
    reach = 0.5 * ang_extent_px + 2.0 * beam_px
    emission = np.isin(labels, sorted(picked)) & ((xx - cx) ** 2 + (yy - cy) ** 2 <= reach**2)
    x0 = components[:, 0].min() + 0.5 - beam_px
    y0 = components[:, 1].min() + 0.5 - beam_px
    x1 = components[:, 0].max() + 0.5 + beam_px
    y1 = components[:, 1].max() + 0.5 + beam_px
    if emission.any():
        ey, ex = np.nonzero(emission)
        x0, y0 = min(x0, ex.min()), min(y0, ey.min())
        x1, y1 = max(x1, ex.max() + 1.0), max(y1, ey.max() + 1.0)
    return np.array([x0, y0, x1, y1], float)


def emission_regions(data: np.ndarray, *, clipped: bool, nsigma: float) -> np.ndarray:
    """Connected regions (8-connectivity) of an image's emission, 0 where there is none.

    Args:
        data: the image; NaN pixels are no emission.
        clipped: the noise was cut away when the image was made (8-bit PNGs): every pixel
            above zero is emission.
        nsigma: otherwise the threshold in units of the sigma-clipped rms.
    """
    from scipy.ndimage import label

    finite = np.isfinite(data)
    if clipped:  # the noise was cut away when the PNG was made: what is left is emission
        mask = finite & (data > 0)
    else:
        from astropy.stats import sigma_clipped_stats

        _, median, rms = sigma_clipped_stats(data[finite], sigma=3.0, maxiters=10)
        mask = finite & (np.nan_to_num(data - median) > nsigma * rms)
    return label(mask, structure=np.ones((3, 3), int))[0]
