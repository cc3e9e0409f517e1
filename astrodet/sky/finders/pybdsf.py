"""PyBDSF as a source finder: ``bdsf.process_image`` on a FITS field, its source list (srl)
read into our catalogue columns.

PyBDSF writes a log file beside its input image and needs the restoring beam and an
observing frequency from the header. On a cube it reads the plane :class:`~astrodet.sky.field.Field`
reads (the first channel, the Stokes-I plane), not the average of every channel it would take
by default: the catalogue's header says which (``CHANNEL``, ``NCHAN``, ``PLANE``). The image is therefore linked into a temporary folder
(the user's folder stays untouched, read-only ones work), and the beam (``--beam``) and a
frequency are passed as arguments when the header lacks them. The frequency only labels the
plane: a single-plane Stokes-I catalogue does not depend on it.
"""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .base import register_finder

logger = logging.getLogger(__name__)

__all__ = ["PyBDSFFinder", "header_has_frequency", "run_pybdsf"]

#: Frequency (Hz) given to PyBDSF when the header names none; it only labels the plane.
DEFAULT_FREQUENCY = 1.4e9


def header_has_frequency(header) -> bool:
    """Whether PyBDSF finds an observing frequency in ``header``: it reads a FREQ axis only
    (not ``RESTFRQ``)."""
    for i in range(1, int(header.get("NAXIS", 0)) + 1):
        if str(header.get(f"CTYPE{i}", "")).upper().startswith("FREQ"):
            return True
    return False


def _beam_triple(beam) -> tuple[float, float, float] | None:
    """(maj, min, pa) in arcsec, arcsec, deg from a Beam-like object or a sequence."""
    if beam is None:
        return None
    if hasattr(beam, "maj"):
        return float(beam.maj), float(beam.min), float(beam.pa)
    values = [float(v) for v in beam]
    if len(values) != 3:
        raise ValueError(f"beam takes MAJ MIN PA (arcsec, arcsec, deg), got {values}")
    return values[0], values[1], values[2]


def cdelt_header(header):
    """``header`` with a CD matrix rewritten as CDELT and PC (the same WCS), or None when it
    has no CD matrix: PyBDSF reads the pixel size from ``CDELTi`` and fails without it."""
    import math
    import re

    cd = {
        tuple(map(int, m.groups())): header[k]
        for k in header
        if (m := re.match(r"CD(\d+)_(\d+)$", k))
    }
    if not cd:
        return None
    out = header.copy()
    for i in sorted({i for i, _ in cd}):
        row = {j: v for (ii, j), v in cd.items() if ii == i}
        scale = math.hypot(*row.values()) or 1.0
        # the sign of the diagonal term: east-left images keep a negative CDELT1
        scale = math.copysign(scale, row.get(i, 1.0) or 1.0)
        out[f"CDELT{i}"] = scale
        for j, v in row.items():
            out[f"PC{i}_{j}"] = v / scale
    for i, j in cd:
        out.remove(f"CD{i}_{j}")
    return out


