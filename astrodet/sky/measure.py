"""Background, noise and source measurement on the original float pixels (Jy/beam).

Background and rms maps come from photutils' ``Background2D`` with sigma clipping in boxes of
about 15 beams (small enough to follow the noise across a primary beam, large enough that a
source hardly moves the clipped median); images too small for a grid of boxes get one global
sigma-clipped estimate. NaN pixels are masked.

A source is its box's brightest local maximum. Its own pixels (its footprint) are the
island holding that maximum (connected pixels at least ``ISLAND_SNR`` = 3 rms up, PyBDSF's
``thresh_isl``), shared between the sources of one island along the watershed of the light,
within the box grown by one beam on each side. The sources of an island are fitted together
with one elliptical Gaussian each (:func:`astrodet.sky.fitting.fit_gaussians`, on their
footprints grown by a beam into pixels of no other island, so that the fit sees the wings
below the island level unpicked); a source with fewer pixels than two beam areas is fitted
with the beam's shape. Then:

* ``peak_flux``: the fitted amplitude, or where the light is no Gaussian at its peak (the
  two differ by more than 3 rms), the peak interpolated from the 3 x 3 pixels around the
  brightest (:func:`astrodet.sky.fitting.interpolated_peak`, exact for a Gaussian): never
  the brightest pixel itself, which at 3 pixels per beam is 0.86-1.00 of the peak (Jy/beam);
* ``total_flux``: the fitted Gaussian's integral plus what the island's model misses on the
  source's own pixels (a source that is not one Gaussian keeps its light; a neighbour's
  light is the neighbour's Gaussian's), over the beam area (Jy). Without a fit: the
  footprint's sum, its wings below the level taken as a Gaussian's (a Gaussian cut at
  ``T`` of its peak ``P`` keeps ``1 - T/P`` of its flux);
* ``maj``, ``min``, ``pa``: the fitted Gaussian's FWHM in arcsec (convolved with the beam)
  and its position angle east of north through the WCS (any orientation or flip; north up
  with east to the left without a WCS); the beam's for a source fitted with the beam's
  shape; without a fit, the flux-weighted second moments of the footprint, corrected for
  the part of a Gaussian cut away by the level;
* ``x``, ``y``: the fitted centre (0-based pixel centres, the field's frame), else the
  footprint's flux-weighted centroid; ``ra``/``dec`` from the WCS; ``rms`` from the rms map
  at the brightest pixel; ``snr = peak / rms`` (what a minimum-S/N cut reads).

Deblending (:func:`deblend`, ``measure_sources(deblend=True)``), in units of the beam and of
the local rms so that it holds for any survey: a box whose pixels hold several significant
local maxima (S/N at least ``thresh_pix``, 5 as PyBDSF's ``thresh_pix``) at least one beam
FWHM apart, with the S/N along the line joining two of them dipping below the Rayleigh
criterion's central dip (``RAYLEIGH_DIP``, 0.735 of the fainter peak: two equal point sources
are called resolved when the light between them falls to about 74 % of the peaks) and by at
least ``DIP_SNR`` (3 rms, PyBDSF's island threshold ``thresh_isl``), is measured as one source
per maximum, each with its share of the island. Two equal beam-sized
Gaussians dip to 0.94 of their peaks 1 beam apart and to 0.42 at 1.5 beams.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "background_map",
    "background_tile",
    "deblend",
    "estimate_background",
    "measure_sources",
    "truncation_factor",
]

#: Background box size in beams (FWHM).
BOX_BEAMS = 15.0
_MIN_BOX = 8
_FWHM_K = 2.0 * math.sqrt(2.0 * math.log(2.0))  # FWHM = K sigma
#: Deblending: the S/N between two maxima must fall below this fraction of the fainter peak
#: (the Rayleigh criterion's central dip for two point sources seen through a circular
#: aperture, about 74 % of the peaks: the conventional limit of "resolved").
RAYLEIGH_DIP = 0.735
#: ... and by at least this many rms (PyBDSF's island threshold, ``thresh_isl``): a dip
#: that noise alone makes is not a gap between two sources.
DIP_SNR = 3.0
#: A source with fewer pixels than this many beam areas is fitted with the beam's shape:
#: a free size would be fitted to the noise (and bias its total flux).
FREE_FIT_BEAMS = 2.0
#: The fitted amplitude is the peak when it lies within this many rms of the interpolated
#: peak.
PEAK_AGREE_RMS = 3.0
#: A fitted Gaussian is at most this many times the size its own pixels' moments give.
MAX_SIZE_GAIN = 2.0
#: Islands holding more sources than this are fitted one source at a time.
MAX_GROUP = 12


def truncation_factor(peak_over_threshold: np.ndarray) -> np.ndarray:
    """Second moments of a Gaussian cut at ``T`` are the true ones times
    ``g(L) = (1 - (1 + L) e^-L) / (1 - e^-L)``, ``L = ln(P / T)``; returns ``g`` (capped to
    [0.1, 1]: islands barely above their level give a noisy, tiny g)."""
    L = np.log(np.maximum(np.asarray(peak_over_threshold, float), 1.0 + 1e-6))
    g = (1.0 - (1.0 + L) * np.exp(-L)) / (1.0 - np.exp(-L))
    return np.clip(g, 0.1, 1.0)


def estimate_background(image: np.ndarray, *, sigma: float = 3.0) -> tuple[float, float]:
    """Global background level and rms by iterative sigma clipping.

    Args:
        image: a 2-D array; non-finite pixels are ignored.
        sigma: the clipping threshold in standard deviations.

    Returns:
        ``(median, std)`` of the clipped pixels.
    """
    from astropy.stats import sigma_clipped_stats

    data = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(data)
    if not finite.any():
        raise ValueError("image has no finite pixels: cannot estimate a background")
    _, median, std = sigma_clipped_stats(data[finite], sigma=sigma, maxiters=10)
    return float(median), float(std)


def _global_background(data: np.ndarray) -> tuple[float, float]:
    if not np.isfinite(data).any():
        return math.nan, math.nan
    return estimate_background(data)


def _default_box(beam_pixels: float | None, shape) -> int:
    if beam_pixels is None or not beam_pixels > 0:
        return max(_MIN_BOX, min(shape) // 8)
    return max(_MIN_BOX, int(round(BOX_BEAMS * beam_pixels)))


def _array_background(data: np.ndarray, box: int) -> tuple[np.ndarray, np.ndarray]:
    from photutils.background import Background2D

    data = np.asarray(data, dtype=np.float32)
    nan = ~np.isfinite(data)
    if min(data.shape) >= 2 * box:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # boxes dropped for masked pixels: expected
                bkg = Background2D(
                    np.where(nan, 0.0, data), box, mask=nan, coverage_mask=nan, fill_value=np.nan
                )
            return bkg.background.astype(np.float32), bkg.background_rms.astype(np.float32)
        except ValueError as e:  # too few usable boxes (mostly NaN): one global value
            logger.debug("Background2D failed (%s): global background", e)
    median, std = _global_background(data)
    out_b = np.full(data.shape, median, np.float32)
    out_r = np.full(data.shape, std, np.float32)
    out_b[nan] = out_r[nan] = np.nan
    return out_b, out_r


def background_tile(field, tile, *, box: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Background and rms maps of one tile of a field, computed with a margin of one box
    around it (so tiles join without seams) and cropped to the tile.

    Args:
        field: a :class:`~astrodet.sky.field.Field`.
        tile: a :class:`~astrodet.sky.field.Tile` of it.
        box: background box in pixels; default about 15 beams.
    """
    box = box or _default_box(field.beam_pixels(), field.shape)
    ny, nx = field.shape
    y0, x0 = max(tile.y0 - box, 0), max(tile.x0 - box, 0)
    y1, x1 = min(tile.y1 + box, ny), min(tile.x1 + box, nx)
    bkg, rms = _array_background(field.read(y0, y1, x0, x1), box)
    inner = slice(tile.y0 - y0, tile.y1 - y0), slice(tile.x0 - x0, tile.x1 - x0)
    return bkg[inner], rms[inner]


