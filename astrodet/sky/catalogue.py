"""Source catalogues: one astropy Table with fixed columns and units, in and out.

=========== ========= ==========================================================
column      unit      meaning
=========== ========= ==========================================================
source_id             integer, 0..n-1 within the catalogue
ra, dec     deg       position, ICRS (converted from the image's frame); NaN without a WCS
x, y        pix       0-based pixel position in the field (FITS orientation)
peak_flux   Jy/beam   peak above the background: the fitted Gaussian's amplitude, else
                      interpolated between pixels (not the brightest pixel)
total_flux  Jy        the fitted Gaussian's integral plus what it misses on the source's
                      own pixels, over the beam area
maj, min    arcsec    FWHM of the major and minor axes (pixels without a pixel scale)
pa          deg       position angle of the major axis, east of north
rms         Jy/beam   local noise at the source
snr                   peak_flux / rms
score                 detection confidence (1 for classical finders)
=========== ========= ==========================================================

How our finders measure them: :mod:`astrodet.sky.measure` (one elliptical Gaussian fitted per
source with its island's neighbours, :mod:`astrodet.sky.fitting`); other catalogues keep what
their finder gave.

Optional columns, where the finder or the file gives them: ``island_id`` (the island, a
connected region of emission, the source belongs to: PyBDSF's ``Isl_id``, Aegean's
``island``, Selavy's ``island_id``), ``dc_maj``, ``dc_min`` (arcsec) and ``dc_pa`` (deg), the
deconvolved sizes, and for a PyBDSF Gaussian list ``gaus_id`` and ``pybdsf_source_id``
(PyBDSF's own numbers: ``source_id`` is ours, unique in the table).

``maj``/``min`` are the sizes as seen on the image, the beam included ("convolved"), as
finders measure and fit them; the meta key ``SIZES`` says so (``convolved``). A published
table that gives deconvolved sizes only (VizieR's FIRST ``Maj``/``Min`` without
``fMaj``/``fMin``, NVSS's ``MajAxis``) has them in ``maj``/``min`` and in ``dc_*`` with
``SIZES = 'deconvolved'``: they are not taken for what the image shows.

Read from our own files (FITS/CSV), PyBDSF source and Gaussian lists (``.srl``/``.gaul``,
FITS or ASCII), Aegean tables (FITS/CSV/VOTable), ASKAP Selavy lists and published survey
tables (VizieR column names). Written as FITS (with the meta: beam, pixel scale, image,
finder), a plain CSV (one header row, no meta, so any CSV reader takes it) and a DS9 region
file. COCO boxes follow the MGCLS convention of :mod:`astrodet.data.mgcls` (the bounding
box of the projected FWHM ellipse), which stays the one place that defines it.
"""

from __future__ import annotations

import io
import logging
import math
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from astropy.table import Table

logger = logging.getLogger(__name__)

__all__ = [
    "COLUMNS",
    "UNITS",
    "CatalogueError",
    "catalogue_beam",
    "catalogue_to_boxes",
    "catalogue_to_coco",
    "coco_to_catalogue",
    "EXTRA_COLUMNS",
    "SIZES_KEY",
    "new_catalogue",
    "read_catalogue",
    "write_catalogue",
]

