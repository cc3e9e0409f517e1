"""MGCLS: full-field radio images + PyBDSF catalogues -> cutouts and COCO boxes.

Orientation. FITS pixel (1, 1) is the bottom-left corner, so numpy row 0 of a FITS array
is the *bottom* row of the sky image. Cutouts are written in display orientation: the
array is flipped vertically so row 0 is the top (north up for a standard RA/Dec image), as
PNG-trained detectors and every viewer expect. Boxes are computed in FITS pixel
coordinates and flipped the same way, then shifted to COCO's convention (pixel ``i``
covers ``[i, i + 1)``).

Boxes. Each catalogue source is an ellipse: FWHM major and minor axes and a position angle
measured from north through east (the astronomical convention). The ellipse outline is
sampled on the sky and projected through the image's celestial WCS, so any pixel
orientation, flip or projection is handled; the box is the bounding box of the projected
outline. Only compact sources are labelled: major axis at most ``max_major_beams`` times
the restoring beam (``BMAJ`` in the header).

Tiles. The displayed image is cut into non-overlapping ``size`` x ``size`` tiles from the
top-left corner; incomplete tiles at the right and bottom edges are left out. With a
``stride`` below ``size`` the tiles overlap, and the last one is flush with the far edge.
A tile whose fraction of NaN/inf pixels exceeds ``max_nan_fraction`` is skipped and
counted; in the others NaN/inf pixels are replaced by ``fill_value`` and counted. An image that gives no
tile at all (every pixel NaN, smaller than a tile, every tile too blank) is an error naming
the file. A source belongs to the tile holding its centre; its box is clipped to the tile.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from astrodet.data.io import fill_non_finite
from astrodet.structures import BoxMode
from astrodet.utils import atomic_write_json, prepare_output_dir

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_COLUMNS",
    "MGCLS_CLASSES",
    "ellipse_pixel_boxes",
    "prepare_mgcls",
    "read_fits_image",
    "read_protege_catalogue",
    "read_source_catalog",
]

MGCLS_CLASSES = ["source"]
#: Catalogue column names (PyBDSF source list). ``x``/``y`` name 0-based pixel columns
#: (e.g. ``Xposn``/``Yposn`` of a Gaussian list) used instead of RA/Dec when given.
DEFAULT_COLUMNS = {
    "ra": "RA",
    "dec": "DEC",
    "maj": "Maj",
    "min": "Min",
    "pa": "PA",
    "x": None,
    "y": None,
}
_ANGLE_UNITS = {"deg": 1.0, "arcmin": 1.0 / 60.0, "arcsec": 1.0 / 3600.0}


# --------------------------------------------------------------------------- catalogues
def _read_pybdsf_ascii(path: Path) -> dict[str, np.ndarray]:
    """PyBDSF ASCII lists (``.srl``, ``.gaul``): '#' header lines, the last of which
    holding as many names as a data row has fields names the columns."""
    header, rows = None, []
    with open(path) as f:
        for line in f:
            s = line.strip()
            if not s:
                continue
            if s.startswith("#"):
                names = s.lstrip("#").split()
                if names:
                    header = names
                continue
            rows.append(s.split())
    if header is None:
        raise ValueError(f"{path}: no '#' header line naming the columns")
    if not rows:
        raise ValueError(f"{path}: no catalogue rows")
    bad = [i for i, r in enumerate(rows) if len(r) != len(header)]
    if bad:
        raise ValueError(
            f"{path}: row {bad[0] + 1} has {len(rows[bad[0]])} fields but the header names "
            f"{len(header)} columns"
        )
    cols = list(zip(*rows))
    return {name: _as_array(values) for name, values in zip(header, cols)}


def _as_array(values):
    try:
        return np.asarray(values, dtype=np.float64)
    except ValueError:
        return np.asarray(values, dtype=str)


def _read_table(path: Path) -> dict[str, np.ndarray]:
    name = path.name.lower()
    if name.endswith((".fits", ".fit", ".fits.gz")):
        from astropy.table import Table

        t = Table.read(path, format="fits")
        return {c: np.asarray(t[c]) for c in t.colnames}
    if name.endswith(".csv"):
        with open(path, newline="") as f:
            reader = csv.reader(f)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise ValueError(f"{path}: empty CSV file") from None
            rows = [r for r in reader if r]
        if not rows:
            raise ValueError(f"{path}: no catalogue rows")
        return {h: _as_array(v) for h, v in zip(header, zip(*rows))}
    return _read_pybdsf_ascii(path)


def read_source_catalog(
    path: str | os.PathLike, *, columns: dict | None = None, size_unit: str = "deg"
) -> dict[str, np.ndarray]:
    """Read a PyBDSF-like source catalogue (FITS table, CSV or ``.srl``/``.gaul`` text).

    Args:
        path: the catalogue file.
        columns: overrides of :data:`DEFAULT_COLUMNS` (keys ra, dec, maj, min, pa, x, y).
        size_unit: unit of the major/minor axis columns: ``"deg"`` (PyBDSF), ``"arcmin"``
            or ``"arcsec"``.

    Returns:
        dict of float arrays: ``maj``, ``min`` (FWHM, degrees), ``pa`` (degrees east of
        north) and either ``ra``/``dec`` (degrees) or ``x``/``y`` (0-based FITS pixels).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"catalogue {path} not found")
    if size_unit not in _ANGLE_UNITS:
        raise ValueError(f"size_unit must be one of {list(_ANGLE_UNITS)}, got {size_unit!r}")
    unknown = set(columns or {}) - set(DEFAULT_COLUMNS)
    if unknown:
        raise ValueError(
            f"unknown column keys {sorted(unknown)}; valid keys: {list(DEFAULT_COLUMNS)}"
        )
    cols = {**DEFAULT_COLUMNS, **(columns or {})}
    table = _read_table(path)
    use_pixels = cols["x"] is not None and cols["y"] is not None
    wanted = ["maj", "min", "pa"] + (["x", "y"] if use_pixels else ["ra", "dec"])
    out = {}
    for key in wanted:
        name = cols[key]
        if name not in table:
            raise ValueError(
                f"{path}: column {name!r} (for {key}) not found; available columns: "
                f"{', '.join(table)}; pass columns={{{key!r}: ...}} (--columns {key}=NAME)"
            )
        try:
            out[key] = np.asarray(table[name], dtype=np.float64)
        except ValueError:
            raise ValueError(f"{path}: column {name!r} is not numeric") from None
    scale = _ANGLE_UNITS[size_unit]
    out["maj"] = out["maj"] * scale
    out["min"] = out["min"] * scale
    return out


