"""A source's own pixels, the peak of its light between pixels, and elliptical Gaussians
fitted to it.

:func:`footprints`: a source's pixels are the island (connected pixels at least 3 rms up)
that holds its peak, shared between the island's sources along the watershed of the light.

At about 3 pixels per beam the brightest pixel of an unresolved source is 0.86-1.00 of its
true peak, depending on where the source falls on the pixel grid. The logarithm of a
Gaussian is a quadratic in x and y, so a quadratic fitted to the logarithms of the 3 x 3
pixels around the brightest one gives the peak of any Gaussian (any size, elongation,
orientation) exactly: :func:`interpolated_peak`.

:func:`fit_gaussians` fits one elliptical Gaussian per source to the pixels of a group of
sources that share an island, all at once, as PyBDSF and Aegean do (astropy's
``Gaussian2D`` and Levenberg-Marquardt fitter): a neighbour's light is then its own
Gaussian's, not the source's. A source with few pixels is fitted with the restoring beam's
shape (amplitude and position free): its size is not measurable there, and a free size
fitted to noise would bias its total flux.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

__all__ = [
    "beam_shape_pixels",
    "fit_gaussians",
    "fit_pixels",
    "footprints",
    "interpolated_peak",
]

_FWHM_K = 2.0 * math.sqrt(2.0 * math.log(2.0))  # FWHM = K sigma
# ln f = c0 + c1 dx + c2 dy + c3 dx^2 + c4 dx dy + c5 dy^2 over the 3 x 3 pixels (rows dy,
# columns dx): least squares through one fixed pseudo-inverse.
_DY, _DX = (a.ravel() for a in np.mgrid[-1:2, -1:2].astype(float))
_PINV = np.linalg.pinv(np.stack([np.ones(9), _DX, _DY, _DX**2, _DX * _DY, _DY**2], axis=1))
#: The interpolated peak is trusted up to this factor above the brightest pixel (a Gaussian
#: sampled at 1.5 pixels per beam peaks at most 1.7 x its brightest pixel; noise in the
#: logarithms of faint wings can throw a quadratic much further).
MAX_PEAK_GAIN = 1.7
#: A source's pixels: its island, the connected pixels at least this many rms up (PyBDSF's
#: ``thresh_isl``).
ISLAND_SNR = 3.0
#: Levels of the watershed that shares an island between its sources.
FLOOD_LEVELS = 48


def interpolated_peak(image: np.ndarray, *, row: int, column: int) -> tuple[float, float, float]:
    """The peak of the light around a local maximum, between pixels.

    Args:
        image: background-subtracted pixels (NaN allowed).
        row, column: the brightest pixel of the source.

    Returns:
        ``(peak, x, y)``: the vertex of a quadratic fitted to the logarithms of the 3 x 3
        pixels (exact for a Gaussian); along each axis alone when a corner is not positive;
        the pixel itself when its neighbours are not positive, at the image's edge, or the
        fit has no maximum within a pixel.
    """
    value = float(image[row, column])
    here = (value, float(column), float(row))
    ny, nx = image.shape
    if not value > 0 or not (0 < row < ny - 1 and 0 < column < nx - 1):
        return here
    patch = np.asarray(image[row - 1 : row + 2, column - 1 : column + 2], np.float64)
    if np.all(patch > 0):  # NaN compares False
        c = _PINV @ np.log(patch.ravel())
        hessian = np.array([[2.0 * c[3], c[4]], [c[4], 2.0 * c[5]]])
        if hessian[0, 0] < 0 and np.linalg.det(hessian) > 0:
            d = -np.linalg.solve(hessian, c[1:3])
            log_peak = c[0] + 0.5 * float(c[1:3] @ d)
            return _accepted(value, log_peak, d[0], d[1], column, row) or here
        return here
    # a corner at or below zero: the two axes apart (a parabola through three logarithms)
    cross = patch[1, :], patch[:, 1]
    if not all(np.all(v > 0) for v in cross):
        return here
    log_peak, shift = math.log(value), []
    for v in cross:
        lm, l0, lp = np.log(v)
        curve = lm - 2.0 * l0 + lp
        if not curve < 0:
            return here
        s = 0.5 * (lm - lp) / curve
        shift.append(s)
        log_peak += -0.25 * (lm - lp) * s
    return _accepted(value, log_peak, shift[0], shift[1], column, row) or here


def _accepted(value, log_peak, dx, dy, column, row):
    """``(peak, x, y)`` when the vertex lies within a pixel and the peak is plausible (no
    light peaks below its brightest pixel: a vertex a hair lower, from noise, is that
    pixel's value), else None."""
    if not (abs(dx) <= 1.0 and abs(dy) <= 1.0 and math.isfinite(log_peak)):
        return None
    peak = math.exp(log_peak)
    if peak > MAX_PEAK_GAIN * value:
        return None
    return max(peak, value), float(column + dx), float(row + dy)


def beam_shape_pixels(beam, *, pixel_scale: float | None, wcs=None, x: float = 0.0, y: float = 0.0):
    """The restoring beam on the pixel grid at ``(x, y)``.

    Args:
        beam: a :class:`~astrodet.sky.field.Beam` (FWHM arcsec, PA deg east of north).
        pixel_scale: arcsec per pixel (None: the beam is in pixels).
        wcs: the celestial WCS giving north and east on the grid (None: north is +y,
            east is -x).
        x, y: where on the grid (0-based pixels).

    Returns:
        ``(sigma_major, sigma_minor, theta)``: Gaussian sigmas in pixels and the major
        axis's angle in radians from +x towards +y.
    """
    scale = pixel_scale or 1.0
    smaj, smin = beam.maj / scale / _FWHM_K, beam.min / scale / _FWHM_K
    north, east = np.array([0.0, 1.0]), np.array([-1.0, 0.0])
    if wcs is not None:
        from .field import pixel_to_radec, radec_to_pixel

        ra, dec = (float(v) for v in pixel_to_radec(wcs, x, y))
        step = scale / 3600.0
        px, py = radec_to_pixel(
            wcs, [ra, ra + step / max(math.cos(math.radians(dec)), 1e-6)], [dec + step, dec]
        )
        north = np.array([float(px[0]) - x, float(py[0]) - y])
        east = np.array([float(px[1]) - x, float(py[1]) - y])
        north /= np.hypot(*north)
        east /= np.hypot(*east)
    pa = math.radians(beam.pa)
    d = math.cos(pa) * north + math.sin(pa) * east
    return smaj, smin, math.atan2(d[1], d[0])


def fit_gaussians(
    values: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    *,
    weights: np.ndarray,
    initial: list[dict],
    beam_shape: tuple[float, float, float],
    max_sigma: float,
) -> list[dict | None]:
    """Elliptical Gaussians fitted together to the pixels of a group of sources.

    Args:
        values: background-subtracted pixel values (1-D, finite).
        x, y: the pixels' positions (0-based).
        weights: per pixel, 1 / rms.
        initial: per source ``{"amplitude", "x", "y", "sigma_major", "sigma_minor",
            "theta", "fixed_shape"}`` (sigmas in pixels, theta in radians from +x towards
            +y) and optionally ``"max_sigma"``; a source with ``fixed_shape`` keeps the
            beam's shape.
        beam_shape: :func:`beam_shape_pixels`; the least sigma a free fit may reach is half
            the beam's minor one (noise can make a point source look a little narrow).
        max_sigma: the largest sigma, in pixels, of a source without its own.

    Returns:
        per source ``{"amplitude", "x", "y", "sigma_major", "sigma_minor", "theta",
        "model"}`` (``model``: the group's model at the pixels, the same for every source),
        or None for a source whose fit did not converge or left the pixels; all None when
        the pixels are too few for the free parameters.
    """
    from astropy.modeling import fitting, models

    n_free = sum(3 if s["fixed_shape"] else 6 for s in initial)
    if len(values) <= n_free:
        return [None] * len(initial)
    smaj_b, smin_b, theta_b = beam_shape
    parts = []
    for s in initial:
        fixed = bool(s["fixed_shape"])
        top = min(float(s.get("max_sigma") or max_sigma), max_sigma)
        smaj, smin, theta = (smaj_b, smin_b, theta_b) if fixed else (
            s["sigma_major"], s["sigma_minor"], s["theta"]
        )  # fmt: skip
        g = models.Gaussian2D(
            amplitude=s["amplitude"],
            x_mean=s["x"],
            y_mean=s["y"],
            x_stddev=min(max(smaj, 0.5 * smin_b), top),
            y_stddev=min(max(smin, 0.5 * smin_b), top),
            theta=theta,
        )
        g.amplitude.bounds = (0.0, None)
        g.x_mean.bounds = (s["x"] - 2.0 * smaj_b, s["x"] + 2.0 * smaj_b)
        g.y_mean.bounds = (s["y"] - 2.0 * smaj_b, s["y"] + 2.0 * smaj_b)
        if fixed:
            g.x_stddev.fixed = g.y_stddev.fixed = g.theta.fixed = True
        else:
            g.x_stddev.bounds = g.y_stddev.bounds = (0.5 * smin_b, top)
        parts.append(g)
    model = parts[0]
    for g in parts[1:]:
        model = model + g
    fitter = fitting.LevMarLSQFitter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the fit may be unsuccessful": judged below
        try:
            # in place: the model is this call's own, and a copy of a compound model is a
            # deep copy of every part (an eighth of the fit's time)
            fitted = fitter(model, x, y, values, weights=weights, maxiter=200, inplace=True)
        except (ValueError, RuntimeError, np.linalg.LinAlgError):  # a diverging fit
            return [None] * len(initial)
    if fitter.fit_info.get("ierr") not in (1, 2, 3, 4):
        return [None] * len(initial)
    model_values = fitted(x, y)
    out = []
    for k in range(len(initial)):
        g = fitted[k] if len(initial) > 1 else fitted
        amp, cx, cy, sa, sb, th = (float(p) for p in g.parameters)
        sa, sb = abs(sa), abs(sb)
        if sb > sa:  # the major axis first
            sa, sb, th = sb, sa, th + math.pi / 2.0
        ok = (
            np.isfinite([amp, cx, cy, sa, sb, th]).all()
            and amp > 0
            and x.min() - 1.0 <= cx <= x.max() + 1.0
            and y.min() - 1.0 <= cy <= y.max() + 1.0
            and sb > 0
        )
        out.append(
            {
                "amplitude": amp,
                "x": cx,
                "y": cy,
                "sigma_major": sa,
                "sigma_minor": sb,
                "theta": math.atan2(math.sin(th), math.cos(th)),
                "model": model_values,
            }
            if ok
            else None
        )
    return out


def footprints(residual: np.ndarray, rms: np.ndarray, *, peaks, regions):
    """Each source's own pixels: the island (connected pixels at least ``ISLAND_SNR`` rms
    up) holding its peak, shared with the other sources of that island along the watershed
    of the light (each pixel goes to the peak it climbs to), within the source's grown box.
    A source whose peak is below the island level keeps the connected pixels above half its
    peak.

    Args:
        residual: background-subtracted pixels (NaN allowed).
        rms: the rms map.
        peaks: per source, its ``(row, column)``.
        regions: per source, ``[y0, y1, x0, x1]``: its grown box.

    Returns:
        ``(footprints, islands)``: per source ``(rows, columns, level, group)`` (the pixels,
        the level they were cut at, and the island: sources of one island are fitted
        together), and the islands' label map.
    """
    from scipy import ndimage

    eight = np.ones((3, 3), bool)
    with np.errstate(invalid="ignore"):
        island = residual >= ISLAND_SNR * rms  # NaN: False
    cc, _ = ndimage.label(island, structure=eight)
    objects = ndimage.find_objects(cc)
    out: list = [None] * len(peaks)
    by_island: dict[int, list[int]] = {}
    for u, (py, px) in enumerate(peaks):
        c = int(cc[py, px])
        if c:
            by_island.setdefault(c, []).append(u)
            continue
        gy0, gy1, gx0, gx1 = regions[u]
        region = residual[gy0:gy1, gx0:gx1]
        level = 0.5 * residual[py, px]
        if not level > 0:
            out[u] = (np.array([py]), np.array([px]), residual[py, px], ("faint", u))
            continue
        lab, _ = ndimage.label(np.nan_to_num(region, nan=-np.inf) >= level, structure=eight)
        yy, xx = np.nonzero(lab == lab[py - gy0, px - gx0])
        out[u] = (yy + gy0, xx + gx0, level, ("faint", u))
    for c, members in by_island.items():
        sl = objects[c - 1]
        inside = cc[sl] == c
        if len(members) == 1:
            owner = np.where(inside, members[0] + 1, 0)
        else:
            markers = np.zeros(inside.shape, np.int32)
            for u in members:
                markers[peaks[u][0] - sl[0].start, peaks[u][1] - sl[1].start] = u + 1
            owner = _flood(residual[sl], inside, markers)
            owner = np.where(inside, owner, 0)
        for u in members:
            yy, xx = np.nonzero(owner == u + 1)
            yy, xx = yy + sl[0].start, xx + sl[1].start
            gy0, gy1, gx0, gx1 = regions[u]
            keep = (yy >= gy0) & (yy < gy1) & (xx >= gx0) & (xx < gx1)
            out[u] = (yy[keep], xx[keep], ISLAND_SNR * rms[peaks[u]], c)
    return out, cc


def _flood(values, inside, markers, *, levels: int = FLOOD_LEVELS):
    """A watershed: the marked peaks' labels spread downhill over ``inside``, level by level
    (at each level every label grows into the unlabelled pixels above it that touch it), so
    each pixel goes to the peak whose light it belongs to. (scipy's ``watershed_ift`` ties
    every pixel of a slope between all peaks and hands the far side of one peak to
    another.)"""
    from scipy import ndimage

    eight = np.ones((3, 3), bool)
    lab = markers.copy()
    top = float(values[markers > 0].max())
    for level in np.linspace(top, float(values[inside].min()), levels):
        allowed = inside & (values >= level)
        while True:
            grown = ndimage.grey_dilation(lab, footprint=eight, mode="constant", cval=0)
            new = (lab == 0) & allowed & (grown > 0)
            if not new.any():
                break
            lab[new] = grown[new]
    return lab


def fit_pixels(residual: np.ndarray, *, members, footprints, regions, islands, grow: int):
    """The pixels a group is fitted on: its sources' own pixels grown by ``grow`` pixels
    into pixels of no other island (the wings below the island level: fitting only pixels
    picked for being above it would favour those that noise pushed up, and widen the
    Gaussians), each grown pixel going to the nearest source.

    Args:
        residual: background-subtracted pixels.
        members: the sources (indices into ``footprints`` and ``regions``).
        footprints, regions: as :func:`footprints` gives and takes.
        islands: the island label map :func:`footprints` gives.
        grow: pixels to grow by.

    Returns:
        ``(rows, columns, owner)``: the pixels and, per pixel, the index in ``members``.
    """
    from scipy import ndimage

    y0 = min(regions[u][0] for u in members)
    y1 = max(regions[u][1] for u in members)
    x0 = min(regions[u][2] for u in members)
    x1 = max(regions[u][3] for u in members)
    own = np.zeros((y1 - y0, x1 - x0), np.int32)
    inside = np.zeros_like(own, bool)  # each source's grown box
    for k, u in enumerate(members):
        yy, xx = footprints[u][0], footprints[u][1]
        own[yy - y0, xx - x0] = k + 1
        r = regions[u]
        inside[r[0] - y0 : r[1] - y0, r[2] - x0 : r[3] - x0] = True
    free = np.isfinite(residual[y0:y1, x0:x1]) & (islands[y0:y1, x0:x1] == 0) & inside
    grown = (own > 0) | (
        ndimage.binary_dilation(own > 0, structure=np.ones((3, 3), bool), iterations=grow) & free
    )
    if len(members) > 1:
        _, (iy, ix) = ndimage.distance_transform_edt(own == 0, return_indices=True)
        owner = own[iy, ix]
    else:
        owner = np.ones_like(own)
    yy, xx = np.nonzero(grown)
    return yy + y0, xx + x0, owner[yy, xx] - 1