COLUMNS = (
    "source_id",
    "ra",
    "dec",
    "x",
    "y",
    "peak_flux",
    "total_flux",
    "maj",
    "min",
    "pa",
    "rms",
    "snr",
    "score",
)
UNITS = {
    "source_id": "",
    "ra": "deg",
    "dec": "deg",
    "x": "pix",
    "y": "pix",
    "peak_flux": "Jy/beam",
    "total_flux": "Jy",
    "maj": "arcsec",
    "min": "arcsec",
    "pa": "deg",
    "rms": "Jy/beam",
    "snr": "",
    "score": "",
}
DESCRIPTIONS = {
    "source_id": "source number in this catalogue",
    "ra": "right ascension",
    "dec": "declination",
    "x": "0-based pixel column",
    "y": "0-based pixel row (FITS orientation)",
    "peak_flux": "peak surface brightness above the background",
    "total_flux": "integrated flux density",
    "maj": "major axis FWHM",
    "min": "minor axis FWHM",
    "pa": "major axis position angle, east of north",
    "rms": "local noise",
    "snr": "peak_flux / rms",
    "score": "detection confidence",
}
#: Optional columns our readers fill where a file gives them (unit, description).
EXTRA_COLUMNS = {
    "island_id": ("", "island (connected emission) of the source"),
    "dc_maj": ("arcsec", "deconvolved major axis FWHM"),
    "dc_min": ("arcsec", "deconvolved minor axis FWHM"),
    "dc_pa": ("deg", "deconvolved major axis position angle, east of north"),
    "gaus_id": ("", "PyBDSF Gaussian number (may restart in each island)"),
    "pybdsf_source_id": ("", "PyBDSF source number of the Gaussian"),
}
_INTEGER_EXTRAS = ("island_id", "gaus_id", "pybdsf_source_id")
#: Meta key saying whether maj/min include the beam ("convolved") or not ("deconvolved").
SIZES_KEY = "SIZES"
#: Table meta keys of the beam (arcsec, arcsec, deg) and the pixel scale (arcsec/pixel).
BEAM_KEYS = ("BEAM_MAJ", "BEAM_MIN", "BEAM_PA")
PIXSCALE_KEY = "PIXSCALE"
_FORMATS = ("fits", "csv", "reg")

# Foreign tables: our column -> (their column, default unit when the file has none).
# Case-insensitive names; the first listed name found is used.
_PYBDSF = {
    "source_id": (("Source_id",), ""),
    "island_id": (("Isl_id",), ""),
    "ra": (("RA",), "deg"),
    "dec": (("DEC",), "deg"),
    "x": (("Xposn",), "pix"),
    "y": (("Yposn",), "pix"),
    "peak_flux": (("Peak_flux",), "Jy/beam"),
    "total_flux": (("Total_flux",), "Jy"),
    "maj": (("Maj",), "deg"),
    "min": (("Min",), "deg"),
    "pa": (("PA",), "deg"),
    "dc_maj": (("DC_Maj",), "deg"),
    "dc_min": (("DC_Min",), "deg"),
    "dc_pa": (("DC_PA",), "deg"),
    "rms": (("Isl_rms",), "Jy/beam"),
}
_AEGEAN = {
    "source_id": (("uuid_index", "source"), ""),
    "island_id": (("island",), ""),
    "ra": (("ra",), "deg"),
    "dec": (("dec",), "deg"),
    "x": (("x",), "pix"),
    "y": (("y",), "pix"),
    "peak_flux": (("peak_flux",), "Jy/beam"),
    "total_flux": (("int_flux",), "Jy"),
    "maj": (("a",), "arcsec"),
    "min": (("b",), "arcsec"),
    "pa": (("pa",), "deg"),
    "rms": (("local_rms",), "Jy/beam"),
}
# ASKAP Selavy component/island lists (CASDA: RACS, EMU, VAST...): fluxes in mJy.
_SELAVY = {
    "ra": (("ra_deg_cont",), "deg"),
    "dec": (("dec_deg_cont",), "deg"),
    "peak_flux": (("flux_peak",), "mJy/beam"),
    "total_flux": (("flux_int",), "mJy"),
    "island_id": (("island_id",), ""),
    "maj": (("maj_axis",), "arcsec"),
    "min": (("min_axis",), "arcsec"),
    "pa": (("pos_ang",), "deg"),
    "dc_maj": (("maj_axis_deconv",), "arcsec"),
    "dc_min": (("min_axis_deconv",), "arcsec"),
    "dc_pa": (("pos_ang_deconv",), "deg"),
    "rms": (("rms_image", "background_noise"), "mJy/beam"),
}
# Published survey tables as VizieR and survey archives serve them (FIRST, NVSS, SUMSS, TGSS,
# LoTSS...): J2000 positions in degrees or sexagesimal, fluxes in mJy unless the file says.
_SURVEY = {
    "ra": (("RAJ2000", "_RAJ2000", "RA_deg", "RAdeg", "RA_J2000", "RA"), "deg"),
    "dec": (
        ("DEJ2000", "_DEJ2000", "DEC_deg", "DEdeg", "DEC_J2000", "DECJ2000", "DEC", "DE"),
        "deg",
    ),
    "peak_flux": (("Fpeak", "Speak", "Peak_flux", "S_peak", "Peak"), "mJy/beam"),
    "total_flux": (("Fint", "Stotal", "Total_flux", "S_int", "Sint", "S1.4", "Flux"), "mJy"),
    "island_id": (("Isl_id",), ""),
    "rms": (("Rms", "Isl_rms", "RMS_noise", "Noise", "local_rms"), "mJy/beam"),
}
# Sizes of published tables: (maj, min, pa) names, fitted (the beam included) and
# deconvolved. VizieR's FIRST gives fMaj/fMin/fPA fitted and Maj/Min/PA deconvolved; NVSS
# MajAxis/MinAxis/PA deconvolved; PyBDSF-made survey lists (LoTSS) Maj/Min/PA fitted beside
# DC_Maj/DC_Min/DC_PA. So Maj/MajAxis are deconvolved unless DC_Maj sits beside them.
_SURVEY_FITTED = (("fMaj",), ("fMin",), ("fPA",))
_SURVEY_DECONVOLVED = (("Maj", "MajAxis", "Major"), ("Min", "MinAxis", "Minor"), ("PA", "PosAng"))
_PYBDSF_STYLE = (("Maj",), ("Min",), ("PA",))
_PYBDSF_DECONVOLVED = (("DC_Maj",), ("DC_Min",), ("DC_PA",))
_OURS = {c: ((c,), UNITS[c]) for c in COLUMNS}