# --------------------------------------------------------------------------- FITS + boxes
def read_fits_image(path: str | os.PathLike, *, hdu: int | str = 0):
    """Raw 2-D data (NaNs kept, FITS orientation: row 0 is the bottom) and the header.

    Degenerate leading axes (Stokes, frequency) are dropped.
    """
    from astropy.io import fits

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} not found")
    with fits.open(path, memmap=False) as hdul:
        data, header = hdul[hdu].data, hdul[hdu].header.copy()
    if data is None:
        raise ValueError(f"{path}: HDU {hdu!r} holds no image data")
    data = np.asarray(data, dtype=np.float32)
    while data.ndim > 2 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D image, got shape {data.shape}")
    return data, header


def ellipse_pixel_boxes(
    wcs, catalog: dict[str, np.ndarray], *, n_points: int = 72
) -> tuple[np.ndarray, np.ndarray]:
    """Project catalogue FWHM ellipses through a celestial WCS.

    Args:
        wcs: ``astropy.wcs.WCS`` with two celestial axes.
        catalog: from :func:`read_source_catalog`.
        n_points: samples on each ellipse outline.

    Returns:
        (centres N x 2 and boxes N x 4 XYXY), 0-based FITS pixel coordinates (pixel centres
        at integers, row 0 at the bottom).
    """
    from astrodet.sky.field import pixel_to_radec, radec_to_pixel

    if "ra" in catalog:
        ra, dec = catalog["ra"], catalog["dec"]
        cx, cy = radec_to_pixel(wcs, ra, dec)
    else:
        cx, cy = catalog["x"], catalog["y"]
        ra, dec = pixel_to_radec(wcs, cx, cy)
    t = np.linspace(0.0, 2.0 * np.pi, n_points, endpoint=False)[None, :]
    a = (catalog["maj"] / 2.0)[:, None]
    b = (catalog["min"] / 2.0)[:, None]
    pa = np.deg2rad(catalog["pa"])[:, None]
    # major axis along PA (from north through east); (east, north) offsets in degrees
    d_major, d_minor = a * np.cos(t), b * np.sin(t)
    east = d_major * np.sin(pa) + d_minor * np.cos(pa)
    north = d_major * np.cos(pa) - d_minor * np.sin(pa)
    cosd = np.cos(np.deg2rad(dec))[:, None]
    pr = ra[:, None] + east / np.maximum(cosd, 1e-6)
    pd = dec[:, None] + north
    px, py = radec_to_pixel(wcs, pr.ravel(), pd.ravel())
    px, py = px.reshape(pr.shape), py.reshape(pr.shape)
    boxes = np.stack([px.min(1), py.min(1), px.max(1), py.max(1)], axis=1)
    return np.stack([np.asarray(cx), np.asarray(cy)], axis=1), boxes


