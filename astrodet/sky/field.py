"""A FITS survey image ("field"): memory-mapped Stokes-I plane, celestial WCS, beam, tiles.

Whole survey images are large (a 16k x 16k MeerKAT or ASKAP field is 1 GiB in float32), so
the data stay memory-mapped and are read tile by tile: :meth:`Field.read` copies one slice
only. Radio images usually carry 3 or 4 axes (RA, Dec, frequency, Stokes); the first plane
of every extra axis is used (the Stokes-I plane where a STOKES axis says which one is I).

Units: the beam is FWHM in arcsec with its position angle in degrees east of north (the
header's ``BMAJ``/``BMIN``/``BPA`` are in degrees; a FIRST image without them, as SkyView
writes it, gets FIRST's beam at its declination, :func:`first_beam`). Sky positions are
ICRS right ascension and declination whatever the image's frame (a Galactic-plane image's
l, b are converted; position angles are east of equatorial north). Without a celestial WCS there is no pixel
scale: sizes, the beam's included, are then understood in pixels. Pixels are read in
Jy/beam: an image whose ``BUNIT`` says mJy/beam or uJy/beam is scaled on reading; another
unit (K, Jy/pixel) is read as it is, with a warning.
"""

from __future__ import annotations

import logging
import math
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "Beam",
    "Field",
    "FieldError",
    "Tile",
    "add_beam_argument",
    "beam_from_header",
    "first_beam",
    "flux_unit_scale",
    "native_to_radec",
    "non_equatorial_frame",
    "open_field",
    "pixel_to_radec",
    "radec_to_pixel",
]