class CatalogueError(ValueError):
    """A table that is not a source catalogue we can read (the message lists its columns)."""


# --------------------------------------------------------------------------- building
def new_catalogue(*, meta: dict | None = None, **columns) -> Table:
    """A catalogue in our columns and units.

    Args:
        meta: table metadata (e.g. ``BEAM_MAJ``/``BEAM_MIN``/``BEAM_PA`` in arcsec/deg,
            ``PIXSCALE`` arcsec/pixel, ``IMAGE``, ``FINDER``).
        **columns: values of any of :data:`COLUMNS` (equal lengths); missing ones are NaN,
            ``score`` 1 and ``source_id`` 0..n-1. Other names are kept as extra columns
            (those of :data:`EXTRA_COLUMNS` with their unit).

    Returns:
        an ``astropy.table.Table`` with :data:`COLUMNS` first, in that order; its meta says
        ``SIZES = 'convolved'`` unless ``meta`` says otherwise.
    """
    from astropy.table import Table

    arrays = {k: np.atleast_1d(np.asarray(v)) for k, v in columns.items() if v is not None}
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"catalogue columns differ in length: {lengths}")
    n = next(iter(lengths.values()), 0)
    table = Table(meta=dict(meta or {}))
    # finders measure and fit sizes on the image: the beam is in them
    table.meta.setdefault(SIZES_KEY, "convolved")
    for name in COLUMNS:
        if name in arrays:
            values = arrays[name]
        elif name == "source_id":
            values = np.arange(n)
        elif name == "score":
            values = np.ones(n)
        else:
            values = np.full(n, np.nan)
        dtype = np.int64 if name == "source_id" else np.float64
        table[name] = np.asarray(values, dtype=dtype)
        table[name].unit = UNITS[name] or None
        table[name].description = DESCRIPTIONS[name]
    for name, values in arrays.items():
        if name in COLUMNS:
            continue
        if name in EXTRA_COLUMNS:
            unit, description = EXTRA_COLUMNS[name]
            dtype = np.int64 if name in _INTEGER_EXTRAS else np.float64
            table[name] = np.asarray(values, dtype=dtype)
            table[name].unit = unit or None
            table[name].description = description
        else:
            table[name] = values
    return table


def catalogue_beam(table) -> tuple[float, float, float] | None:
    """The beam ``(maj, min, pa)`` (arcsec, arcsec, deg) stored in a catalogue's meta."""
    meta = {str(k).upper(): v for k, v in table.meta.items()}
    try:
        values = tuple(float(meta[k]) for k in BEAM_KEYS)
    except (KeyError, TypeError, ValueError):
        return None
    return values if all(math.isfinite(v) for v in values) else None


