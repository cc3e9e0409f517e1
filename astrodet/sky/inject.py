"""Sources of known flux and shape injected into real images: the truth finders are scored on.

Two levels:

* :func:`inject_sources`: an array in, the array with sources added and their truth table
  out (fast: for training tiles as much as for scoring);
* :func:`inject_field`: a :class:`~astrodet.sky.field.Field` in, the injected field, the
  inverted field (the original times -1: it holds no real positive source, so whatever a
  finder reports there is false) and the truth table written as files.

Sources. Unresolved ones have the beam's shape; resolved ones (``resolved_fraction`` of them)
are the beam convolved with an intrinsic elliptical Gaussian whose major axis FWHM is
``size_range_beams`` beams (axis ratio ``axis_ratio_range``, random position angle), so they
span about 1.4-3.2 beams as seen. The peak S/N (the injected peak over the rms at the
source's place) is drawn log-uniform in ``snr_range``.

Placement, in units of the beam (geometric-mean FWHM): centres at least
``min_separation_beams`` beams from each other (and twice the larger source's FWHM), at least
``edge_beams`` beams (and twice the source's own FWHM) from the image's edges and blanked
pixels, and off ``avoid_mask`` (for a field: its own emission above ``mask_snr`` x rms grown
by ``mask_grow_beams`` beams). Sources are placed one by one at random positions; placement
stops at the first source that finds no room in ``max_tries`` positions, and the truth says
how many were placed (``N_PLACED`` beside ``N_ASKED`` in its meta, and a warning).

Pixel convention. Each pixel holds the source's Gaussian at the pixel centre (a restored
radio image samples the sky convolved with the beam; pixel centres are at integer 0-based
positions, the catalogue's ``x``/``y``). With pixels in Jy/beam the total flux is then

    total_flux = 2 pi sigma_maj sigma_min peak / beam_area = peak * (maj * min) / (bmaj * bmin)

(Jy; the beam area is ``2 pi sigma_bmaj sigma_bmin`` in pixels), and the sum of the model's
pixels over the beam area gives it to better than 1e-6 for sigmas above 1 pixel. Position
angles in pixel arrays (:func:`inject_sources`) are measured from +y towards -x (east of
north for an image with north up and east to the left, as radio images are written); a
field's beam and the truth's shapes go through its WCS.
"""

from __future__ import annotations

import logging
import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SNR_RANGE",
    "InjectedField",
    "emission_mask",
    "gaussian_model",
    "inject_field",
    "inject_sources",
    "invert_field",
]

#: Default range of injected peak S/N (log-uniform).
DEFAULT_SNR_RANGE = (3.0, 100.0)
_FWHM_K = 2.0 * math.sqrt(2.0 * math.log(2.0))  # FWHM = K sigma
# A Gaussian drawn out to this many sigma along its major axis keeps all but 4e-6 of its flux.
_STAMP_SIGMAS = 5.0
_BATCH = 64  # candidate positions tried per vectorised round


# --------------------------------------------------------------------------- geometry
def _covariance(maj, mn, pa) -> np.ndarray:
    """(..., 2, 2) pixel covariances of Gaussians of FWHM ``maj``/``mn`` (pixels) whose major
    axis lies at ``pa`` degrees from +y towards -x."""
    maj, mn, pa = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in (maj, mn, pa)))
    t = np.radians(pa)
    d = np.stack([-np.sin(t), np.cos(t)], -1)  # major axis direction (x, y)
    e = np.stack([np.cos(t), np.sin(t)], -1)  # minor axis direction
    s1, s2 = (maj / _FWHM_K) ** 2, (mn / _FWHM_K) ** 2
    return (
        s1[..., None, None] * d[..., :, None] * d[..., None, :]
        + s2[..., None, None] * e[..., :, None] * e[..., None, :]
    )