def background_map(
    field_or_array, *, box: int | None = None, beam_pixels: float | None = None, tile: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Background and rms maps (sigma-clipped, NaN-aware), same shape as the image.

    Args:
        field_or_array: a :class:`~astrodet.sky.field.Field` (read tile by tile; the maps
            are float32 arrays of the field's shape) or a 2-D array.
        box: background box in pixels; default ``BOX_BEAMS`` beams (at least 8 pixels), or
            an eighth of the image for an array without ``beam_pixels``.
        beam_pixels: beam FWHM in pixels, for the default box of an array.
        tile: tile size used for a field.

    Returns:
        ``(background, rms)`` in the image's units; NaN where the image is NaN. Images smaller
        than two boxes get one global sigma-clipped value.
    """
    from .field import Field

    if isinstance(field_or_array, Field):
        field = field_or_array
        box = box or _default_box(field.beam_pixels(), field.shape)
        bkg = np.empty(field.shape, np.float32)
        rms = np.empty(field.shape, np.float32)
        for t in field.tiles(max(tile, 4 * box), 0):
            bkg[t.slices], rms[t.slices] = background_tile(field, t, box=box)
        return bkg, rms
    data = np.asarray(field_or_array, dtype=np.float32)
    if data.ndim != 2:
        raise ValueError(f"background_map needs a 2-D image, got shape {data.shape}")
    return _array_background(data, box or _default_box(beam_pixels, data.shape))


def _position_angle(wcs, x, y, dx, dy) -> np.ndarray:
    """Position angle (deg east of north, in [0, 180)) of the pixel direction (dx, dy) at
    (x, y): through the WCS, or north up / east left without one."""
    if wcs is None:
        return np.degrees(np.arctan2(-dx, dy)) % 180.0
    from .field import pixel_to_radec

    eps = 0.5
    ra0, dec0 = pixel_to_radec(wcs, x, y)
    ra1, dec1 = pixel_to_radec(wcs, x + eps * dx, y + eps * dy)
    d0, d1 = np.radians(dec0), np.radians(dec1)
    dra = np.radians(ra1 - ra0)
    pa = np.arctan2(
        np.sin(dra) * np.cos(d1), np.cos(d0) * np.sin(d1) - np.sin(d0) * np.cos(d1) * np.cos(dra)
    )
    return np.degrees(pa) % 180.0


def deblend(
    snr: np.ndarray,
    *,
    core: tuple[slice, slice],
    beam_pixels: float,
    thresh_pix: float = 5.0,
    min_separation_beams: float = 1.0,
    dip_fraction: float = RAYLEIGH_DIP,
    dip_snr: float = DIP_SNR,
) -> list[tuple[int, int]]:
    """The separate sources' maxima in a box: local maxima of ``snr`` inside ``core`` with
    S/N at least ``thresh_pix``, brightest first; a fainter one is kept when it lies at least
    ``min_separation_beams`` FWHM from every kept one and the S/N along the line joining them
    dips below ``dip_fraction`` of its own peak and by at least ``dip_snr``.

    Args:
        snr: background-subtracted pixels over the rms (NaN allowed), the box and a margin.
        core: the box's pixels in ``snr`` (row and column slices): maxima lie there.
        beam_pixels: beam FWHM in pixels.
        thresh_pix: S/N of a maximum (PyBDSF's ``thresh_pix``).
        min_separation_beams: least distance between two sources, in beam FWHM.
        dip_fraction: the dip, as a fraction of the fainter peak (the Rayleigh criterion).
        dip_snr: the least depth of the dip, in rms.

    Returns:
        ``[(row, column), ...]`` in ``snr``'s pixels; one or none: nothing to split.
    """
    from scipy import ndimage

    finite = np.where(np.isfinite(snr), snr, -np.inf)
    sep = max(float(min_separation_beams * beam_pixels), 1.0)
    r = int(math.floor(sep))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    # no brighter pixel within one separation (the margin counts: a slope of a brighter
    # source just outside the box is no maximum)
    peaks = finite == ndimage.maximum_filter(
        finite, footprint=xx**2 + yy**2 <= sep**2, cval=-np.inf
    )
    inside = np.zeros_like(peaks)
    inside[core] = True
    rows, columns = np.nonzero(peaks & inside & (finite >= thresh_pix))
    order = np.argsort(-finite[rows, columns], kind="stable")
    kept: list[tuple[int, int]] = []
    for y, x in zip(rows[order].tolist(), columns[order].tolist()):
        if all(_separate(finite, (ky, kx), (y, x), sep, dip_fraction, dip_snr) for ky, kx in kept):
            kept.append((y, x))
    return kept


_find_maxima = deblend  # measure_sources' own ``deblend`` argument hides the name


def _separate(snr, bright, faint, sep, dip_fraction, dip_snr) -> bool:
    """Whether the fainter maximum ``faint`` is a source apart from ``bright``: far enough,
    and the S/N along the line between them (bilinear, half-pixel steps) dips enough."""
    from scipy import ndimage

    d = math.hypot(faint[0] - bright[0], faint[1] - bright[1])
    if d < sep:
        return False
    t = np.linspace(0.0, 1.0, max(3, int(math.ceil(2 * d)) + 1))[1:-1]
    line = ndimage.map_coordinates(
        snr,
        [bright[0] + t * (faint[0] - bright[0]), bright[1] + t * (faint[1] - bright[1])],
        order=1,
        cval=-np.inf,
    )
    low, peak = float(line.min()), float(snr[faint])
    return low <= dip_fraction * peak and peak - low >= dip_snr


def _moments(values, xx, yy, peak, level):
    """Flux-weighted centroid and Gaussian ``(sigma_major, sigma_minor, theta)`` of pixels
    cut at ``level`` (corrected for the wings cut away); None for the shape when there are
    too few pixels or no positive light."""
    w = values
    if len(w) == 0 or w.sum() <= 0:
        return None, None
    cx, cy = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
    if len(w) < 3 or not peak > 0:
        return (cx, cy), None
    g = truncation_factor(peak / max(level, 1e-30))
    cxx = (w * (xx - cx) ** 2).sum() / w.sum() / g
    cyy = (w * (yy - cy) ** 2).sum() / w.sum() / g
    cxy = (w * (xx - cx) * (yy - cy)).sum() / w.sum() / g
    half_tr, det_term = (cxx + cyy) / 2.0, math.sqrt(((cxx - cyy) / 2.0) ** 2 + cxy**2)
    lam1, lam2 = half_tr + det_term, max(half_tr - det_term, 1e-6)
    theta = 0.5 * math.atan2(2.0 * cxy, cxx - cyy)  # major axis, from +x towards +y
    return (cx, cy), (math.sqrt(lam1), math.sqrt(lam2), theta)


def _measure_group(
    residual, rms, members, peaks, feet, regions, islands, *, beam_area, beam_shape, scale, grow
):
    """Measure the sources of one island: their Gaussians fitted together, then per source
    the interpolated peak, the fitted position and shape, and the total flux: the fitted
    Gaussian's integral plus what the group's model misses on the source's own pixels (a
    source that is not one Gaussian keeps its measured light)."""
    from .fitting import fit_gaussians, fit_pixels, interpolated_peak

    initial, stats = [], []
    for u in members:
        py, px = peaks[u]
        yy, xx, level, _ = feet[u]
        values = residual[yy, xx]
        peak, ix, iy = interpolated_peak(residual, row=py, column=px)
        centre, shape = _moments(values, xx, yy, peak, level)
        fixed = shape is None or len(values) < FREE_FIT_BEAMS * beam_area
        smaj, smin, theta = beam_shape if fixed else shape
        initial.append(
            dict(
                amplitude=peak, x=ix, y=iy, sigma_major=smaj, sigma_minor=smin, theta=theta,
                fixed_shape=fixed,
                # a source's own pixels say roughly how large it is: a Gaussian twice that
                # would take its neighbour's light
                max_sigma=MAX_SIZE_GAIN * max(smaj, beam_shape[0]),
            )
        )  # fmt: skip
        stats.append((peak, level, centre, shape, values))
    yy, xx, owner = fit_pixels(
        residual, members=members, footprints=feet, regions=regions, islands=islands, grow=grow
    )
    values = residual[yy, xx]
    noise = rms[yy, xx]
    typical = np.nanmedian(noise) if np.isfinite(noise).any() else 1.0
    noise = np.where(np.isfinite(noise) & (noise > 0), noise, typical)
    extent = max(np.ptp(xx) + 1, np.ptp(yy) + 1, 2.0 * beam_shape[0])
    fits = [None] * len(members)
    if all(np.isfinite(s["amplitude"]) and s["amplitude"] > 0 for s in initial):
        fits = fit_gaussians(
            values, xx.astype(float), yy.astype(float), weights=1.0 / noise, initial=initial,
            beam_shape=beam_shape, max_sigma=float(extent),
        )  # fmt: skip
    out = []
    for k, u in enumerate(members):
        py, px = peaks[u]
        peak, level, centre, shape, own_values = stats[k]
        m = {"peak_flux": peak, "rms": rms[py, px]}
        fit = fits[k]
        if fit is not None:
            gauss = 2.0 * math.pi * fit["amplitude"] * fit["sigma_major"] * fit["sigma_minor"]
            mine = owner == k
            missed = float((values[mine] - fit["model"][mine]).sum())
            m["total_flux"] = (gauss + missed) / beam_area
            m["x"], m["y"] = fit["x"], fit["y"]
            # The fitted Gaussian's peak rests on all its pixels: less noisy than three by
            # three around the brightest (whose pick favours a pixel noise pushed up); kept
            # where the two agree within the noise, else the source is no Gaussian there.
            if abs(fit["amplitude"] - peak) <= PEAK_AGREE_RMS * m["rms"]:
                m["peak_flux"] = fit["amplitude"]
            if not initial[k]["fixed_shape"]:
                shape = (fit["sigma_major"], fit["sigma_minor"], fit["theta"])
            else:
                shape = None  # the beam's: filled in by the caller
        else:
            # the light above the level, and the wings below it as a Gaussian's: a Gaussian
            # cut at T of its peak P keeps 1 - T / P of its flux
            kept = 1.0 - level / peak if peak > 0 and level > 0 else 1.0
            m["total_flux"] = own_values.sum() / beam_area / min(max(kept, 0.3), 1.0)
            m["x"], m["y"] = centre if centre is not None else (float(px), float(py))
        if shape is not None:
            m["maj"] = _FWHM_K * shape[0] * scale
            m["min"] = _FWHM_K * shape[1] * scale
            m["direction"] = (math.cos(shape[2]), math.sin(shape[2]))
        out.append(m)
    return out


def _box_peak(residual, y0, y1, x0, x1) -> tuple[int, int]:
    """The source of a box: its brightest local maximum (a box around a faint source holds
    the slope of a bright neighbour, whose pixels may be brighter), else its brightest
    pixel."""
    from scipy import ndimage

    ny, nx = residual.shape
    wy0, wx0 = max(y0 - 1, 0), max(x0 - 1, 0)
    window = np.nan_to_num(residual[wy0 : min(y1 + 1, ny), wx0 : min(x1 + 1, nx)], nan=-np.inf)
    core = window[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]
    is_max = (
        core
        >= ndimage.maximum_filter(window, size=3, mode="nearest")[
            y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0
        ]
    )
    candidates = np.where(is_max & np.isfinite(core), core, -np.inf)
    if not np.isfinite(candidates).any():
        candidates = core
    py, px = np.unravel_index(np.argmax(candidates), core.shape)
    return int(py) + y0, int(px) + x0


def measure_sources(
    image: np.ndarray,
    boxes_xyxy: np.ndarray,
    *,
    rms: np.ndarray,
    bkg: np.ndarray | None,
    beam,
    pixel_scale: float | None,
    scores=None,
    offset: tuple[float, float] = (0, 0),
    wcs=None,
    grow_beams: float = 1.0,
    meta: dict | None = None,
    deblend: bool = False,
    thresh_pix: float = 5.0,
    return_box_index: bool = False,
):
    """Measure sources in their boxes on the original float pixels.

    Args:
        image: 2-D pixels in Jy/beam (a tile of a field, FITS orientation, NaN allowed).
        boxes_xyxy: (N, 4) boxes in the image's pixels, pixel ``j`` spanning ``[j, j + 1)``.
        rms: the rms map of ``image`` (same shape).
        bkg: the background map (None: zero).
        beam: the restoring beam (:class:`~astrodet.sky.field.Beam`, arcsec).
        pixel_scale: arcsec per pixel (None: sizes and beam in pixels).
        scores: detection scores (default 1).
        offset: ``(x0, y0)`` of the image in the field: x, y are given in the field's frame.
        wcs: the field's celestial WCS for ra/dec and position angles (None: NaN ra/dec).
        grow_beams: a source's pixels lie within its box grown by this many beam FWHM on
            each side.
        meta: extra table metadata.
        deblend: a box holding several separate maxima (:func:`deblend`) gives one source
            per maximum; its rows follow each other, brightest first, with the box's score.
        thresh_pix: the S/N of a maximum that deblending splits off.
        return_box_index: also return the box of each row.

    Returns:
        a catalogue (:func:`astrodet.sky.catalogue.new_catalogue`); the beam and pixel scale
        are in its meta. With ``return_box_index``, ``(catalogue, box index per row)``.
    """
    from .catalogue import PIXSCALE_KEY, new_catalogue
    from .fitting import beam_shape_pixels, footprints

    image = np.asarray(image, dtype=np.float64)
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    n = len(boxes)
    residual = image - (0.0 if bkg is None else np.asarray(bkg, np.float64))
    residual = np.where(np.isfinite(residual), residual, np.nan)
    rms = np.asarray(rms, np.float64)
    ny, nx = image.shape
    scale = pixel_scale or 1.0
    beam_px = math.sqrt(beam.maj * beam.min) / scale
    beam_area = 2.0 * math.pi * beam.maj * beam.min / (_FWHM_K**2) / scale**2
    g = int(math.ceil(grow_beams * beam_px))
    score_in = np.ones(n) if scores is None else np.asarray(scores, float).reshape(-1)

    # Each box's sources, by their brightest pixel; boxes sharing one share the source.
    peaks: list[tuple[int, int]] = []
    regions: list[list[int]] = []
    unit_of: dict[tuple[int, int], int] = {}
    row_unit: list[int | None] = []
    box_index: list[int] = []
    for i, (bx0, by0, bx1, by1) in enumerate(boxes):
        # Pixels whose centres (j + 0.5) fall inside the box; at least the one it sits on.
        ix0, iy0 = int(np.floor(bx0)), int(np.floor(by0))
        ix1, iy1 = max(int(np.ceil(bx1)), ix0 + 1), max(int(np.ceil(by1)), iy0 + 1)
        ix0, iy0, ix1, iy1 = max(ix0, 0), max(iy0, 0), min(ix1, nx), min(iy1, ny)
        gx0, gy0, gx1, gy1 = max(ix0 - g, 0), max(iy0 - g, 0), min(ix1 + g, nx), min(iy1 + g, ny)
        core_px = residual[iy0:iy1, ix0:ix1]
        found: list = []
        if core_px.size and np.isfinite(core_px).any():
            if deblend:
                region = residual[gy0:gy1, gx0:gx1]
                core = slice(iy0 - gy0, iy1 - gy0), slice(ix0 - gx0, ix1 - gx0)
                with np.errstate(divide="ignore", invalid="ignore"):
                    maxima = _find_maxima(
                        region / rms[gy0:gy1, gx0:gx1],
                        core=core,
                        beam_pixels=beam_px,
                        thresh_pix=thresh_pix,
                    )
                if len(maxima) >= 2:
                    found = [(gy0 + my, gx0 + mx) for my, mx in maxima]
            if not found:
                found = [_box_peak(residual, iy0, iy1, ix0, ix1)]
        for peak in found or [None]:
            u = None
            if peak is not None:
                u = unit_of.get(peak)
                if u is None:
                    u = unit_of[peak] = len(peaks)
                    peaks.append(peak)
                    regions.append([gy0, gy1, gx0, gx1])
                else:  # the union of the boxes that share it
                    r = regions[u]
                    r[:] = [min(r[0], gy0), max(r[1], gy1), min(r[2], gx0), max(r[3], gx1)]
            row_unit.append(u)
            box_index.append(i)

    feet, islands = footprints(residual, rms, peaks=peaks, regions=regions)
    beam_shape = beam_shape_pixels(
        beam, pixel_scale=pixel_scale, wcs=wcs, x=offset[0] + nx / 2.0, y=offset[1] + ny / 2.0
    )
    groups: dict = {}
    for u, foot in enumerate(feet):
        groups.setdefault(foot[3], []).append(u)
    measured: list = [None] * len(peaks)
    for members in groups.values():
        # a crowded island is fitted source by source: a joint fit's cost grows steeply
        for part in [members] if len(members) <= MAX_GROUP else [[u] for u in members]:
            results = _measure_group(
                residual, rms, part, peaks, feet, regions, islands,
                beam_area=beam_area, beam_shape=beam_shape, scale=scale,
                grow=max(1, int(math.ceil(beam_px))),
            )  # fmt: skip
            for u, m in zip(part, results):
                measured[u] = m

    names = ("x", "y", "peak_flux", "total_flux", "maj", "min", "pa", "rms")
    rows = []
    for u in row_unit:
        row = dict.fromkeys(names, np.nan)
        row["direction"] = (0.0, 0.0)
        if u is not None:
            row.update(measured[u])
        rows.append(row)
    cols = {k: np.array([r[k] for r in rows], float).reshape(-1) for k in names}
    direction = np.array([r["direction"] for r in rows], float).reshape(-1, 2)
    box_index = np.asarray(box_index, int)
    n = len(rows)
    x = cols["x"] + offset[0]
    y = cols["y"] + offset[1]
    has_shape = np.isfinite(cols["maj"])
    if has_shape.any():
        cols["pa"][has_shape] = _position_angle(
            wcs, x[has_shape], y[has_shape], direction[has_shape, 0], direction[has_shape, 1]
        )
    # Unresolved (fitted with the beam's shape) or too few pixels: the beam's shape.
    fill = ~has_shape & np.isfinite(x)
    cols["maj"][fill], cols["min"][fill], cols["pa"][fill] = beam.maj, beam.min, beam.pa
    ra = dec = None
    if wcs is not None and n:
        from .field import pixel_to_radec

        ra, dec = pixel_to_radec(wcs, x, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = cols["peak_flux"] / cols["rms"]
    table_meta = {"BEAM_MAJ": beam.maj, "BEAM_MIN": beam.min, "BEAM_PA": beam.pa, **(meta or {})}
    if pixel_scale:
        table_meta[PIXSCALE_KEY] = float(pixel_scale)
    table = new_catalogue(
        meta=table_meta,
        ra=ra,
        dec=dec,
        x=x,
        y=y,
        peak_flux=cols["peak_flux"],
        total_flux=cols["total_flux"],
        maj=cols["maj"],
        min=cols["min"],
        pa=cols["pa"],
        rms=cols["rms"],
        snr=snr,
        score=None if scores is None else score_in[box_index],
    )
    return (table, box_index) if return_box_index else table