# --------------------------------------------------------------------------- writing
def _has_sky(table) -> bool:
    return "ra" in table.colnames and bool(np.isfinite(np.asarray(table["ra"], float)).any())


def _regions_text(table) -> str:
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from regions import EllipsePixelRegion, EllipseSkyRegion, PixCoord, Regions

    maj = np.asarray(table["maj"], float)
    mn = np.asarray(table["min"], float)
    pa = np.nan_to_num(np.asarray(table["pa"], float))
    # A source without a measured size is drawn as the beam, or as a small circle.
    beam = catalogue_beam(table)
    default = beam[0] if beam else 1.0
    maj = np.where(np.isfinite(maj), maj, default)
    mn = np.where(np.isfinite(mn), mn, maj)
    regs = []
    # Regions' angle is counter-clockwise from the longitude axis (+x for pixels): east of
    # north (position angle) is 90 deg more.
    if _has_sky(table):
        ra, dec = np.asarray(table["ra"], float), np.asarray(table["dec"], float)
        ok = np.flatnonzero(np.isfinite(ra) & np.isfinite(dec))
        # One SkyCoord and quantity arrays, indexed per region: building a SkyCoord per row
        # is what costs most on large catalogues.
        centres = SkyCoord(ra[ok] * u.deg, dec[ok] * u.deg)
        width, height = maj[ok] * u.arcsec, mn[ok] * u.arcsec
        angle = (pa[ok] + 90.0) * u.deg
        for k, i in enumerate(ok):
            regs.append(
                EllipseSkyRegion(
                    center=centres[k],
                    width=width[k],
                    height=height[k],
                    angle=angle[k],
                    meta={"text": str(table["source_id"][i])},
                )
            )
    else:
        # Pixel ellipses assume north up (east is -x); sizes in pixels via the pixel scale.
        scale = float(table.meta.get(PIXSCALE_KEY, 1.0) or 1.0)
        for i in range(len(table)):
            regs.append(
                EllipsePixelRegion(
                    center=PixCoord(float(table["x"][i]), float(table["y"][i])),
                    width=float(maj[i]) / scale,
                    height=float(mn[i]) / scale,
                    angle=float(pa[i] + 90.0) * u.deg,
                    meta={"text": str(table["source_id"][i])},
                )
            )
    return Regions(regs).serialize(format="ds9")


def _csv_text(table) -> str:
    # One header row and the rows, nothing before them: astropy's and pandas' readers take
    # it as it is. The meta (beam, pixel scale, image) lives in the FITS table.
    out = table.copy(copy_data=False)
    out.meta = {}
    buf = io.StringIO()
    out.write(buf, format="ascii.csv")
    return buf.getvalue()


def _fits_bytes(table) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # long meta keys become HIERARCH cards
        table.write(buf, format="fits")
    return buf.getvalue()