_FWHM_TO_SIGMA2 = 1.0 / (8.0 * math.log(2.0))  # sigma^2 = FWHM^2 / (8 ln 2)
# AIPS writes the restoring beam into HISTORY instead of BMAJ/BMIN/BPA (FIRST, many VLA images).
_AIPS_BEAM = re.compile(
    r"BMAJ\s*=\s*([-+.\dEeDd]+)\s+BMIN\s*=\s*([-+.\dEeDd]+)\s+BPA\s*=\s*([-+.\dEeDd]+)"
)
# BUNIT of a radio image: an SI prefix, Jy, per beam (written many ways, any case).
_JY_PER_BEAM = re.compile(
    r"^\s*(?P<prefix>[mun]?)jy\s*(?:/\s*(?:beam|bm)|[\s.*]*(?:beam|bm)\s*(?:\^|\*\*)?\s*-1)\s*$",
    re.IGNORECASE,
)
_PREFIX = {"": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
#: FIRST's restoring beam changes with declination (Becker et al. 1995; White et al. 1997):
#: circular 5.4" north of Dec +4 deg 33' (J2000), elongated north-south below it, where the
#: VLA sees the sky at lower elevation.
FIRST_DEC_CIRCULAR = 4.0 + 33.0 / 60.0
FIRST_DEC_SOUTH = -2.5
# FIRST images whose header lacks the beam: SkyView's (and others') SURVEY card, or the
# FIRST team's copyright line in HISTORY.
_FIRST_SURVEY = re.compile(r"\bFIRST\b", re.IGNORECASE)
_FIRST_HISTORY = re.compile(r"\b(?:FIRST VLA|VLA FIRST) Survey\b", re.IGNORECASE)
# Rows of a strided sample checked first for finite pixels (cheap on a memory map).
_SAMPLE_PIXELS = 1 << 20


class FieldError(ValueError):
    """A FITS field that cannot be used as it is (the message names the file)."""


@dataclass(frozen=True)
class Beam:
    """The restoring beam: FWHM ``maj``/``min`` in arcsec, ``pa`` in degrees east of north."""

    maj: float
    min: float
    pa: float = 0.0

    def __post_init__(self):
        if not (self.maj > 0 and self.min > 0):
            raise ValueError(f"beam axes must be positive, got maj={self.maj}, min={self.min}")

    @classmethod
    def from_args(cls, values: Sequence[float] | None) -> Beam | None:
        """The ``--beam MAJ MIN PA`` triple (arcsec, arcsec, deg); None when not given."""
        if values is None:
            return None
        if isinstance(values, Beam):
            return values
        values = [float(v) for v in values]
        if len(values) != 3:
            raise ValueError(f"--beam takes MAJ MIN PA (arcsec, arcsec, deg), got {values}")
        return cls(*values)

    @property
    def fwhm(self) -> float:
        """Geometric mean FWHM (arcsec)."""
        return math.sqrt(self.maj * self.min)


def first_beam(dec_deg: float) -> Beam:
    """FIRST's restoring beam at a declination: 5.4" circular north of Dec +4 deg 33'
    (J2000), 6.4" x 5.4" between -2 deg 30' and +4 deg 33', 6.8" x 5.4" south of
    -2 deg 30'; the major axis lies north-south (PA 0).

    Args:
        dec_deg: the field centre's declination (degrees, J2000/ICRS).
    """
    dec = float(dec_deg)
    if not math.isfinite(dec) or not -90.0 <= dec <= 90.0:
        raise ValueError(f"declination must be a number of degrees in [-90, 90], got {dec_deg}")
    if dec > FIRST_DEC_CIRCULAR:
        return Beam(5.4, 5.4, 0.0)
    if dec > FIRST_DEC_SOUTH:
        return Beam(6.4, 5.4, 0.0)
    return Beam(6.8, 5.4, 0.0)


def _is_first(header) -> bool:
    """Whether ``header`` belongs to a FIRST image (its SURVEY card, or the FIRST team's
    copyright line in HISTORY)."""
    if _FIRST_SURVEY.search(str(header.get("SURVEY", ""))):
        return True
    return any(_FIRST_HISTORY.search(str(line)) for line in header.get("HISTORY", []))


def _centre_dec(header) -> float | None:
    """ICRS declination of the image centre through the header's celestial WCS (None
    without one)."""
    from astropy.wcs import WCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-standard radio keywords are common
        wcs = WCS(header)
    if not wcs.has_celestial:
        return None
    wcs = wcs.celestial
    nx, ny = int(header.get("NAXIS1", 1)), int(header.get("NAXIS2", 1))
    _, dec = pixel_to_radec(wcs, (nx - 1) / 2.0, (ny - 1) / 2.0)
    dec = float(dec)
    return dec if math.isfinite(dec) else None


def beam_from_header(header, *, path=None) -> Beam | None:
    """The restoring beam a FITS header gives: its ``BMAJ``/``BMIN``/``BPA`` (degrees), an
    AIPS HISTORY record, or, for a FIRST image with neither (SkyView cutouts), FIRST's beam at
    the image centre's declination (:func:`first_beam`); None otherwise.

    Args:
        header: the image's FITS header.
        path: the file, named in warnings and log lines.
    """
    path = path or "image"
    beam = _header_beam(header, path)
    if beam is not None or not _is_first(header):
        return beam
    dec = _centre_dec(header)
    if dec is None:
        return None
    beam = first_beam(dec)
    logger.info(
        "%s: a FIRST image without beam keys: FIRST's beam at Dec %+.3f: %s", path, dec, beam
    )
    return beam


def add_beam_argument(
    parser,
    *,
    help: str = "restoring beam FWHM (arcsec, arcsec, deg) for headers without BMAJ/BMIN/BPA",
) -> None:
    """Add the ``--beam MAJ MIN PA`` option every command reading fields takes; read it back
    with :meth:`Beam.from_args`.

    Args:
        parser: an ``argparse.ArgumentParser`` (or argument group).
        help: the option's help text.
    """
    parser.add_argument(
        "--beam", nargs=3, type=float, metavar=("MAJ", "MIN", "PA"), default=None, help=help
    )


@dataclass
class Tile:
    """A rectangle of a field: 0-based bounds, end exclusive."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def _header_beam(header, path: Path) -> Beam | None:
    if "BMAJ" in header:
        maj = float(header["BMAJ"]) * 3600.0
        if "BMIN" in header:
            mn = float(header["BMIN"]) * 3600.0
        else:
            warnings.warn(
                f"{path}: BMIN missing from the header: circular beam assumed", stacklevel=3
            )
            mn = maj
        if "BPA" in header:
            pa = float(header["BPA"])
        else:
            warnings.warn(
                f"{path}: BPA missing from the header: beam position angle 0 assumed", stacklevel=3
            )
            pa = 0.0
        # deg -> arcsec; rounding drops the float noise of the conversion (5.999999999999997)
        return Beam(round(maj, 9), round(mn, 9), pa)
    for line in reversed(header.get("HISTORY", [])):
        m = _AIPS_BEAM.search(str(line))
        if m:
            maj, mn, pa = (float(v.replace("D", "E").replace("d", "e")) for v in m.groups())
            logger.info("%s: beam from the AIPS HISTORY record", path)
            return Beam(maj * 3600.0, mn * 3600.0, pa)
    return None


def flux_unit_scale(bunit, path=None) -> float:
    """The factor that turns pixel values in ``bunit`` into Jy/beam.

    Args:
        bunit: the header's ``BUNIT`` (None or empty: Jy/beam assumed). Radio images write
            it in many ways (``JY/BEAM``, ``Jy/beam``, ``mJy/beam``, ``Jy beam-1``); the
            prefix is read case-insensitively (no image is in megajansky per beam).
        path: the file, named in the warning.

    Returns:
        1 for Jy/beam, 1e-3 for mJy/beam, 1e-6 for uJy/beam; 1 with a warning for a unit
        that is not a flux density per beam (K, Jy/pixel): values are then used as they are.
    """
    if bunit is None or not str(bunit).strip():
        return 1.0
    m = _JY_PER_BEAM.match(str(bunit))
    if m is None:
        warnings.warn(
            f"{path or 'image'}: BUNIT {str(bunit)!r} is not a flux density per beam: pixel "
            "values are used as they are (fluxes in the catalogue are in these units)",
            stacklevel=3,
        )
        return 1.0
    return _PREFIX[m.group("prefix").lower()]


def non_equatorial_frame(wcs):
    """The frame of a celestial ``wcs`` when its world coordinates are not equatorial J2000
    (Galactic, FK4 B1950, ecliptic), else None: ICRS and FK5 J2000 are taken as they are
    (they differ by tens of milliarcseconds)."""
    from astropy.coordinates import FK5, ICRS
    from astropy.wcs.utils import wcs_to_celestial_frame

    try:
        frame = wcs_to_celestial_frame(wcs)
    except ValueError:  # a celestial pair astropy cannot name: use it as it is
        return None
    if isinstance(frame, ICRS) or (isinstance(frame, FK5) and frame.equinox.jyear == 2000.0):
        return None
    return frame


def native_to_radec(wcs, lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """World coordinates of ``wcs`` (e.g. Galactic l, b in degrees) -> ICRS (ra, dec) in
    degrees; unchanged for an equatorial J2000 WCS."""
    lon, lat = np.asarray(lon, np.float64), np.asarray(lat, np.float64)
    frame = non_equatorial_frame(wcs)
    if frame is None:
        return lon, lat
    from astropy.coordinates import SkyCoord

    c = SkyCoord(lon, lat, unit="deg", frame=frame).icrs
    return np.asarray(c.ra.deg), np.asarray(c.dec.deg)


def pixel_to_radec(wcs, x, y) -> tuple[np.ndarray, np.ndarray]:
    """0-based pixel positions -> ICRS (ra, dec) in degrees through a celestial ``wcs`` in
    any frame (a Galactic-plane image gives right ascensions, not longitudes)."""
    lon, lat = wcs.all_pix2world(np.asarray(x, np.float64), np.asarray(y, np.float64), 0)
    return native_to_radec(wcs, lon, lat)


def radec_to_pixel(wcs, ra, dec) -> tuple[np.ndarray, np.ndarray]:
    """ICRS (ra, dec) in degrees -> 0-based pixel positions through a celestial ``wcs`` in
    any frame."""
    ra, dec = np.asarray(ra, np.float64), np.asarray(dec, np.float64)
    frame = non_equatorial_frame(wcs)
    if frame is not None:
        from astropy.coordinates import SkyCoord

        c = SkyCoord(ra, dec, unit="deg", frame="icrs").transform_to(frame).spherical
        ra, dec = np.asarray(c.lon.deg), np.asarray(c.lat.deg)
    x, y = wcs.all_world2pix(ra, dec, 0)
    return np.asarray(x), np.asarray(y)


def _stokes_i_index(header, axis: int, n: int) -> int:
    """Index of Stokes I along FITS axis ``axis`` (1-based), 0 when I is not there."""
    crval = float(header.get(f"CRVAL{axis}", 1.0))
    cdelt = float(header.get(f"CDELT{axis}", 1.0))
    crpix = float(header.get(f"CRPIX{axis}", 1.0))
    values = crval + (np.arange(n) + 1 - crpix) * cdelt
    hits = np.flatnonzero(np.isclose(values, 1.0))
    return int(hits[0]) if len(hits) else 0


class Field:
    """A FITS survey image, memory-mapped; Stokes-I plane of 2-4 axis images (first channel).

    Use :func:`open_field` to make one. Attributes: ``path``, ``shape`` (ny, nx), ``wcs``
    (celestial 2-D WCS or None), ``beam``, ``pixel_scale`` (arcsec/pixel or None),
    ``flux_scale`` (what the file's values are multiplied by to be in Jy/beam), ``header``
    (2-D celestial header), ``plane`` (the plane read of a cube).
    """

    def __init__(self, path: Path, hdul, hdu_index, *, beam: Beam | None, pixel_scale=None):
        from astropy.io import fits
        from astropy.wcs import WCS

        self.path = path
        self._hdul = hdul
        hdu = hdul[hdu_index]
        full = hdu.header
        data = hdu.data  # raw values (scaling applied per read)
        if data is None or not 2 <= data.ndim <= 4:
            ndim = 0 if data is None else data.ndim
            raise FieldError(
                f"{path}: HDU {hdu_index!r} has {ndim} axes; expected a 2-4 axis image"
            )
        # numpy axes are FITS axes reversed: the last two are FITS axes 1 and 2 (the sky).
        plane = []
        for np_axis in range(data.ndim - 2):
            fits_axis = data.ndim - np_axis
            ctype = str(full.get(f"CTYPE{fits_axis}", "")).upper()
            n = data.shape[np_axis]
            idx = _stokes_i_index(full, fits_axis, n) if ctype.startswith("STOKES") else 0
            if n > 1 or ctype:
                logger.info(
                    "%s: axis %d (%s, %d planes): using plane %d",
                    path,
                    fits_axis,
                    ctype or "?",
                    n,
                    idx,
                )
            plane.append(idx)
        self._plane = tuple(plane)
        self._data = data
        self.shape = (int(data.shape[-2]), int(data.shape[-1]))

        # pixel values in Jy/beam: the flux unit folds into the FITS scaling of each read
        self.flux_scale = flux_unit_scale(full.get("BUNIT"), path)
        if self.flux_scale != 1.0:
            logger.info(
                "%s: BUNIT %s: pixels read in Jy/beam (x %g)", path, full["BUNIT"], self.flux_scale
            )
        self._bscale = float(full.get("BSCALE", 1.0)) * self.flux_scale
        self._bzero = float(full.get("BZERO", 0.0)) * self.flux_scale
        self._blank = full.get("BLANK") if data.dtype.kind in "iu" else None

        wcs = None
        if full.get("CTYPE1"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # non-standard radio keywords are common
                full_wcs = WCS(full)
            if full_wcs.has_celestial:
                if {full_wcs.wcs.lng, full_wcs.wcs.lat} != {0, 1}:
                    raise FieldError(f"{path}: the celestial axes must be the first two FITS axes")
                wcs = full_wcs.celestial
        self.wcs = wcs
        if wcs is None:
            warnings.warn(
                f"{path}: no celestial WCS: the catalogue will have pixel positions only",
                stacklevel=3,
            )
            self.pixel_scale = float(pixel_scale) if pixel_scale else None
            header = fits.Header()
        else:
            from astropy.wcs.utils import proj_plane_pixel_scales

            scales = proj_plane_pixel_scales(wcs) * 3600.0
            self.pixel_scale = float(np.sqrt(scales[0] * scales[1]))
            header = wcs.to_header()
        header["NAXIS1"], header["NAXIS2"] = self.shape[1], self.shape[0]
        for key in ("BUNIT", "TELESCOP", "OBJECT", "DATE-OBS"):
            if key in full:
                header[key] = full[key]
        if self.flux_scale != 1.0:
            header["BUNIT"] = "Jy/beam"

        header_beam = beam_from_header(full, path=path)
        if beam is None and header_beam is None:
            raise FieldError(
                f"{path}: no beam in the header (no BMAJ/BMIN/BPA, no AIPS HISTORY record, "
                "not a FIRST image); give it with "
                "--beam MAJ MIN PA (arcsec, arcsec, deg) or beam=(maj, min, pa)"
            )
        if beam is not None and header_beam is not None and beam != header_beam:
            logger.info(
                "%s: beam %s given, header says %s: using the given one", path, beam, header_beam
            )
        self.beam = beam or header_beam
        header["BMAJ"] = self.beam.maj / 3600.0
        header["BMIN"] = self.beam.min / 3600.0
        header["BPA"] = self.beam.pa
        self.header = header
        if self.pixel_scale is None:
            warnings.warn(
                f"{path}: no pixel scale: the beam and source sizes are in pixels", stacklevel=3
            )

    @property
    def plane(self) -> tuple[int, ...]:
        """The plane read: its index along each axis beyond the two sky axes, in numpy
        order (the last FITS axis first); ``()`` for a 2-D image. Stokes I on a STOKES
        axis, the first plane on any other (a cube's first frequency channel)."""
        return self._plane

    # ------------------------------------------------------------------ pixels
    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """A float32 copy of ``[y0:y1, x0:x1]`` (clipped to the image), NaN kept, FITS
        orientation (row 0 is the bottom row of the sky image)."""
        ny, nx = self.shape
        y0, y1 = max(int(y0), 0), min(int(y1), ny)
        x0, x1 = max(int(x0), 0), min(int(x1), nx)
        raw = np.asarray(self._data[self._plane + (slice(y0, y1), slice(x0, x1))])
        if self._bscale != 1.0 or self._bzero != 0.0:
            out = (raw.astype(np.float64) * self._bscale + self._bzero).astype(np.float32)
        else:
            out = raw.astype(np.float32)  # always a native-endian copy
        if self._blank is not None:
            out[raw == self._blank] = np.nan
        return out

    def finite_mask(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """True where the pixels of ``[y0:y1, x0:x1]`` hold data (not NaN/inf or BLANK)."""
        return np.isfinite(self.read(y0, y1, x0, x1))

    def tiles(self, size: int, overlap: int = 0) -> Iterator[Tile]:
        """A grid of ``size`` x ``size`` tiles overlapping by ``overlap`` pixels that covers
        the field; the last tile of each row and column is flush with the edge."""
        if size <= 0 or not 0 <= overlap < size:
            raise ValueError(f"tiles need size > overlap >= 0, got size={size}, overlap={overlap}")
        ys, xs = (_starts(n, size, size - overlap) for n in self.shape)
        for y0 in ys:
            for x0 in xs:
                yield Tile(y0, x0, min(y0 + size, self.shape[0]), min(x0 + size, self.shape[1]))

    def has_data(self) -> bool:
        """Whether any pixel is finite: a strided sample first, then block by block."""
        ny, nx = self.shape
        step = max(1, int(math.sqrt(ny * nx / _SAMPLE_PIXELS)))
        raw = self._data[self._plane + (slice(None, None, step), slice(None, None, step))]
        if np.isfinite(self._scale_sample(raw)).any():
            return True
        rows = max(1, _SAMPLE_PIXELS // max(nx, 1))
        return any(np.isfinite(self.read(y, y + rows, 0, nx)).any() for y in range(0, ny, rows))

    def _scale_sample(self, raw) -> np.ndarray:
        raw = np.asarray(raw)
        out = raw.astype(np.float64) * self._bscale + self._bzero
        if self._blank is not None:
            out[raw == self._blank] = np.nan
        return out

    # ------------------------------------------------------------------ beam
    def beam_pixels(self) -> float:
        """Beam FWHM (geometric mean of maj and min) in pixels."""
        return self.beam.fwhm / (self.pixel_scale or 1.0)

    def beam_area_pixels(self) -> float:
        """Beam area ``2 pi sigma_maj sigma_min`` in pixels^2 (total flux = sum / area)."""
        scale = self.pixel_scale or 1.0
        return 2.0 * math.pi * self.beam.maj * self.beam.min * _FWHM_TO_SIGMA2 / scale**2

    # ------------------------------------------------------------------ coordinates
    def pixel_to_world(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """0-based pixel positions -> ICRS (ra, dec) in degrees, whatever the frame of the
        field's WCS; NaN arrays without a WCS."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if self.wcs is None:
            nan = np.full(np.broadcast(x, y).shape, np.nan)
            return nan, nan.copy()
        return pixel_to_radec(self.wcs, x, y)

    def world_to_pixel(self, ra, dec) -> tuple[np.ndarray, np.ndarray]:
        """ICRS (ra, dec) in degrees -> 0-based pixel positions."""
        if self.wcs is None:
            raise FieldError(f"{self.path}: no celestial WCS: sky positions cannot be placed")
        return radec_to_pixel(self.wcs, ra, dec)

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        """Release the memory map."""
        self._data = None
        self._hdul.close()

    def __enter__(self) -> Field:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Field({str(self.path)!r}, shape={self.shape}, beam={self.beam}, pixel_scale={self.pixel_scale})"


def _starts(n: int, size: int, step: int) -> list[int]:
    if n <= size:
        return [0]
    starts = list(range(0, n - size + 1, step))
    if starts[-1] + size < n:
        starts.append(n - size)
    return starts


def open_field(
    path: str | os.PathLike,
    *,
    beam: Beam | Sequence[float] | None = None,
    hdu: int | str = 0,
    pixel_scale: float | None = None,
) -> Field:
    """Open a FITS survey image, memory-mapped.

    Args:
        path: the FITS file.
        beam: the restoring beam ``(maj, min, pa)`` in arcsec, arcsec, deg (or a
            :class:`Beam`); overrides the header's ``BMAJ``/``BMIN``/``BPA``.
        hdu: the HDU holding the image (an empty primary HDU falls through to the first
            image extension).
        pixel_scale: arcsec per pixel for an image without a celestial WCS.

    Raises:
        FileNotFoundError: no such file.
        FieldError: no beam anywhere, an all-NaN image, not 2-4 axes, not FITS.
    """
    from astropy.io import fits

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FITS image {path} not found")
    beam = Beam.from_args(beam)
    try:
        # Unscaled raw values keep the memory map: astropy would otherwise scale (and so
        # load) the whole array on first access. Field.read applies BSCALE/BZERO per tile.
        hdul = fits.open(path, memmap=True, do_not_scale_image_data=True, mode="readonly")
    except OSError as e:
        raise FieldError(f"{path}: not a readable FITS file ({e})") from e
    try:
        index = hdu
        if hdu == 0 and hdul[0].header.get("NAXIS", 0) == 0:
            images = [i for i, h in enumerate(hdul) if h.is_image and h.header.get("NAXIS", 0) >= 2]
            if not images:
                raise FieldError(f"{path}: no image HDU")
            index = images[0]
            logger.info("%s: empty primary HDU: using HDU %d", path, index)
        field = Field(path, hdul, index, beam=beam, pixel_scale=pixel_scale)
        if not field.has_data():
            raise FieldError(f"{path}: every pixel is NaN or blank")
    except BaseException:
        hdul.close()
        raise
    return field