def _to_display(centres, boxes, height):
    """FITS 0-based pixel coordinates -> COCO coordinates of the vertically flipped image."""
    c = np.empty_like(centres)
    c[:, 0] = centres[:, 0] + 0.5
    c[:, 1] = height - (centres[:, 1] + 0.5)
    b = np.empty_like(boxes)
    b[:, 0] = boxes[:, 0] + 0.5
    b[:, 2] = boxes[:, 2] + 0.5
    b[:, 1] = height - (boxes[:, 3] + 0.5)
    b[:, 3] = height - (boxes[:, 1] + 0.5)
    return c, b


# --------------------------------------------------------------------------- preparation
def _as_list(x):
    if isinstance(x, str | os.PathLike):
        return [x]
    return list(x)


def prepare_mgcls(
    *,
    image: str | os.PathLike | Sequence[str | os.PathLike],
    catalog: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    size: int = 256,
    stride: int | None = None,
    max_nan_fraction: float = 0.5,
    fill_value: float = 0.0,
    columns: dict | None = None,
    size_unit: str = "deg",
    max_major_beams: float | None = 3.0,
    hdu: int | str = 0,
    overwrite: bool = False,
) -> dict:
    """Cut full-field images into tiles with COCO boxes for their compact sources.

    Writes ``out_dir/images/<field>_y<row>_x<col>.npy`` (float32 raw flux, display
    orientation), ``out_dir/annotations.json`` (COCO, one category ``source``) and
    ``out_dir/summary.json`` (the counts returned).

    Args:
        image: FITS image or a list of them.
        catalog: the matching catalogue(s), one per image.
        out_dir: output folder; an existing non-empty one is refused unless ``overwrite``.
        size: tile side in pixels.
        stride: pixels between tile corners (default ``size``: tiles side by side); a
            smaller stride gives overlapping tiles, the last one flush with the image's
            far edge, so every source is seen whole and at several places in a tile.
        max_nan_fraction: tiles with a larger fraction of NaN/inf pixels are skipped.
        fill_value: replaces NaN/inf pixels in the kept tiles.
        columns: catalogue column names (see :data:`DEFAULT_COLUMNS`).
        size_unit: unit of the catalogue's major/minor axes.
        max_major_beams: label only sources with major axis <= this many beam FWHMs
            (``BMAJ``); None labels every source.
        hdu: FITS HDU holding the image.
        overwrite: replace an existing output folder.

    Returns:
        counts: ``tiles``, ``boxes``, ``skipped_nan_tiles``, ``filled_pixels``,
        ``extended_sources`` (not labelled), ``sources_outside`` (off the image, in blanked
        pixels, or in no written tile), ``fields``.

    Raises:
        ValueError: bad settings, a bad catalogue, or an image that gives no tile (every
            pixel NaN, smaller than a tile, every tile over ``max_nan_fraction``), named;
            nothing is left in ``out_dir`` then.
    """
    images, catalogs = _as_list(image), _as_list(catalog)
    if len(images) != len(catalogs):
        raise ValueError(f"{len(images)} images but {len(catalogs)} catalogues; give one each")
    if size < 8:
        raise ValueError(f"size must be >= 8 pixels, got {size}")
    stride = size if stride is None else int(stride)
    if not 0 < stride <= size:
        raise ValueError(f"stride must be in [1, size={size}] pixels, got {stride}")
    if not 0.0 <= max_nan_fraction <= 1.0:
        raise ValueError(f"max_nan_fraction must be in [0, 1], got {max_nan_fraction}")
    for p in images + catalogs:
        if not Path(p).is_file():
            raise FileNotFoundError(f"{p} not found")
    fresh = not Path(out_dir).exists()
    out_dir = prepare_output_dir(out_dir, overwrite=overwrite)
    img_dir = out_dir / "images"
    try:
        img_dir.mkdir(exist_ok=True)
        summary = _write_tiles(
            images,
            catalogs,
            img_dir=img_dir,
            size=size,
            stride=stride,
            max_nan_fraction=max_nan_fraction,
            fill_value=fill_value,
            columns=columns,
            size_unit=size_unit,
            max_major_beams=max_major_beams,
            hdu=hdu,
        )
    except BaseException:
        # no half-written data set that looks like a real one
        shutil.rmtree(out_dir if fresh else img_dir, ignore_errors=True)
        raise
    atomic_write_json(out_dir / "summary.json", summary)
    logger.info("MGCLS tiles written to %s: %s", out_dir, summary)
    return summary


