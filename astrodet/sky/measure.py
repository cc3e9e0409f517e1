"""Background, noise and source measurement on the original float pixels (Jy/beam).

Background and rms maps come from photutils' ``Background2D`` with sigma clipping in boxes of
about 15 beams (small enough to follow the noise across a primary beam, large enough that a
source hardly moves the clipped median); images too small for a grid of boxes get one global
sigma-clipped estimate. NaN pixels are masked.

A source is measured in its box, grown by one beam on each side so that the wings of a source
whose box is the bounding box of its FWHM ellipse (the MGCLS convention) are counted:

* ``peak_flux``: the brightest background-subtracted pixel in the box (Jy/beam);
* ``total_flux``: the sum of the background-subtracted pixels over the beam area in pixels
  (Jy), the usual conversion from Jy/beam;
* ``maj``, ``min``, ``pa``: from the flux-weighted second moments of the connected pixels
  around the peak above ``3 x rms`` (half the peak for fainter ones), corrected for the part of a Gaussian cut away
  by that level, as FWHM in arcsec and a position angle east of north through the WCS (any
  orientation or flip; north up with east to the left without a WCS);
* ``x``, ``y``: the flux-weighted centroid (0-based pixel centres, the field's frame),
  ``ra``/``dec`` from the WCS; ``rms`` from the rms map at the peak; ``snr = peak / rms``.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["background_map", "background_tile", "measure_sources", "truncation_factor"]

#: Background box size in beams (FWHM).
BOX_BEAMS = 15.0
_MIN_BOX = 8
_FWHM_K = 2.0 * math.sqrt(2.0 * math.log(2.0))  # FWHM = K sigma


def truncation_factor(peak_over_threshold: np.ndarray) -> np.ndarray:
    """Second moments of a Gaussian cut at ``T`` are the true ones times
    ``g(L) = (1 - (1 + L) e^-L) / (1 - e^-L)``, ``L = ln(P / T)``; returns ``g`` (capped to
    [0.1, 1]: islands barely above their level give a noisy, tiny g)."""
    L = np.log(np.maximum(np.asarray(peak_over_threshold, float), 1.0 + 1e-6))
    g = (1.0 - (1.0 + L) * np.exp(-L)) / (1.0 - np.exp(-L))
    return np.clip(g, 0.1, 1.0)


def _global_background(data: np.ndarray) -> tuple[float, float]:
    from astropy.stats import sigma_clipped_stats

    finite = np.isfinite(data)
    if not finite.any():
        return math.nan, math.nan
    _, median, std = sigma_clipped_stats(data[finite], sigma=3.0, maxiters=10)
    return float(median), float(std)


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
    eps = 0.5
    ra0, dec0 = wcs.all_pix2world(x, y, 0)
    ra1, dec1 = wcs.all_pix2world(x + eps * dx, y + eps * dy, 0)
    d0, d1 = np.radians(dec0), np.radians(dec1)
    dra = np.radians(ra1 - ra0)
    pa = np.arctan2(
        np.sin(dra) * np.cos(d1), np.cos(d0) * np.sin(d1) - np.sin(d0) * np.cos(d1) * np.cos(dra)
    )
    return np.degrees(pa) % 180.0


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
        grow_beams: the box is grown by this many beam FWHM on each side for the flux and
            the shape.
        meta: extra table metadata.

    Returns:
        a catalogue (:func:`astrodet.sky.catalogue.new_catalogue`); the beam and pixel scale
        are in its meta.
    """
    from scipy import ndimage

    from .catalogue import PIXSCALE_KEY, new_catalogue

    image = np.asarray(image, dtype=np.float64)
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    n = len(boxes)
    residual = image - (0.0 if bkg is None else np.asarray(bkg, np.float64))
    rms = np.asarray(rms, np.float64)
    ny, nx = image.shape
    scale = pixel_scale or 1.0
    beam_px = math.sqrt(beam.maj * beam.min) / scale
    beam_area = 2.0 * math.pi * beam.maj * beam.min / (_FWHM_K**2) / scale**2
    grow = grow_beams * beam_px

    cols = {
        k: np.full(n, np.nan)
        for k in ("x", "y", "peak_flux", "total_flux", "maj", "min", "pa", "rms")
    }
    direction = np.zeros((n, 2))
    for i, (bx0, by0, bx1, by1) in enumerate(boxes):
        # Pixels whose centres (j + 0.5) fall inside the box; at least the one it sits on.
        ix0, iy0 = int(np.floor(bx0)), int(np.floor(by0))
        ix1, iy1 = max(int(np.ceil(bx1)), ix0 + 1), max(int(np.ceil(by1)), iy0 + 1)
        ix0, iy0, ix1, iy1 = max(ix0, 0), max(iy0, 0), min(ix1, nx), min(iy1, ny)
        core = residual[iy0:iy1, ix0:ix1]
        if core.size == 0 or not np.isfinite(core).any():
            continue
        py, px = np.unravel_index(np.nanargmax(core), core.shape)
        py, px = py + iy0, px + ix0
        peak = residual[py, px]
        g = int(math.ceil(grow))
        gx0, gy0, gx1, gy1 = max(ix0 - g, 0), max(iy0 - g, 0), min(ix1 + g, nx), min(iy1 + g, ny)
        region = residual[gy0:gy1, gx0:gx1]
        local_rms = rms[py, px]
        cols["peak_flux"][i] = peak
        cols["rms"][i] = local_rms
        cols["total_flux"][i] = np.nansum(region) / beam_area

        level = 3.0 * local_rms if np.isfinite(local_rms) and 3.0 * local_rms < peak else 0.5 * peak
        # The connected pixels above the level around the peak: isolated noise spikes in
        # the box would weigh heavily on the second moments.
        labels, _ = ndimage.label(np.nan_to_num(region, nan=-np.inf) >= level)
        yy, xx = np.nonzero(labels == labels[py - gy0, px - gx0])
        w = region[yy, xx]
        if peak <= 0 or w.sum() <= 0:
            cols["x"][i], cols["y"][i] = px, py
            continue
        xx, yy = xx + gx0, yy + gy0
        cx, cy = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
        cols["x"][i], cols["y"][i] = cx, cy
        if len(w) < 3:
            continue
        gfac = truncation_factor(peak / max(level, 1e-30))
        cxx = (w * (xx - cx) ** 2).sum() / w.sum() / gfac
        cyy = (w * (yy - cy) ** 2).sum() / w.sum() / gfac
        cxy = (w * (xx - cx) * (yy - cy)).sum() / w.sum() / gfac
        half_tr, det_term = (cxx + cyy) / 2.0, math.sqrt(((cxx - cyy) / 2.0) ** 2 + cxy**2)
        lam1, lam2 = half_tr + det_term, max(half_tr - det_term, 1e-6)
        theta = 0.5 * math.atan2(2.0 * cxy, cxx - cyy)  # major axis, from +x towards +y
        cols["maj"][i] = _FWHM_K * math.sqrt(lam1) * scale
        cols["min"][i] = _FWHM_K * math.sqrt(lam2) * scale
        direction[i] = math.cos(theta), math.sin(theta)

    x = cols["x"] + offset[0]
    y = cols["y"] + offset[1]
    measured = np.isfinite(cols["maj"])
    if measured.any():
        cols["pa"][measured] = _position_angle(
            wcs, x[measured], y[measured], direction[measured, 0], direction[measured, 1]
        )
    # Unresolved or too few pixels: the beam's shape.
    fill = ~measured & np.isfinite(x)
    cols["maj"][fill], cols["min"][fill], cols["pa"][fill] = beam.maj, beam.min, beam.pa
    ra = dec = None
    if wcs is not None and n:
        ra, dec = wcs.all_pix2world(x, y, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = cols["peak_flux"] / cols["rms"]
    table_meta = {"BEAM_MAJ": beam.maj, "BEAM_MIN": beam.min, "BEAM_PA": beam.pa, **(meta or {})}
    if pixel_scale:
        table_meta[PIXSCALE_KEY] = float(pixel_scale)
    return new_catalogue(
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
        score=None if scores is None else np.asarray(scores, float),
    )