def run_pybdsf(
    image: str | os.PathLike,
    *,
    out_file: str | os.PathLike,
    beam: Sequence[float] | object | None = None,
    frequency: float | None = None,
    thresh_isl: float = 3.0,
    thresh_pix: float = 5.0,
    ncores: int = 1,
    **options,
) -> dict:
    """Run PyBDSF on a FITS image and write its source list as a FITS table.

    Args:
        image: the FITS image (2-4 axes): PyBDSF reads the plane ``Field`` reads, the first
            channel and the Stokes-I plane (not the channel average), and the source list's
            header says which (``CHANNEL``, ``NCHAN``, ``PLANE``); ``collapse_mode`` and
            ``collapse_ch0`` in ``options`` choose otherwise.
        out_file: the source list (``.fits``), written atomically; an image without sources
            gives an empty table with PyBDSF's main columns.
        beam: ``(maj, min, pa)`` arcsec, arcsec, deg, or a ``Beam``; required when the
            header has no ``BMAJ``, otherwise it overrides the header.
        frequency: Hz, passed when the header has none (default 1.4 GHz, a label only).
        thresh_isl, thresh_pix: island and peak thresholds in units of the local rms.
        ncores: PyBDSF worker processes for the Gaussian fits.
        **options: more ``bdsf.process_image`` options (``rms_box``, ``adaptive_rms_box``...).

    Returns:
        ``{"n_sources", "seconds"}`` (the seconds of ``process_image`` and writing).

    Raises:
        FileNotFoundError: no such image.
        ValueError: no beam in the header and none given (naming the file and ``--beam``),
            or PyBDSF failed on the image (its message).
    """
    import bdsf
    from astropy.io import fits

    image = Path(image)
    if not image.is_file():
        raise FileNotFoundError(f"FITS image {image} not found")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # survey headers often hold non-standard cards
        header = fits.getheader(image)
    kwargs = dict(thresh_isl=thresh_isl, thresh_pix=thresh_pix, ncores=ncores, quiet=True)
    triple = _beam_triple(beam)
    if triple is not None:
        kwargs["beam"] = (triple[0] / 3600.0, triple[1] / 3600.0, triple[2])
    elif "BMAJ" not in header:
        raise ValueError(
            f"{image}: no beam in the header (BMAJ/BMIN/BPA); give it with "
            "--beam MAJ MIN PA (arcsec, arcsec, deg)"
        )
    if frequency is not None or not header_has_frequency(header):
        kwargs["frequency"] = float(frequency or DEFAULT_FREQUENCY)
    plane = _plane(image, header, triple)
    if plane["nchan"] > 1:
        # PyBDSF averages every channel by default; Field reads one
        kwargs.update(collapse_mode="single", collapse_ch0=plane["channel"])
    kwargs.update(options)
    if kwargs.get("collapse_mode", "average") != "single" and plane["nchan"] > 1:
        plane["channel"] = "average"  # the caller asked for PyBDSF's average
    elif "collapse_ch0" in kwargs:
        plane["channel"] = int(kwargs["collapse_ch0"])
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pybdsf_") as tmp:
        local = Path(tmp) / image.name
        rewritten = cdelt_header(header)
        if rewritten is not None or plane["stokes_axis"] is not None:
            # a copy PyBDSF can read (pixels streamed from the memory map): a CDELT header,
            # and only the Stokes-I plane where it is not the first (PyBDSF takes the first)
            out_header = header.copy() if rewritten is None else rewritten
            with fits.open(image, memmap=True, do_not_scale_image_data=True) as hdul:
                data = hdul[0].data
                if plane["stokes_axis"] is not None:
                    axis, index = plane["stokes_axis"], plane["stokes_index"]
                    cut = [slice(None)] * data.ndim
                    cut[data.ndim - axis] = slice(index, index + 1)
                    data = data[tuple(cut)]
                    out_header[f"CRPIX{axis}"] = float(header.get(f"CRPIX{axis}", 1.0)) - index
                fits.PrimaryHDU(data, out_header).writeto(local)
        else:
            try:
                local.symlink_to(image.resolve())
            except OSError:
                shutil.copyfile(image, local)
        # PyBDSF prints progress and warnings even when quiet: keep the caller's output clean
        sink = io.StringIO()
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(sink),
            _quiet_pybdsf_log(),
            _collect_own_objects(),
        ):
            warnings.simplefilter("ignore")
            try:
                img = bdsf.process_image(str(local), **kwargs)
            except Exception as e:  # PyBDSF raises RuntimeError and its own types
                raise ValueError(f"{image}: PyBDSF failed: {e}") from e
            n = int(getattr(img, "nsrc", 0) or 0)
            tmp_out = Path(tmp) / "catalogue.srl.fits"
            if n:
                img.write_catalog(
                    outfile=str(tmp_out), format="fits", catalog_type="srl", clobber=True
                )
                _positions_to_icrs(tmp_out, header)
            else:
                _empty_srl().write(tmp_out, format="fits", overwrite=True)
        _write_plane(tmp_out, plane)
        _move(tmp_out, out_file)
    seconds = time.perf_counter() - start
    logger.info("PyBDSF: %d sources in %s (%.2f s)", n, image, seconds)
    return {"n_sources": n, "seconds": seconds}