def _no_tile_reason(path, data: np.ndarray, size: int) -> str | None:
    """Why ``data`` cannot give a single tile (all NaN, smaller than a tile), else None."""
    h, w = data.shape
    if not np.isfinite(data).any():
        return f"{path}: every pixel is NaN or infinite, there is no data to cut into tiles"
    if h < size or w < size:
        return f"{path}: the image is {h}x{w} px, smaller than one {size} px tile (--size)"
    return None


def _starts(n: int, size: int, stride: int) -> list[int]:
    """Tile corners along an axis of ``n`` pixels: every ``stride`` pixels, plus one flush
    with the far edge when the tiles overlap."""
    starts = list(range(0, n - size + 1, stride))
    if stride < size and starts[-1] != n - size:
        starts.append(n - size)
    return starts


def _write_tiles(
    images,
    catalogs,
    *,
    img_dir: Path,
    size,
    stride,
    max_nan_fraction,
    fill_value,
    columns,
    size_unit,
    max_major_beams,
    hdu,
) -> dict:
    """The tiles, annotations.json and counts of :func:`prepare_mgcls`."""
    from astropy.wcs import WCS

    from astrodet.data.coco import save_coco_json

    counts = defaultdict(int)
    dicts = []
    for img_path, cat_path in zip(images, catalogs):
        data, header = read_fits_image(img_path, hdu=hdu)
        reason = _no_tile_reason(img_path, data, size)
        if reason:
            raise ValueError(reason)
        tiles_before, skipped_before = counts["tiles"], counts["skipped_nan_tiles"]
        cat = read_source_catalog(cat_path, columns=columns, size_unit=size_unit)
        wcs = WCS(header).celestial
        if wcs.naxis != 2:
            raise ValueError(f"{img_path}: no celestial WCS in the header")
        h, w = data.shape
        centres, boxes = ellipse_pixel_boxes(wcs, cat)
        centres, boxes = _to_display(centres, boxes, h)
        keep = np.ones(len(centres), bool)
        if max_major_beams is not None:
            bmaj = header.get("BMAJ")
            if bmaj is None:
                logger.warning("%s: no BMAJ in the header; every source is labelled", img_path)
            else:
                extended = cat["maj"] > max_major_beams * float(bmaj)
                counts["extended_sources"] += int(extended.sum())
                keep &= ~extended
        disp = data[::-1]  # display orientation: row 0 at the top
        bad = ~np.isfinite(disp)
        stem = Path(img_path).name.split(".")[0]
        used = np.zeros(len(centres), bool)
        for y0 in _starts(h, size, stride):
            for x0 in _starts(w, size, stride):
                tile = disp[y0 : y0 + size, x0 : x0 + size]
                tbad = bad[y0 : y0 + size, x0 : x0 + size]
                if tbad.all() or tbad.mean() > max_nan_fraction:
                    counts["skipped_nan_tiles"] += 1
                    continue
                cx, cy = centres[:, 0], centres[:, 1]
                inside = keep & (cx >= x0) & (cx < x0 + size) & (cy >= y0) & (cy < y0 + size)
                # a source sitting on blanked pixels is not in the image
                for i in np.flatnonzero(inside):
                    if tbad[int(cy[i]) - y0, int(cx[i]) - x0]:
                        inside[i] = False
                used |= inside
                name = f"{stem}_y{y0:05d}_x{x0:05d}.npy"
                tile, n_filled = fill_non_finite(
                    tile, fill_value=fill_value, source=f"{img_path} tile {name}"
                )
                counts["filled_pixels"] += n_filled
                np.save(img_dir / name, tile)
                anns = []
                for i in np.flatnonzero(inside):
                    bx0, by0, bx1, by1 = boxes[i] - [x0, y0, x0, y0]
                    bx0, by0 = max(bx0, 0.0), max(by0, 0.0)
                    bx1, by1 = min(bx1, float(size)), min(by1, float(size))
                    anns.append(
                        {
                            "bbox": [float(bx0), float(by0), float(bx1 - bx0), float(by1 - by0)],
                            "bbox_mode": BoxMode.XYWH_ABS,
                            "category_id": 0,
                        }
                    )
                counts["boxes"] += len(anns)
                counts["tiles"] += 1
                dicts.append(
                    {
                        "file_name": name,
                        "height": size,
                        "width": size,
                        "image_id": len(dicts),
                        "annotations": anns,
                    }
                )
        if counts["tiles"] == tiles_before:
            skipped = counts["skipped_nan_tiles"] - skipped_before
            raise ValueError(
                f"{img_path}: no tile written: all {skipped} tiles of {size} px have more than "
                f"{max_nan_fraction:.0%} NaN/inf pixels (--max-nan-fraction)"
            )
        counts["sources_outside"] += int((keep & ~used).sum())
        counts["fields"] += 1
    if counts["filled_pixels"]:
        logger.info("replaced %d NaN/inf pixels by %s", counts["filled_pixels"], fill_value)
    if counts["skipped_nan_tiles"]:
        logger.warning(
            "skipped %d tiles with more than %.0f%% NaN pixels",
            counts["skipped_nan_tiles"],
            100 * max_nan_fraction,
        )
    summary = {
        k: int(counts[k])
        for k in (
            "fields",
            "tiles",
            "boxes",
            "skipped_nan_tiles",
            "filled_pixels",
            "extended_sources",
            "sources_outside",
        )
    }
    save_coco_json(img_dir.parent / "annotations.json", dicts, MGCLS_CLASSES)
    return summary