def write_catalogue(
    table,
    path_stem: str | os.PathLike,
    *,
    formats: Iterable[str] = _FORMATS,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write ``<stem>.fits``, ``<stem>.csv`` and ``<stem>.reg`` (DS9 ellipses), atomically.

    The FITS table keeps the meta (beam, pixel scale, image...); the CSV is plain (one header
    row, then the rows) for any CSV reader, without the meta.

    Args:
        table: a catalogue (from :func:`new_catalogue` or :func:`read_catalogue`).
        path_stem: the path without its suffix.
        formats: any of ``fits``, ``csv``, ``reg``.
        overwrite: replace existing files (otherwise an existing one is an error and nothing
            is written).

    Returns:
        ``{format: path}``.
    """
    from astrodet.utils import atomic_write_bytes, atomic_write_text

    formats = list(formats)
    unknown = sorted(set(formats) - set(_FORMATS))
    if unknown:
        raise ValueError(f"unknown catalogue formats {unknown}; choose from {list(_FORMATS)}")
    missing = [c for c in COLUMNS if c not in table.colnames]
    if missing:
        raise CatalogueError(f"not a catalogue: columns {missing} missing; it has {table.colnames}")
    stem = Path(path_stem)
    paths = {f: stem.with_name(stem.name + "." + f) for f in formats}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} exist; pass --overwrite to replace them")
    for fmt, path in paths.items():
        if fmt == "fits":
            atomic_write_bytes(path, _fits_bytes(table))
        elif fmt == "csv":
            atomic_write_text(path, _csv_text(table))
        else:
            atomic_write_text(path, _regions_text(table))
    return paths


# --------------------------------------------------------------------------- reading
def _read_any(path: Path) -> Table:
    """Any table file -> astropy Table (units and meta kept where the format has them)."""
    from astropy.table import Table

    name = path.name.lower()
    if name.endswith((".fits", ".fit", ".fits.gz", ".fts")):
        return Table.read(path, format="fits")
    if name.endswith((".vot", ".xml", ".votable")):
        return Table.read(path, format="votable")
    if name.endswith(".csv"):
        # plain CSV, or our older CSVs that opened with '# KEY = value' lines
        table = Table.read(path, format="ascii.csv", comment="#")
        meta = {}
        for line in table.meta.pop("comments", []):
            key, sep, value = line.partition("=")
            if sep:
                meta[key.strip()] = _number(value.strip())
        table.meta.update(meta)
        return table
    # PyBDSF ASCII lists (.srl, .gaul, ...): one reader, in astrodet.data.mgcls.
    from astrodet.data.mgcls import _read_table

    return Table(_read_table(path))


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def _schema(table) -> tuple[str, dict]:
    names = {c.lower() for c in table.colnames}
    if all(c in table.colnames for c in ("ra", "dec", "peak_flux", "total_flux", "maj")) or (
        all(c in table.colnames for c in ("x", "y", "peak_flux", "total_flux", "maj"))
    ):
        return "astrodet", _OURS
    if names & {"isl_rms", "isl_id", "e_maj", "gaus_id"}:
        return "pybdsf", _PYBDSF
    if "int_flux" in names or {"a", "b", "local_rms"} <= names:
        return "aegean", _AEGEAN
    if names & {"ra_deg_cont", "flux_int"}:
        return "selavy", _SELAVY
    if all(_column(table, _SURVEY[k][0]) is not None for k in ("ra", "dec")):
        return "survey", _SURVEY
    return "astrodet", _OURS


def _column(table, names: Sequence[str]):
    lower = {c.lower(): c for c in table.colnames}
    for n in names:
        if n.lower() in lower:
            return table[lower[n.lower()]]
    return None


def _values(col, target_unit: str, default_unit: str) -> np.ndarray:
    """Float values in ``target_unit``: the file's own unit when it has one that converts,
    else the format's default."""
    import astropy.units as u

    values = np.ma.filled(np.ma.asarray(col).astype(np.float64), np.nan)
    if not target_unit:
        return values
    for unit in (getattr(col, "unit", None), default_unit):
        if not unit:
            continue
        try:
            return values * u.Unit(unit).to(target_unit)
        except (ValueError, TypeError, u.UnitsError):
            continue
    return values


def _angle(path: Path, col, unit: str) -> np.ndarray:
    """Degrees of a text position column ("07 58 11.9" RA in hours, "+27:13:05" Dec)."""
    from astropy.coordinates import Angle

    text = np.char.strip(np.asarray(col, dtype=str))
    try:
        return Angle(text, unit=unit).deg
    except ValueError as e:
        raise CatalogueError(f"{path}: column {col.name!r} ({text[0]!r}...) not read: {e}") from e


def _integers(col) -> np.ndarray | None:
    """Integer ids of a column: its values, or codes of text ids (Selavy's
    ``SB9442_island_1``) in order of first appearance; None for an unusable column."""
    values = np.ma.filled(np.ma.asarray(col), -1) if np.ma.isMaskedArray(col) else np.asarray(col)
    try:
        return np.asarray(values, dtype=np.int64)
    except (TypeError, ValueError):
        pass
    text = np.char.strip(np.asarray(values, dtype=str))
    _, first, codes = np.unique(text, return_index=True, return_inverse=True)
    # codes by order of first appearance, not alphabetical ("island_10" after "island_9")
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[codes.ravel()]


def _survey_sizes(raw) -> tuple[dict, str]:
    """Our size columns of a published table: ``{ours: (their names, default unit)}`` and
    what ``maj``/``min`` hold (``convolved`` or ``deconvolved``; see :data:`_SURVEY_FITTED`)."""
    pybdsf_style = _column(raw, _PYBDSF_DECONVOLVED[0]) is not None
    fitted = _PYBDSF_STYLE if pybdsf_style else _SURVEY_FITTED
    deconvolved = _PYBDSF_DECONVOLVED if pybdsf_style else _SURVEY_DECONVOLVED
    out = {}
    if _column(raw, deconvolved[0]) is not None:
        out.update(
            dc_maj=(deconvolved[0], "arcsec"),
            dc_min=(deconvolved[1], "arcsec"),
            dc_pa=(deconvolved[2], "deg"),
        )
    if _column(raw, fitted[0]) is not None:
        out.update(maj=(fitted[0], "arcsec"), min=(fitted[1], "arcsec"), pa=(fitted[2], "deg"))
        return out, "convolved"
    if out:
        # deconvolved sizes only: in maj/min too, and the meta says which they are
        out.update(maj=out["dc_maj"], min=out["dc_min"], pa=out["dc_pa"])
        return out, "deconvolved"
    return out, "convolved"


def read_catalogue(path: str | os.PathLike) -> Table:
    """Read a source catalogue into our columns and units.

    Accepts our own FITS/CSV (plain, or older CSVs opening with ``# KEY = value`` lines),
    PyBDSF ``.srl``/``.gaul`` (FITS or ASCII; sizes in degrees, ``Isl_rms`` as the rms,
    ``Xposn``/``Yposn`` as x/y, ``Isl_id`` as ``island_id``, ``DC_Maj``... as ``dc_*``; a
    Gaussian list gets our own running ``source_id``, PyBDSF's numbers kept in ``gaus_id``
    and ``pybdsf_source_id``), Aegean tables (``int_flux``, ``a``/``b`` FWHM in arcsec,
    ``local_rms``, ``island``; FITS/CSV/VOTable), ASKAP Selavy lists (``ra_deg_cont``,
    ``flux_peak``/``flux_int`` in mJy, ``rms_image``, ``maj_axis`` fitted and
    ``maj_axis_deconv`` deconvolved) and published survey tables (``RAJ2000``/``DEJ2000`` in
    degrees or sexagesimal, ``Fpeak``/``Fint``, ``S1.4``, ``Rms``...; mJy unless the file
    says; sizes: FIRST's ``fMaj`` fitted and ``Maj`` deconvolved, NVSS's ``MajAxis``
    deconvolved). Units written in the file take precedence over each format's defaults.
    ``snr`` is peak/rms where not given (NaN without an rms), ``score`` 1 where not given.
    The meta's ``SIZES`` says whether ``maj``/``min`` are convolved (the beam included) or
    deconvolved (a table that gives no other).

    Raises:
        FileNotFoundError: no such file.
        CatalogueError: no position columns (ra/dec or x/y); the message lists the columns.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"catalogue {path} not found")
    try:
        raw = _read_any(path)
    except CatalogueError:
        raise
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad catalogue file
        raise CatalogueError(f"{path}: cannot be read as a table ({e})") from e
    kind, schema = _schema(raw)
    sizes = str(raw.meta.get(SIZES_KEY, "convolved")) if kind == "astrodet" else "convolved"
    if kind == "survey":
        extra, sizes = _survey_sizes(raw)
        schema = {**schema, **extra}
    gaussians = kind == "pybdsf" and _column(raw, ("Gaus_id",)) is not None
    if gaussians:
        # a Gaussian list: several rows per PyBDSF source, and Gaus_id restarts in each
        # island in some outputs; our source_id numbers the rows, PyBDSF's ids are kept
        schema = {
            **{k: v for k, v in schema.items() if k != "source_id"},
            "gaus_id": (("Gaus_id",), ""),
            "pybdsf_source_id": (("Source_id",), ""),
        }
    columns = {}
    for ours, (theirs, default_unit) in schema.items():
        col = _column(raw, theirs)
        if col is None:
            continue
        if ours == "source_id" or ours in _INTEGER_EXTRAS:
            ids = _integers(col)
            if ids is not None and (ours != "source_id" or np.issubdtype(col.dtype, np.number)):
                columns[ours] = ids
            continue
        unit = UNITS[ours] if ours in UNITS else EXTRA_COLUMNS[ours][0]
        try:
            columns[ours] = _values(col, unit, default_unit)
        except (TypeError, ValueError):
            if ours not in ("ra", "dec"):
                raise CatalogueError(f"{path}: column {col.name!r} is not numeric") from None
            # sexagesimal text
            columns[ours] = _angle(path, col, "hourangle" if ours == "ra" else "deg")
    has_sky = "ra" in columns and "dec" in columns
    has_pix = "x" in columns and "y" in columns
    if not (has_sky or has_pix):
        raise CatalogueError(
            f"{path}: no source positions (ra/dec or x/y; PyBDSF RA/DEC, Aegean ra/dec, "
            "Selavy ra_deg_cont/dec_deg_cont, survey RAJ2000/DEJ2000) "
            f"found; the table has columns {', '.join(raw.colnames)}"
        )
    if "snr" not in columns and "peak_flux" in columns and "rms" in columns:
        with np.errstate(divide="ignore", invalid="ignore"):
            columns["snr"] = columns["peak_flux"] / columns["rms"]
    if kind == "astrodet":
        for extra in ("snr", "score"):
            col = _column(raw, (extra,))
            if col is not None:
                columns[extra] = _values(col, "", "")
        # our own optional and extra columns travel on
        for name in raw.colnames:
            if name not in COLUMNS and name not in columns:
                columns[name] = (
                    _integers(raw[name])
                    if name in _INTEGER_EXTRAS
                    else np.ma.filled(np.ma.asarray(raw[name]), np.nan)
                    if raw[name].dtype.kind == "f"
                    else np.asarray(raw[name])
                )
    meta = {k: v for k, v in raw.meta.items() if k != "comments"}
    meta["CATFMT"] = kind
    meta[SIZES_KEY] = sizes
    table = new_catalogue(meta=meta, **columns)
    logger.info("%s: %d sources (%s format)", path, len(table), kind)
    if sizes == "deconvolved":
        logger.info("%s: the table gives deconvolved sizes only (SIZES = 'deconvolved')", path)
    return table


# --------------------------------------------------------------------------- COCO
def _pixel_catalog(table, wcs) -> dict[str, np.ndarray]:
    """Our catalogue -> the dict of :func:`astrodet.data.mgcls.ellipse_pixel_boxes` (sizes
    in degrees, positions by sky when there is a WCS and ra/dec)."""
    out = {
        "maj": np.asarray(table["maj"], float) / 3600.0,
        "min": np.asarray(table["min"], float) / 3600.0,
        "pa": np.nan_to_num(np.asarray(table["pa"], float)),
    }
    ra = np.asarray(table["ra"], float)
    if wcs is not None and np.isfinite(ra).all():
        out["ra"], out["dec"] = ra, np.asarray(table["dec"], float)
    else:
        out["x"], out["y"] = np.asarray(table["x"], float), np.asarray(table["y"], float)
    return out


def catalogue_to_boxes(table, *, wcs, display_height: int | None = None) -> np.ndarray:
    """COCO-convention XYXY boxes (pixel ``i`` spans ``[i, i + 1)``) of the sources' FWHM
    ellipses, projected through ``wcs`` as MGCLS labels are.

    Args:
        table: a catalogue.
        wcs: the image's celestial WCS (or its :class:`~astrodet.sky.field.Field`).
        display_height: flip vertically for an image of this height shown north up (row 0
            at the top, as MGCLS cutouts are written); None keeps FITS orientation.
    """
    from astrodet.data.mgcls import _to_display, ellipse_pixel_boxes

    from .field import Field

    if isinstance(wcs, Field):
        wcs = wcs.wcs
    if len(table) == 0:
        return np.zeros((0, 4))
    if wcs is None:
        raise ValueError("catalogue_to_boxes needs the image's celestial WCS")
    centres, boxes = ellipse_pixel_boxes(wcs, _pixel_catalog(table, wcs))
    if display_height is not None:
        return _to_display(centres, boxes, display_height)[1]
    return boxes + 0.5


def catalogue_to_coco(
    table, *, wcs, image_id: int = 0, category_id: int = 1, display_height: int | None = None
) -> list[dict]:
    """COCO annotations (XYWH boxes in the MGCLS convention) of a catalogue's sources.

    Args:
        table: a catalogue.
        wcs: the image's celestial WCS.
        image_id, category_id: written into each annotation.
        display_height: see :func:`catalogue_to_boxes`.
    """
    boxes = catalogue_to_boxes(table, wcs=wcs, display_height=display_height)
    anns = []
    for sid, (x0, y0, x1, y1) in zip(table["source_id"], boxes):
        w, h = float(x1 - x0), float(y1 - y0)
        anns.append(
            {
                "image_id": image_id,
                "category_id": category_id,
                "bbox": [float(x0), float(y0), w, h],
                "area": w * h,
                "iscrowd": 0,
                "source_id": int(sid),
            }
        )
    return anns


def coco_to_catalogue(
    results: Sequence[dict] | np.ndarray,
    *,
    wcs=None,
    pixel_scale: float | None = None,
    scores: Sequence[float] | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
    display_height: int | None = None,
    box_scale: float = 1.0,
    meta: dict | None = None,
) -> Table:
    """COCO predictions (or XYXY boxes) -> a catalogue, positions and sizes from the boxes.

    The box centre is the position; a box is taken as ``box_scale`` times the bounding box of
    the FWHM ellipse, so maj/min are its longer/shorter side over ``box_scale`` and pa is 0
    (tall box) or 90 (wide box), north up. Fluxes are left NaN: measure them with
    :func:`astrodet.sky.measure.measure_sources` for real values.

    Args:
        results: COCO results dicts (``bbox`` XYWH, ``score``) or an (N, 4) XYXY array, in
            COCO pixel convention (pixel ``i`` spans ``[i, i + 1)``).
        wcs: celestial WCS of the field for ra/dec (NaN without).
        pixel_scale: arcsec per pixel for maj/min (pixels when None).
        scores: scores of an array of boxes.
        offset: ``(x0, y0)`` of the tile in the field.
        display_height: the boxes are in a vertically flipped (north-up display) image of
            this height; None: FITS orientation.
        box_scale: size of the boxes relative to the FWHM ellipse's bounding box.
        meta: table metadata.
    """
    if isinstance(results, np.ndarray) or (len(results) and not isinstance(results[0], dict)):
        boxes = np.asarray(results, float).reshape(-1, 4)
        score = np.ones(len(boxes)) if scores is None else np.asarray(scores, float)
    else:
        xywh = np.asarray([r["bbox"] for r in results], float).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        score = np.asarray([r.get("score", 1.0) for r in results], float)
    if display_height is not None:
        boxes = boxes.copy()
        boxes[:, [1, 3]] = display_height - boxes[:, [3, 1]]
    x = (boxes[:, 0] + boxes[:, 2]) / 2.0 - 0.5 + offset[0]
    y = (boxes[:, 1] + boxes[:, 3]) / 2.0 - 0.5 + offset[1]
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    scale = (pixel_scale or 1.0) / box_scale
    ra = dec = None
    if wcs is not None and len(x):
        from .field import pixel_to_radec

        ra, dec = pixel_to_radec(wcs, x, y)
    meta = dict(meta or {})
    if pixel_scale:
        meta.setdefault(PIXSCALE_KEY, float(pixel_scale))
    return new_catalogue(
        meta=meta,
        ra=ra,
        dec=dec,
        x=x,
        y=y,
        maj=np.maximum(w, h) * scale,
        min=np.minimum(w, h) * scale,
        pa=np.where(h >= w, 0.0, 90.0),
        score=score,
    )
