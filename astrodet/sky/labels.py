"""Training labels from PyBDSF: survey fields -> PyBDSF source lists (cached) -> COCO boxes.

MGCLS boxes in the paper are PyBDSF catalogues turned into boxes, so a detector trained on
them learns to agree with PyBDSF. :func:`pybdsf_catalogue` runs PyBDSF once per image and
option set and keeps the source list under ``$ASTRODET_CACHE/pybdsf`` (default
``datasets_root()/cache/pybdsf``), keyed by the file's content, PyBDSF's version and every
PyBDSF option, so a second run is a lookup, wherever the file has moved. :func:`label_fields` feeds those
lists through :func:`astrodet.data.mgcls.prepare_mgcls` (the paper's labelling: FWHM
ellipses projected through the WCS, tiles in display orientation).

The registered set ``first_pybdsf_{train,test}`` is made this way from real FIRST images of
the shared real data (``$ASTRODET_REAL_DATA``): the 20 MiraBest 300 px fields and the 219
``rgz_first`` 100 px cutouts (written as FITS with a TAN WCS centred on the RGZ position),
with FIRST's beam at each image's declination (:func:`astrodet.sky.field.first_beam`: 5.4"
circular in the north, elongated north-south south of Dec +4 deg 33'). The split is by sky footprint: images that overlap on the
sky are one group and stay on the same side; groups are drawn with a fixed seed.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from astrodet.data.catalog import DatasetCatalog, MetadataCatalog
from astrodet.data.coco import load_coco_json
from astrodet.data.mgcls import MGCLS_CLASSES, prepare_mgcls
from astrodet.sky.finders.pybdsf import run_pybdsf
from astrodet.utils import atomic_write_json, datasets_root, real_data_root

logger = logging.getLogger(__name__)

__all__ = [
    "FIRST_BEAM",
    "FIRST_PIXEL_SCALE",
    "build_first_pybdsf",
    "label_fields",
    "load_first_pybdsf_coco",
    "pybdsf_cache_dir",
    "pybdsf_catalogue",
]

#: FIRST's restoring beam north of Dec +4 deg 33' (arcsec, arcsec, deg), the beam the
#: detector's tiles are scaled to; each image's own beam is its declination's
#: (:func:`astrodet.sky.field.first_beam`). FIRST's pixel scale (arcsec).
FIRST_BEAM = (5.4, 5.4, 0.0)
FIRST_PIXEL_SCALE = 1.8
#: Tile side of the labelled set: 48 px (86", 16 beams), enlarged 4x for the model so that
#: one 16 px ViT patch covers 4 px (1.3 beams) and components a beam or two apart fall in
#: different tokens.
FIRST_TILE = 48
#: Training tiles overlap by half: each source is seen whole, at several places in a tile.
FIRST_TRAIN_STRIDE = FIRST_TILE // 2
FIRST_FREQUENCY = 1.4e9


# ------------------------------------------------------------------------------ cache
def pybdsf_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$ASTRODET_CACHE/pybdsf``, else ``datasets_root()/cache/pybdsf``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("ASTRODET_CACHE")
    return (Path(env).expanduser() if env else datasets_root() / "cache") / "pybdsf"


def _is_cube(image: Path) -> bool:
    """Whether ``image`` has more than one plane (an extra axis longer than 1)."""
    from astropy.io import fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header = fits.getheader(image)
    return any(
        int(header.get(f"NAXIS{i}", 1)) > 1 for i in range(3, int(header.get("NAXIS", 2)) + 1)
    )


def _cache_key(image: Path, options: dict) -> str:
    """The file's content (not its path or date: a copied or moved field is found again, an
    edited one is not), PyBDSF's version and the options."""
    import bdsf

    content = hashlib.sha1()
    with open(image, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            content.update(block)
    ident = {
        "content": content.hexdigest(),
        "bdsf": getattr(bdsf, "__version__", "?"),
        "options": options,
        # source lists made before run_pybdsf turned every frame into ICRS are not reused
        "positions": "icrs",
    }
    if _is_cube(image):
        # nor those of cubes made from PyBDSF's channel average (it now reads Field's plane)
        ident["plane"] = "field"
    blob = json.dumps(ident, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:20]


def pybdsf_catalogue(
    image: str | os.PathLike,
    *,
    beam: Sequence[float] | None = None,
    cache_dir: str | os.PathLike | None = None,
    **options,
) -> Path:
    """PyBDSF's source list (FITS) of ``image``: from the cache, or run and cached.

    Args:
        image: FITS image.
        beam: ``(maj, min, pa)`` arcsec, arcsec, deg when the header has none.
        cache_dir: see :func:`pybdsf_cache_dir`.
        **options: passed to :func:`astrodet.sky.finders.pybdsf.run_pybdsf`
            (``thresh_isl``, ``thresh_pix``, ``frequency``...); part of the key.

    Returns:
        the cached ``<stem>.<key>.srl.fits``.
    """
    image = Path(image)
    if not image.is_file():
        raise FileNotFoundError(f"FITS image {image} not found")
    if beam is None:
        beam = _header_or_first_beam(image)
    beam = None if beam is None else [float(v) for v in beam]
    key = _cache_key(image, {"beam": beam, **options})
    out = pybdsf_cache_dir(cache_dir) / f"{image.stem}.{key}.srl.fits"
    if out.is_file():
        logger.debug("PyBDSF cache hit: %s", out)
        return out
    run_pybdsf(image, out_file=out, beam=beam, **options)
    return out


def _header_or_first_beam(image: Path) -> tuple[float, float, float] | None:
    """The beam to give PyBDSF for a header without ``BMAJ`` (an AIPS HISTORY record, or a
    FIRST image's declination beam); None when the header has ``BMAJ`` (PyBDSF reads it)
    or says nothing."""
    from astropy.io import fits

    from astrodet.sky.field import beam_from_header

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # survey headers often hold non-standard cards
        header = fits.getheader(image)
    if "BMAJ" in header:
        return None
    beam = beam_from_header(header, path=image)
    return None if beam is None else (beam.maj, beam.min, beam.pa)


def label_fields(
    images: Sequence[str | os.PathLike],
    *,
    out_dir: str | os.PathLike,
    beam: Sequence[float] | None = None,
    cache_dir: str | os.PathLike | None = None,
    pybdsf_options: dict | None = None,
    progress: bool = True,
    **prepare_kwargs,
) -> dict:
    """PyBDSF labels for survey images: run (or reuse) PyBDSF on each, then cut tiles with
    COCO boxes through :func:`astrodet.data.mgcls.prepare_mgcls`.

    Args:
        images: FITS images.
        out_dir: the COCO folder (``annotations.json``, ``images/``, ``summary.json``).
        beam: for headers without ``BMAJ`` (arcsec, arcsec, deg).
        cache_dir: PyBDSF cache (see :func:`pybdsf_cache_dir`).
        pybdsf_options: passed to PyBDSF (``thresh_isl``, ``thresh_pix``...).
        progress: a progress bar over the images.
        **prepare_kwargs: passed to ``prepare_mgcls`` (``size``, ``max_major_beams``,
            ``overwrite``...).

    Returns:
        ``prepare_mgcls``'s counts.
    """
    from tqdm import tqdm

    images = [Path(p) for p in images]
    catalogues = [
        pybdsf_catalogue(p, beam=beam, cache_dir=cache_dir, **(pybdsf_options or {}))
        for p in tqdm(images, desc="PyBDSF", unit="image", disable=not progress)
    ]
    return prepare_mgcls(image=images, catalog=catalogues, out_dir=out_dir, **prepare_kwargs)


# ------------------------------------------------------------------------------ FIRST set
def _safe_name(name: str) -> str:
    """A file stem without dots (``prepare_mgcls`` names tiles by the stem before a dot)."""
    return name.replace(".fits", "").replace(".", "p").replace("+", "n").replace("-", "m")


def _first_header(wcs_header, shape) -> object:
    """A FIRST image's header: its WCS and FIRST's beam at the image centre's declination."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from astrodet.sky.field import first_beam, pixel_to_radec

    h = fits.Header()
    h["NAXIS"], h["NAXIS1"], h["NAXIS2"] = 2, shape[1], shape[0]
    h.update(wcs_header)
    _, dec = pixel_to_radec(WCS(h).celestial, (shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0)
    beam = first_beam(float(dec))
    h["BMAJ"] = beam.maj / 3600.0
    h["BMIN"] = beam.min / 3600.0
    h["BPA"] = beam.pa
    h["RESTFRQ"] = FIRST_FREQUENCY
    h["BUNIT"] = "JY/BEAM"
    h["TELESCOP"] = "VLA"
    h["OBJECT"] = "FIRST"
    return h


def first_items(real: Path) -> list[dict]:
    """The real FIRST images: ``{"name", "ra", "dec", "size", "kind", ...}``."""
    from astropy.io import fits
    from astropy.wcs import WCS

    items = []
    folder = real / "mirabest" / "FITS_subset"
    for path in sorted(folder.glob("*.fits")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SkyView headers hold non-ASCII commentary cards
            header = fits.getheader(path)
            wcs = WCS(header).celestial
        ny, nx = int(header["NAXIS2"]), int(header["NAXIS1"])
        ra, dec = wcs.all_pix2world((nx - 1) / 2.0, (ny - 1) / 2.0, 0)
        items.append(
            {
                "name": "mb_" + _safe_name(path.name),
                "kind": "mirabest",
                "path": str(path),
                "ra": float(ra),
                "dec": float(dec),
                "size": max(nx, ny),
            }
        )
    labels = real / "rgz_first" / "labels.csv"
    with open(labels, newline="") as f:
        rows = list(csv.DictReader(f))
    for i, row in enumerate(rows):
        items.append(
            {
                "name": f"rgz_{i:03d}_{_safe_name(row['rgz_first_id'])}",
                "kind": "rgz_first",
                "index": i,
                "ra": float(row["rgz_ra"]),
                "dec": float(row["rgz_dec"]),
                "size": 100,
            }
        )
    return items


def _groups(items: list[dict]) -> list[list[int]]:
    """Items whose footprints overlap on the sky, joined transitively (union-find)."""
    from astropy.coordinates import SkyCoord

    coords = SkyCoord([it["ra"] for it in items], [it["dec"] for it in items], unit="deg")
    half = np.array([it["size"] for it in items], float) * FIRST_PIXEL_SCALE / 2.0
    parent = list(range(len(items)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # squares of half-sides a and b overlap only if centres are closer than (a + b) * sqrt(2)
    radius = 2.0 * half.max() * np.sqrt(2.0)
    i_idx, j_idx, sep, _ = coords.search_around_sky(coords, radius * _arcsec())
    for i, j, s in zip(i_idx, j_idx, sep.arcsec):
        if i < j and s < (half[i] + half[j]) * np.sqrt(2.0):
            parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(items)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values())


def _arcsec():
    import astropy.units as u

    return u.arcsec


def first_split(items: list[dict], *, test_fraction: float = 0.25, seed: int = 0) -> dict:
    """``{name: "train" | "test"}``: sky-overlap groups drawn with a fixed seed; the 300 px
    MiraBest fields and the 100 px cutouts are each split at ``test_fraction``."""
    rng = np.random.default_rng(seed)
    split = {}
    groups = _groups(items)
    for kind in ("mirabest", "rgz_first"):
        mine = [g for g in groups if items[g[0]]["kind"] == kind]
        order = rng.permutation(len(mine))
        total = sum(len(g) for g in mine)
        n_test = 0
        for k in order:
            side = "test" if n_test < test_fraction * total else "train"
            n_test += len(mine[k]) if side == "test" else 0
            for i in mine[k]:
                split[items[i]["name"]] = side
    return split


def _write_fits(item: dict, path: Path, cutouts) -> None:
    from astropy.io import fits
    from astropy.wcs import WCS

    if item["kind"] == "mirabest":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(item["path"]) as hdul:
                data = np.asarray(hdul[0].data, np.float32)
                wcs = WCS(hdul[0].header).celestial
        while data.ndim > 2:
            data = data[0]
        wcs_header = wcs.to_header()
    else:
        data = np.asarray(cutouts[item["index"]], np.float32)
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [item["ra"], item["dec"]]
        # the cutouts are centred on the RGZ position: pixel 49.5 (0-based) of 100
        wcs.wcs.crpix = [(data.shape[1] + 1) / 2.0, (data.shape[0] + 1) / 2.0]
        wcs.wcs.cdelt = [-FIRST_PIXEL_SCALE / 3600.0, FIRST_PIXEL_SCALE / 3600.0]
        wcs_header = wcs.to_header()
    hdu = fits.PrimaryHDU(data, header=_first_header(wcs_header, data.shape))
    tmp = path.with_name(f".{path.name}.tmp")
    hdu.writeto(tmp, overwrite=True)
    os.replace(tmp, path)


def first_pybdsf_root() -> Path:
    """Default place of the FIRST PyBDSF set: ``datasets_root()/first_pybdsf``."""
    return datasets_root() / "first_pybdsf"


def build_first_pybdsf(
    root: str | os.PathLike | None = None,
    *,
    real_data: str | os.PathLike | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
    size: int = FIRST_TILE,
    train_stride: int | None = FIRST_TRAIN_STRIDE,
    cache_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Make the FIRST PyBDSF set: ``root/fields/{train,test}/*.fits`` (float Jy/beam with
    WCS and beam keywords), ``root/{train,test}/`` (COCO), ``root/split.json``.

    Each field carries FIRST's beam at its declination (:func:`_first_header`). Every
    PyBDSF source is labelled (no size cut: the detector is to reproduce PyBDSF's whole
    source list).

    Args:
        root: output folder (default :func:`first_pybdsf_root`); kept when complete.
        real_data: the shared real data (default ``$ASTRODET_REAL_DATA``).
        test_fraction: share of images (by sky group) held out.
        seed: of the split.
        size: tile side of the COCO images.
        train_stride: pixels between the training tiles' corners (None: ``size``, side by
            side); the held-out tiles are always side by side.
        cache_dir: PyBDSF cache.
        overwrite: rebuild a complete set (a set made with other ``seed``,
            ``test_fraction``, ``size`` or ``train_stride``, or before the beams followed
            the declination, is rebuilt anyway).

    Returns:
        ``root``.
    """
    root = Path(root) if root is not None else first_pybdsf_root()
    done = root / "split.json"
    settings = {
        "seed": seed,
        "test_fraction": test_fraction,
        "tile": size,
        "train_stride": train_stride or size,
        # sets made when every field had the northern 5.4" beam are rebuilt
        "beam": "declination",
    }
    if done.is_file() and not overwrite:
        made = json.loads(done.read_text())
        made.setdefault("train_stride", made.get("tile"))  # made before strides existed
        if all(made.get(k) == v for k, v in settings.items()):
            return root
        logger.info("%s was made with other settings: rebuilding it with %s", root, settings)
    real = Path(real_data) if real_data is not None else real_data_root()
    if not (real / "mirabest" / "FITS_subset").is_dir() or not (real / "rgz_first").is_dir():
        raise FileNotFoundError(
            f"real FIRST data not found under {real} (mirabest/FITS_subset, rgz_first); "
            "set ASTRODET_REAL_DATA"
        )
    items = first_items(real)
    split = first_split(items, test_fraction=test_fraction, seed=seed)
    cutouts = np.load(real / "rgz_first" / "first_cutouts_100px_1p8arcsec.npz", allow_pickle=True)[
        "images"
    ]
    summary, written = {}, []
    for side in ("train", "test"):
        folder = root / "fields" / side
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for it in items:
            if split[it["name"]] == side:
                path = folder / f"{it['name']}.fits"
                # always written (a second): a field of an older set keeps no stale beam;
                # the same pixels and header give the same file, so PyBDSF's cache holds
                _write_fits(it, path, cutouts)
                paths.append(path)
        written += paths
        summary[side] = label_fields(
            paths,
            out_dir=root / side,
            cache_dir=cache_dir,
            pybdsf_options={"thresh_isl": 3.0, "thresh_pix": 5.0},
            size=size,
            stride=train_stride if side == "train" else None,
            max_major_beams=None,
            overwrite=True,
        )
    atomic_write_json(
        done,
        {
            **settings,
            "beam_arcsec": list(FIRST_BEAM),  # north of Dec +4 deg 33'; each field: its own
            "field_beams_arcsec": _field_beams(written),
            "pixel_scale_arcsec": FIRST_PIXEL_SCALE,
            "split": split,
            "summary": summary,
        },
    )
    logger.info("FIRST PyBDSF set written to %s: %s", root, summary)
    return root


def _field_beams(paths: Sequence[Path]) -> dict[str, list[float]]:
    """``{field stem: [maj, min, pa]}`` of written fields (arcsec, arcsec, deg)."""
    from astropy.io import fits

    out = {}
    for path in paths:
        h = fits.getheader(path)
        out[path.stem] = [round(h["BMAJ"] * 3600.0, 6), round(h["BMIN"] * 3600.0, 6), h["BPA"]]
    return out


def load_first_pybdsf_coco(
    json_file: str | os.PathLike,
    image_root: str | os.PathLike,
    dataset_name: str | None = None,
    **kwargs,
) -> list[dict]:
    """``load_coco_json`` that first builds the FIRST PyBDSF set when ``json_file`` is its
    default place and it is not there yet or was made with other settings (any other COCO
    set is read as it is)."""
    json_file = Path(json_file)
    default = first_pybdsf_root().resolve()
    if json_file.resolve().parent.parent == default:
        build_first_pybdsf(default)  # made, or remade with this version's settings
    return load_coco_json(str(json_file), str(image_root), dataset_name, **kwargs)


def _register() -> None:
    for split in ("train", "test"):
        name = f"first_pybdsf_{split}"
        if name in DatasetCatalog.list():
            continue
        folder = first_pybdsf_root() / split
        DatasetCatalog.register(
            name,
            functools.partial(
                load_first_pybdsf_coco,
                str(folder / "annotations.json"),
                str(folder / "images"),
                name,
            ),
        )
        MetadataCatalog.get(name).set(
            thing_classes=list(MGCLS_CLASSES),
            task="detection",
            stretch="snr",
            evaluator_type="coco",
            json_file=str(folder / "annotations.json"),
            image_root=str(folder / "images"),
            beam_pixels=FIRST_BEAM[0] / FIRST_PIXEL_SCALE,
        )


_register()