# --------------------------------------------------------------------------- protege
_PROTEGE_COLUMNS = ("objid", "x", "y", "original_image", "obj_size_pixels")


def read_protege_catalogue(path: str | os.PathLike) -> dict[str, list[dict]]:
    """Boxes of the extended MGCLS sources of the Protege catalogue, per original image.

    Each box is the catalogue's square (edge ``obj_size_pixels``) around its ``x, y``, in the
    catalogue's pixel frame of the original full-field image.

    Args:
        path: ``protege_catalogue.csv``.

    Returns:
        ``{original_image: [{"bbox" [x, y, w, h], "bbox_mode", "category_id" 0, "objid",
        "ra", "dec", "peak_flux"}, ...]}``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"catalogue {path} not found")
    out: dict[str, list[dict]] = defaultdict(list)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _PROTEGE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}")
        for line, row in enumerate(reader, start=2):
            try:
                x, y, s = float(row["x"]), float(row["y"]), float(row["obj_size_pixels"])
            except ValueError:
                raise ValueError(f"{path}, line {line}: non-numeric x, y or size") from None
            out[row["original_image"]].append(
                {
                    "bbox": [x - s / 2.0, y - s / 2.0, s, s],
                    "bbox_mode": BoxMode.XYWH_ABS,
                    "category_id": 0,
                    "objid": row["objid"],
                    "ra": float(row.get("ra", "nan") or "nan"),
                    "dec": float(row.get("dec", "nan") or "nan"),
                    "peak_flux": float(row.get("peak_flux", "nan") or "nan"),
                }
            )
    return dict(out)