def _axes(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FWHM major, minor and position angle (deg in [0, 180), from the second axis of the
    frame towards minus the first: pixel +y towards -x, or north towards east for a sky
    frame written (-east, north)) of (..., 2, 2) covariances."""
    w, v = np.linalg.eigh(cov)  # ascending eigenvalues
    major = v[..., :, 1]
    pa = np.degrees(np.arctan2(-major[..., 0], major[..., 1])) % 180.0
    return (
        _FWHM_K * np.sqrt(np.maximum(w[..., 1], 0)),
        _FWHM_K * np.sqrt(np.maximum(w[..., 0], 0)),
        pa,
    )


def _beam_tuple(beam_pixels) -> tuple[float, float, float]:
    if np.ndim(beam_pixels) == 0:
        b = float(beam_pixels)
        return b, b, 0.0
    values = [float(v) for v in beam_pixels]
    if len(values) == 2:
        values.append(0.0)
    if len(values) != 3 or not (values[0] > 0 and values[1] > 0):
        raise ValueError(f"beam_pixels must be FWHM or (maj, min, pa) > 0, got {beam_pixels!r}")
    return values[0], values[1], values[2]


def gaussian_model(
    shape: tuple[int, int],
    *,
    x: Sequence[float],
    y: Sequence[float],
    peak: Sequence[float],
    maj: Sequence[float],
    min: Sequence[float],  # noqa: A002 - the catalogue's column name
    pa: Sequence[float],
) -> np.ndarray:
    """Elliptical Gaussians sampled at pixel centres, on a float64 array of ``shape``.

    Args:
        shape: ``(ny, nx)``.
        x, y: 0-based centres (pixel centres at integers).
        peak: peak values (the image's units).
        maj, min: FWHM in pixels.
        pa: degrees from +y towards -x.
    """
    return _render(shape, np.asarray(x, float), np.asarray(y, float), np.asarray(peak, float),
                   _covariance(maj, min, pa))  # fmt: skip


def _render(shape, x, y, peak, cov) -> np.ndarray:
    out = np.zeros(shape, np.float64)
    ny, nx = shape
    inv = np.linalg.inv(cov) if len(cov) else cov
    for k in range(len(x)):
        r = int(math.ceil(_STAMP_SIGMAS * math.sqrt(np.linalg.eigvalsh(cov[k])[1]))) + 1
        cx, cy = int(round(x[k])), int(round(y[k]))
        x0, x1, y0, y1 = max(cx - r, 0), min(cx + r + 1, nx), max(cy - r, 0), min(cy + r + 1, ny)
        if x0 >= x1 or y0 >= y1:
            continue
        dx = np.arange(x0, x1)[None, :] - x[k]
        dy = np.arange(y0, y1)[:, None] - y[k]
        a, b, c = inv[k, 0, 0], inv[k, 0, 1], inv[k, 1, 1]
        out[y0:y1, x0:x1] += peak[k] * np.exp(-0.5 * (a * dx * dx + 2 * b * dx * dy + c * dy * dy))
    return out


# --------------------------------------------------------------------------- placement
@dataclass
class _Drawn:
    """What :func:`_inject` made, in pixels (the truth table is built from it)."""

    model: np.ndarray
    x: np.ndarray
    y: np.ndarray
    peak: np.ndarray
    rms: np.ndarray
    cov: np.ndarray  # as seen: beam + intrinsic
    intrinsic: np.ndarray  # zeros for unresolved sources
    resolved: np.ndarray
    beam_cov: np.ndarray
    n_asked: int


def _place(rng, allowed, clear, margins, seps_min, majors, max_tries):
    """Random sequential placement; returns the centres of the sources that fit, in order."""
    ny, nx = allowed.shape
    xs: list[float] = []
    ys: list[float] = []
    placed_maj: list[float] = []
    for m, maj in zip(margins, majors):
        hi_x, hi_y = nx - 1 - m, ny - 1 - m
        found = None
        if hi_x >= m and hi_y >= m:
            px, py, pm = np.asarray(xs), np.asarray(ys), np.asarray(placed_maj)
            for _ in range(max(1, math.ceil(max_tries / _BATCH))):
                cx = rng.uniform(m, hi_x, _BATCH)
                cy = rng.uniform(m, hi_y, _BATCH)
                ix, iy = np.rint(cx).astype(int), np.rint(cy).astype(int)
                ok = allowed[iy, ix]
                if clear is not None:
                    ok &= clear[iy, ix] > m
                if len(px):
                    d = np.hypot(cx[:, None] - px[None, :], cy[:, None] - py[None, :])
                    need = np.maximum(seps_min, 2.0 * np.maximum(maj, pm))[None, :]
                    ok &= (d >= need).all(axis=1)
                hit = np.flatnonzero(ok)
                if len(hit):
                    found = (float(cx[hit[0]]), float(cy[hit[0]]))
                    break
        if found is None:
            break
        xs.append(found[0])
        ys.append(found[1])
        placed_maj.append(maj)
    return np.asarray(xs), np.asarray(ys)


def _inject(
    image,
    *,
    beam_pixels,
    rms,
    n,
    seed,
    snr_range,
    resolved_fraction,
    size_range_beams,
    axis_ratio_range,
    min_separation_beams,
    edge_beams,
    avoid_mask,
    max_tries,
) -> _Drawn:
    from scipy import ndimage

    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"inject_sources needs a 2-D image, got shape {image.shape}")
    n = int(n)
    if n < 0:
        raise ValueError(f"the number of sources must be >= 0, got {n}")
    lo, hi = (float(v) for v in snr_range)
    if not 0 < lo <= hi:
        raise ValueError(f"snr_range must be 0 < low <= high, got {snr_range}")
    if not 0.0 <= resolved_fraction <= 1.0:
        raise ValueError(f"resolved_fraction must be in [0, 1], got {resolved_fraction}")
    s_lo, s_hi = (float(v) for v in size_range_beams)
    q_lo, q_hi = (float(v) for v in axis_ratio_range)
    if not (0 < s_lo <= s_hi and 0 < q_lo <= q_hi <= 1):
        raise ValueError(
            f"size_range_beams must be 0 < low <= high and axis_ratio_range within (0, 1], got "
            f"{size_range_beams}, {axis_ratio_range}"
        )
    bmaj, bmin, bpa = _beam_tuple(beam_pixels)
    beam_fwhm = math.sqrt(bmaj * bmin)
    rms_map = np.broadcast_to(np.asarray(rms, np.float64), image.shape)
    rng = np.random.default_rng(seed)

    # Every property is drawn for all n sources first, so the stream (and so each source)
    # does not depend on how many fit.
    snr = np.exp(rng.uniform(math.log(lo), math.log(hi), n))
    resolved = rng.random(n) < resolved_fraction
    dc_maj = rng.uniform(s_lo, s_hi, n) * beam_fwhm
    dc_min = dc_maj * rng.uniform(q_lo, q_hi, n)
    dc_pa = rng.uniform(0.0, 180.0, n)
    beam_cov = _covariance(bmaj, bmin, bpa)
    intrinsic = _covariance(dc_maj, dc_min, dc_pa) * resolved[:, None, None]
    cov = beam_cov[None] + intrinsic
    majors = _axes(cov)[0] if n else np.zeros(0)

    finite = np.isfinite(image) & np.isfinite(rms_map)
    allowed = finite & (np.nan_to_num(rms_map) > 0)
    if avoid_mask is not None:
        avoid = np.asarray(avoid_mask, bool)
        if avoid.shape != image.shape:
            raise ValueError(f"avoid_mask has shape {avoid.shape}, the image {image.shape}")
        allowed &= ~avoid
    # distance to the nearest blanked pixel (the image's edges are checked separately)
    clear = None if finite.all() else ndimage.distance_transform_edt(finite)
    margins = np.maximum(edge_beams * beam_fwhm, 2.0 * majors)
    seps = min_separation_beams * beam_fwhm
    x, y = _place(rng, allowed, clear, margins, seps, majors, max_tries)
    k = len(x)
    if k < n:
        logger.warning(
            "%d of %d sources placed: no room for more at %g beams from each other, %g from "
            "the edges and off the masked emission",
            k,
            n,
            min_separation_beams,
            edge_beams,
        )
    local_rms = rms_map[np.rint(y).astype(int), np.rint(x).astype(int)] if k else np.zeros(0)
    peak = snr[:k] * local_rms
    model = _render(image.shape, x, y, peak, cov[:k])
    return _Drawn(model, x, y, peak, local_rms, cov[:k], intrinsic[:k], resolved[:k], beam_cov, n)


def _truth(drawn: _Drawn, *, sky_jacobian=None, pixel_scale=None, meta=None, radec=None):
    """The truth catalogue of ``drawn``: sizes in arcsec through ``sky_jacobian`` (2 x 2,
    arcsec (east, north) per pixel (x, y)) or ``pixel_scale`` (north up), else pixels."""
    from .catalogue import new_catalogue

    if sky_jacobian is None:
        s = float(pixel_scale) if pixel_scale else 1.0
        sky_jacobian = np.array([[-s, 0.0], [0.0, s]])
    # written (-east, north) the sky frame keeps the pixel frame's angle convention
    jac = np.diag([-1.0, 1.0]) @ np.asarray(sky_jacobian, float)
    to_sky = lambda c: jac @ c @ jac.T  # noqa: E731
    maj, mn, pa = _axes(to_sky(drawn.cov)) if len(drawn.x) else (np.zeros(0),) * 3
    dmaj, dmin, dpa = _axes(to_sky(drawn.intrinsic)) if len(drawn.x) else (np.zeros(0),) * 3
    dpa = np.where(drawn.resolved, dpa, 0.0)
    bmaj, bmin, bpa = _axes(to_sky(drawn.beam_cov))
    area_ratio = np.sqrt(np.linalg.det(drawn.cov) / np.linalg.det(drawn.beam_cov))
    table_meta = {
        "BEAM_MAJ": float(bmaj),
        "BEAM_MIN": float(bmin),
        "BEAM_PA": float(bpa),
        "N_ASKED": drawn.n_asked,
        "N_PLACED": len(drawn.x),
        "SIZES": "convolved",
        **(meta or {}),
    }
    if pixel_scale:
        table_meta["PIXSCALE"] = float(pixel_scale)
    ra, dec = radec if radec is not None else (None, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = drawn.peak / drawn.rms
    return new_catalogue(
        meta=table_meta,
        ra=ra,
        dec=dec,
        x=drawn.x,
        y=drawn.y,
        peak_flux=drawn.peak,
        total_flux=drawn.peak * area_ratio,
        maj=maj,
        min=mn,
        pa=pa,
        rms=drawn.rms,
        snr=snr,
        resolved=drawn.resolved.astype(np.int16),
        dc_maj=dmaj,
        dc_min=dmin,
        dc_pa=dpa,
    )


def inject_sources(
    image: np.ndarray,
    *,
    beam_pixels: float | Sequence[float],
    rms: np.ndarray | float,
    n: int,
    seed: int | np.random.Generator | None = None,
    snr_range: Sequence[float] = DEFAULT_SNR_RANGE,
    resolved_fraction: float = 0.3,
    size_range_beams: Sequence[float] = (1.0, 3.0),
    axis_ratio_range: Sequence[float] = (0.3, 1.0),
    min_separation_beams: float = 5.0,
    edge_beams: float = 3.0,
    avoid_mask: np.ndarray | None = None,
    pixel_scale: float | None = None,
    max_tries: int = 4096,
):
    """Add ``n`` Gaussian sources of known peak S/N and shape to an image.

    Args:
        image: 2-D pixels (Jy/beam for fluxes in Jy; NaN marks blanked pixels). Not changed.
        beam_pixels: beam FWHM in pixels, or ``(maj, min, pa)`` (pixels, pixels, deg from +y
            towards -x).
        rms: the noise, one value or a map of the image's shape (sources go where it is > 0).
        n: sources asked for.
        seed: an int or ``numpy.random.Generator``: the same seed gives the same sources.
        snr_range: the peak S/N is log-uniform in it.
        resolved_fraction: the share of sources that are resolved.
        size_range_beams: a resolved source's intrinsic major axis FWHM, in beams.
        axis_ratio_range: its intrinsic minor / major axis.
        min_separation_beams: least distance between two sources, in beams.
        edge_beams: least distance from the edges and blanked pixels, in beams.
        avoid_mask: True where no source centre may lie (the image's own emission).
        pixel_scale: arcsec per pixel: sizes in the truth in arcsec (north up) instead of
            pixels.
        max_tries: random positions tried per source before the image counts as full.

    Returns:
        ``(injected, truth)``: the image plus the sources (float32), and a catalogue
        (:func:`astrodet.sky.catalogue.new_catalogue`: ``x``, ``y``, ``peak_flux``,
        ``total_flux``, ``maj``/``min``/``pa`` as seen (beam included), ``rms`` and ``snr``
        at the source, plus ``resolved`` and the intrinsic ``dc_maj``/``dc_min``/``dc_pa``;
        ``N_ASKED``/``N_PLACED`` in its meta). The model alone is ``injected - image``, or
        :func:`gaussian_model` of the truth's pixel shapes.
    """
    drawn = _inject(
        image,
        beam_pixels=beam_pixels,
        rms=rms,
        n=n,
        seed=seed,
        snr_range=snr_range,
        resolved_fraction=resolved_fraction,
        size_range_beams=size_range_beams,
        axis_ratio_range=axis_ratio_range,
        min_separation_beams=min_separation_beams,
        edge_beams=edge_beams,
        avoid_mask=avoid_mask,
        max_tries=max_tries,
    )
    meta = {"SEED": int(seed)} if isinstance(seed, int | np.integer) else {}
    truth = _truth(drawn, pixel_scale=pixel_scale, meta=meta)
    injected = (np.asarray(image, np.float64) + drawn.model).astype(np.float32)
    return injected, truth


# --------------------------------------------------------------------------- fields
def emission_mask(
    image: np.ndarray,
    *,
    background: np.ndarray | float,
    rms: np.ndarray | float,
    beam_pixels: float,
    snr: float = 4.0,
    grow_beams: float = 3.0,
) -> np.ndarray:
    """True on an image's own emission: pixels above ``snr`` x rms over the background, grown
    by ``grow_beams`` beams (so injected sources sit clear of real ones and their wings).

    Args:
        image: 2-D pixels.
        background, rms: the background and noise (maps or values).
        beam_pixels: beam FWHM in pixels.
        snr: the emission's threshold in rms.
        grow_beams: how far around it is masked, in beams.
    """
    from scipy import ndimage

    with np.errstate(invalid="ignore", divide="ignore"):
        bright = (np.asarray(image, np.float64) - background) / rms > snr
    if not bright.any():
        return bright
    return ndimage.distance_transform_edt(~bright) <= grow_beams * beam_pixels


def _sky_jacobian(field) -> np.ndarray:
    """Arcsec (east, north) per pixel (x, y) at the field's centre (north up and east to the
    left, ``pixel_scale`` or 1 per pixel, without a WCS)."""
    if field.wcs is None:
        s = field.pixel_scale or 1.0
        return np.array([[-s, 0.0], [0.0, s]])
    ny, nx = field.shape
    x0, y0 = (nx - 1) / 2.0, (ny - 1) / 2.0
    h = 0.5
    ra, dec = field.pixel_to_world(
        np.array([x0 - h, x0 + h, x0, x0]), np.array([y0, y0, y0 - h, y0 + h])
    )
    dra = (np.asarray(ra) - ra[0] + 180.0) % 360.0 - 180.0
    east = dra * math.cos(math.radians(float(np.mean(dec)))) * 3600.0
    north = (np.asarray(dec) - dec[0]) * 3600.0
    return np.array(
        [[east[1] - east[0], east[3] - east[2]], [north[1] - north[0], north[3] - north[2]]]
    ) / (2 * h)


def _pixel_beam(field, jac) -> tuple[float, float, float]:
    """The field's beam as (maj, min, pa) in its pixel frame (pa from +y towards -x)."""
    flip = np.diag([-1.0, 1.0])  # sky written (-east, north), like the pixel frame's convention
    sky_cov = _covariance(field.beam.maj, field.beam.min, field.beam.pa)
    inv = np.linalg.inv(flip @ jac)
    maj, mn, pa = _axes(inv @ sky_cov @ inv.T)
    return float(maj), float(mn), float(pa)


def _image_hdu(hdul) -> int:
    # the rule of open_field: the primary HDU, or the first image extension after an empty one
    if hdul[0].header.get("NAXIS", 0) != 0:
        return 0
    for i, h in enumerate(hdul):
        if h.is_image and h.header.get("NAXIS", 0) >= 2:
            return i
    return 0


def _write_like(field, path: Path, change, *, cards: dict) -> Path:
    """The field's file rewritten: every plane in the file's own units (float32), ``change``
    applied, the original header kept (scaling keys dropped, the beam added when the header
    had none), written atomically."""
    from astropy.io import fits

    from astrodet.utils import atomic_write_fits

    from .field import FieldError

    with fits.open(field.path, memmap=True, do_not_scale_image_data=True) as hdul:
        hdu = hdul[_image_hdu(hdul)]
        header = hdu.header.copy()
        raw = np.asarray(hdu.data)
        bscale, bzero = float(header.get("BSCALE", 1.0)), float(header.get("BZERO", 0.0))
        data = raw.astype(np.float64) * bscale + bzero if (bscale, bzero) != (1.0, 0.0) else raw
        data = np.array(data, dtype=np.float32)
        if raw.dtype.kind in "iu" and "BLANK" in header:
            data[raw == header["BLANK"]] = np.nan
    if data.shape[-2:] != tuple(field.shape):
        raise FieldError(f"{field.path}: image shape {data.shape} is not the field's {field.shape}")
    for key in ("BSCALE", "BZERO", "BLANK", "XTENSION", "PCOUNT", "GCOUNT", "EXTNAME"):
        header.remove(key, ignore_missing=True, remove_all=True)
    if "BMAJ" not in header:
        header["BMAJ"] = (field.beam.maj / 3600.0, "beam FWHM major axis (deg)")
        header["BMIN"] = (field.beam.min / 3600.0, "beam FWHM minor axis (deg)")
        header["BPA"] = (field.beam.pa, "beam position angle (deg)")
    for key, value in cards.items():
        header[key] = value
    return atomic_write_fits(path, change(data), header)


def _stokes_i_planes(field, ndim: int) -> tuple:
    """Index of the planes a source belongs to: the field's Stokes I plane along a STOKES
    axis, every plane along the others (a flat spectrum across frequency channels)."""
    from astropy.io import fits

    with fits.open(field.path, memmap=True, do_not_scale_image_data=True) as hdul:
        header = hdul[_image_hdu(hdul)].header
        ctypes = [str(header.get(f"CTYPE{ndim - k}", "")).upper() for k in range(ndim - 2)]
    plane = getattr(field, "plane", (0,) * (ndim - 2))
    return tuple(
        plane[k] if ctype.startswith("STOKES") else slice(None) for k, ctype in enumerate(ctypes)
    )


def invert_field(field, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the field times -1 (every plane, the original header, the file's units): it holds
    no real positive source, so what a finder finds there is false.

    Args:
        field: a :class:`~astrodet.sky.field.Field`.
        path: the FITS file to write.
        overwrite: replace an existing file.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    return _write_like(field, path, np.negative, cards={"INVERTED": (True, "original x -1")})


@dataclass
class InjectedField:
    """What :func:`inject_field` wrote: the injected image, the inverted one (None when not
    asked for), the truth table and its files."""

    injected: Path
    inverted: Path | None
    truth: object  # astropy Table
    truth_files: dict


def inject_field(
    field,
    *,
    n: int,
    seed: int,
    output_dir: str | os.PathLike,
    snr_range: Sequence[float] = DEFAULT_SNR_RANGE,
    resolved_fraction: float = 0.3,
    size_range_beams: Sequence[float] = (1.0, 3.0),
    axis_ratio_range: Sequence[float] = (0.3, 1.0),
    min_separation_beams: float = 5.0,
    edge_beams: float = 3.0,
    mask_snr: float = 4.0,
    mask_grow_beams: float = 3.0,
    background: tuple[np.ndarray, np.ndarray] | None = None,
    inverted: bool = True,
    overwrite: bool = False,
) -> InjectedField:
    """Inject sources into a field and write ``injected.fits``, ``inverted.fits`` and
    ``truth.fits``/``truth.csv`` into ``output_dir``.

    The S/N and the emission mask come from the toolkit's background and rms maps
    (:func:`astrodet.sky.measure.background_map`). The written images keep the original file's
    header and axes, in its own units (``BUNIT``), as float32 (BSCALE/BZERO/BLANK dropped,
    blanks as NaN); the sources go into the Stokes I plane the field reads, in every channel
    of a frequency axis. Truth positions are ICRS (:meth:`Field.pixel_to_world`), sizes and
    position angles on the sky (arcsec, deg east of north) through the WCS at the field's
    centre.

    Args:
        field: a :class:`~astrodet.sky.field.Field` (its beam, pixel scale and WCS are used).
        n: sources asked for (fewer are placed when they do not fit: the truth's meta says).
        seed: the random seed; with the file's name it gives the sources (the same seed, the
            same sources on a field; other sources on a field of another name).
        output_dir: the folder to write into (created).
        snr_range, resolved_fraction, size_range_beams, axis_ratio_range,
            min_separation_beams, edge_beams: as :func:`inject_sources`.
        mask_snr, mask_grow_beams: the field's own emission (:func:`emission_mask`).
        background: ``(background, rms)`` maps of the field when already computed.
        inverted: also write the inverted field (:func:`invert_field`).
        overwrite: replace existing files.

    Raises:
        FileExistsError: an output exists and ``overwrite`` is not given.
    """
    from .catalogue import write_catalogue
    from .measure import background_map

    out = Path(output_dir)
    names = ["injected.fits", "truth.fits", "truth.csv"] + (["inverted.fits"] if inverted else [])
    existing = [str(out / f) for f in names if (out / f).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} exist; pass --overwrite to replace them")
    ny, nx = field.shape
    image = field.read(0, ny, 0, nx)
    bkg, rms = background if background is not None else background_map(field)
    jac = _sky_jacobian(field)
    beam_px = _pixel_beam(field, jac)
    avoid = emission_mask(
        image,
        background=bkg,
        rms=rms,
        beam_pixels=field.beam_pixels(),
        snr=mask_snr,
        grow_beams=mask_grow_beams,
    )
    drawn = _inject(
        image,
        beam_pixels=beam_px,
        rms=rms,
        n=n,
        # the file name joins the seed: one seed gives each field its own S/N draws
        seed=[int(seed), zlib.crc32(Path(field.path).name.encode())],
        snr_range=snr_range,
        resolved_fraction=resolved_fraction,
        size_range_beams=size_range_beams,
        axis_ratio_range=axis_ratio_range,
        min_separation_beams=min_separation_beams,
        edge_beams=edge_beams,
        avoid_mask=avoid,
        max_tries=4096,
    )
    radec = field.pixel_to_world(drawn.x, drawn.y) if field.wcs is not None else None
    truth = _truth(
        drawn,
        sky_jacobian=jac,
        pixel_scale=field.pixel_scale,
        radec=radec,
        meta={
            "IMAGE": Path(field.path).name,
            "SEED": int(seed),
            "SNR_LO": float(snr_range[0]),
            "SNR_HI": float(snr_range[1]),
            "MASKED": round(float(avoid.mean()), 4),
        },
    )
    # the field's own beam, not its round trip through the pixel frame
    truth.meta.update(BEAM_MAJ=field.beam.maj, BEAM_MIN=field.beam.min, BEAM_PA=field.beam.pa)
    out.mkdir(parents=True, exist_ok=True)
    model = drawn.model / field.flux_scale  # the file's own units
    planes = None

    def add(data):
        nonlocal planes
        planes = _stokes_i_planes(field, data.ndim) if planes is None else planes
        data[planes] = (data[planes] + model).astype(np.float32)
        return data

    cards = {"INJECTN": (len(drawn.x), "sources injected"), "INJSEED": (int(seed), "seed")}
    injected_path = _write_like(field, out / "injected.fits", add, cards=cards)
    inverted_path = invert_field(field, out / "inverted.fits", overwrite=True) if inverted else None
    files = write_catalogue(truth, out / "truth", formats=("fits", "csv"), overwrite=True)
    logger.info(
        "%s: %d of %d sources injected (seed %d) -> %s",
        field.path,
        len(drawn.x),
        n,
        seed,
        injected_path,
    )
    return InjectedField(injected_path, inverted_path, truth, files)