def _plane(image: Path, header, beam) -> dict:
    """The plane of ``image`` that :class:`~astrodet.sky.field.Field` reads: ``channel``
    and ``nchan`` along the frequency (non-Stokes) axis, and, where Stokes I is not the
    first plane of a STOKES axis, that axis (FITS numbering) and I's index."""
    from astrodet.sky.field import open_field

    out = {"channel": 0, "nchan": 1, "stokes_axis": None, "stokes_index": 0, "text": "2-D"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a field without WCS warns; PyBDSF will say more
        with open_field(image, beam=beam) as field:
            plane = field.plane  # its index along each extra axis, in numpy order
    naxis = int(header.get("NAXIS", 2))
    shape = [int(header.get(f"NAXIS{naxis - k}", 1)) for k in range(len(plane))]
    parts = []
    for k, index in enumerate(plane):
        axis = naxis - k  # numpy axes are FITS axes reversed
        ctype = str(header.get(f"CTYPE{axis}", "")).upper() or "?"
        parts.append(f"{ctype.split('-')[0]} {index} of {shape[k]}")
        if ctype.startswith("STOKES"):
            if index:
                out.update(stokes_axis=axis, stokes_index=index)
        elif shape[k] > 1 or out["nchan"] == 1:
            # PyBDSF takes the non-Stokes axis as its channels
            out.update(channel=int(index), nchan=int(shape[k]))
    if parts:
        out["text"] = ", ".join(parts)
    return out


def _write_plane(srl: Path, plane: dict) -> None:
    """Which plane the source list comes from, into its header (``CHANNEL``: the 0-based
    channel, or ``average``; ``NCHAN``; ``PLANE``: every extra axis and its plane)."""
    from astropy.table import Table

    table = Table.read(srl)
    table.meta["CHANNEL"] = plane["channel"]
    table.meta["NCHAN"] = plane["nchan"]
    table.meta["PLANE"] = plane["text"]
    table.write(srl, format="fits", overwrite=True)


def _positions_to_icrs(srl: Path, header) -> None:
    """PyBDSF writes the image's own world coordinates as RA/DEC and position angles from
    the image's own north: for an image in another frame (Galactic, B1950) they are turned
    into ICRS and east of ICRS north in place, as every catalogue here is."""
    from astropy.coordinates import SkyCoord
    from astropy.table import Table
    from astropy.wcs import WCS

    from astrodet.sky.field import native_to_radec, non_equatorial_frame

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wcs = WCS(header)
    frame = non_equatorial_frame(wcs.celestial) if wcs.has_celestial else None
    if frame is None:
        return
    table = Table.read(srl)
    lon, lat = np.asarray(table["RA"], float), np.asarray(table["DEC"], float)
    here = SkyCoord(lon, lat, unit="deg", frame=frame).icrs
    # position angles turn by the angle between the frame's north and ICRS north
    north = SkyCoord(lon, np.minimum(lat + 1e-3, 90.0), unit="deg", frame=frame).icrs
    turn = here.position_angle(north).deg
    for pa in ("PA", "DC_PA"):
        if pa in table.colnames:
            table[pa][:] = (np.asarray(table[pa], float) + turn) % 180.0
    # in place: the columns keep their units
    table["RA"][:], table["DEC"][:] = here.ra.deg, here.dec.deg
    if "RA_max" in table.colnames and "DEC_max" in table.colnames:
        ra, dec = native_to_radec(wcs.celestial, table["RA_max"], table["DEC_max"])
        table["RA_max"][:], table["DEC_max"][:] = ra, dec
    table.write(srl, format="fits", overwrite=True)
    logger.info("PyBDSF's %s positions turned into ICRS", frame.name)


@contextlib.contextmanager
def _collect_own_objects():
    """Freeze the caller's objects while PyBDSF runs.

    PyBDSF calls ``gc.collect()`` after each of its steps (16 per image); each full collection
    walks every object in the process, so a caller holding torch, a model and tables paid 2-4 s
    per image for them (0.2 s of PyBDSF's own work on a 300 px field). Frozen objects are
    skipped by the collector and unfrozen afterwards; a caller that froze its own is left as
    it is.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def _quiet_pybdsf_log():
    """PyBDSF logs every step at INFO through ``logging`` and sets its logger's level itself
    when a run starts: its records are kept from the caller's handlers, and PyBDSF's own
    console handler lets only its warnings pass."""
    log = logging.getLogger("PyBDSF")
    propagate = log.propagate
    log.propagate = False
    try:
        yield
    finally:
        log.propagate = propagate


def _move(src: Path, dst: Path) -> None:
    """Copy to a temporary name beside ``dst``, then rename (atomic on ``dst``'s disk)."""
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _empty_srl():
    """An empty PyBDSF source list (the columns our readers use, PyBDSF's units)."""
    from astropy.table import Table

    names = ("Source_id", "RA", "DEC", "Total_flux", "Peak_flux", "Maj", "Min", "PA", "Isl_rms")
    units = (None, "deg", "deg", "Jy", "Jy/beam", "deg", "deg", "deg", "Jy/beam")
    t = Table(names=names, dtype=[int] + [float] * (len(names) - 1))
    for name, unit in zip(names, units):
        t[name].unit = unit
    return t


@register_finder("pybdsf")
class PyBDSFFinder:
    """PyBDSF behind the finder interface: ``find(field)`` -> a catalogue in our columns.

    Args:
        thresh_isl, thresh_pix: PyBDSF's island and peak thresholds (rms units).
        frequency: Hz for headers without one (a label only).
        ncores: PyBDSF worker processes.
        **options: more ``bdsf.process_image`` options.
    """

    name = "pybdsf"

    def __init__(
        self,
        *,
        thresh_isl: float = 3.0,
        thresh_pix: float = 5.0,
        frequency: float | None = None,
        ncores: int = 1,
        **options,
    ):
        self.options = dict(
            thresh_isl=thresh_isl,
            thresh_pix=thresh_pix,
            frequency=frequency,
            ncores=ncores,
            **options,
        )
        self.last_seconds: float | None = None

    def find(self, field):
        """Run PyBDSF on ``field.path`` with ``field.beam``; score 1 for every source; fluxes
        in Jy/beam and Jy whatever the image's ``BUNIT`` (``field.flux_scale``)."""
        from astrodet.sky.catalogue import read_catalogue

        with tempfile.TemporaryDirectory(prefix="pybdsf_cat_") as tmp:
            out = Path(tmp) / "srl.fits"
            info = run_pybdsf(field.path, out_file=out, beam=field.beam, **self.options)
            table = read_catalogue(out)
        self.last_seconds = info["seconds"]
        scale = getattr(field, "flux_scale", 1.0)
        if scale != 1.0:  # PyBDSF takes the pixels for Jy/beam whatever BUNIT says
            for name in ("peak_flux", "total_flux", "rms"):
                if name in table.colnames:
                    table[name] = np.asarray(table[name], float) * scale
        if field.wcs is not None and len(table) and not np.isfinite(table["x"]).all():
            # a source list holds sky positions: pixel positions in the field's own grid
            table["x"], table["y"] = field.world_to_pixel(table["ra"], table["dec"])
        table.meta["FINDER"] = self.name
        table.meta["SECONDS"] = round(info["seconds"], 3)
        if "score" in table.colnames:
            table["score"] = 1.0
        return table
