"""Radio Galaxy Zoo consensus on real FIRST pixels: the detection set ``rgz_first_det``.

Every real FIRST image of the shared real data (``$ASTRODET_REAL_DATA``) that holds a Radio
Galaxy Zoo DR1 source of ``rgz_catalogue`` (component positions, ``num_cpnts``,
``num_peaks``, angular extent, consensus level), with one box per RGZ source around all its
consensus components, classed by the six RGZ classes of :mod:`astrodet.data.rgz`:

=================== ======================================================== =========
kind                images                                                   pixels
=================== ======================================================== =========
rgz_first           ``rgz_first`` 100 px cutouts, centred on the RGZ source  Jy/beam
mirabest_fits       ``mirabest/FITS_subset`` 300 px fields with WCS          Jy/beam
mirabest_png        MiraBest 150 px PNGs, position in the file name          clipped
first_radio_galaxy  Griese et al. 300 px PNGs, position in the file name     clipped
=================== ======================================================== =========

All are FIRST at 1.8"/px; the PNGs are 8-bit with the noise cut away (``clipped`` in the
image record, pixels divided by 255) and the same orientation as the FITS arrays, centred
on their name's position (checked against the MiraBest FITS fields: within 2 px). FR-DEEP's
PNGs carry no position and are skipped and counted, as are PNG names without one and blank
MiraBest PNGs.

Images. The detector resizes every image to one input size, so all images here have one
size and scale: ``tile`` x ``tile`` pixels (default 100 px, 3', the size of an RGZ subject),
cut from each source image around each RGZ source it holds whole (centred on the source,
moved inside the image; a source already whole in a tile of that image gets no other).

Boxes and sources: the rule of :mod:`astrodet.data.rgz_consensus` (emission above 3 rms
connected to the components, within reach of them, plus a beam around each component),
measured on the whole source image and clipped to the tile; duplicated RGZ entries are one
source. A source with some components outside a tile is an ``iscrowd`` box there (ignored
by training and by COCO evaluation), not a label.

Splits. Tiles that may overlap on the sky are one group (union-find as for
``first_pybdsf``): a group holding any source of ClaRAN's test list (the catalogue's
``training`` column is 0, ``testD1.txt``) is test, every other group is train, so no sky
position is in both splits. RGZ sources with no component in any image, and those cut by
the edge of every image that holds part of them, are counted and reported.

Layout: ``root/{train,test}/annotations.json`` (COCO; images carry ``kind``, ``clipped``,
``ra``, ``dec``, ``group``, ``source_image`` and ``fits_file``; annotations carry ``rgz``:
``catalog_id``, ``first_id``, ``components`` (x, y in the COCO frame of the image),
``claran_split``, ``cl``, ``ang_extent``, ``duplicates``), ``root/{train,test}/images/*.npy`` (float32,
display orientation: north up), ``root/fields/{train,test}/*.fits`` (FITS orientation, WCS
and FIRST's beam: what PyBDSF and ``find_sources`` read), ``root/summary.json`` and
``root/{train,test}/summary.json`` (counts per class and image kind).

The classification set ``rgz_first_{train,test}`` (:mod:`astrodet.data.real_sets`) keeps its
name; this detection set is registered as ``rgz_first_det_{train,test}``.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from astrodet.data.catalog import DatasetCatalog, MetadataCatalog
from astrodet.data.rgz import RGZ_CLASSES
from astrodet.data.rgz_consensus import (
    FIRST_BEAM_PX,
    consensus_box,
    emission_regions,
    read_rgz_sources,
    unique_rgz_sources,
)
from astrodet.utils import atomic_write_bytes, atomic_write_json, datasets_root, real_data_root

logger = logging.getLogger(__name__)

__all__ = [
    "BOX_NSIGMA",
    "DATASET",
    "KINDS",
    "RGZ_FIRST_TILE",
    "build_rgz_first",
    "format_counts",
    "load_rgz_first_coco",
    "rgz_first_root",
    "source_images",
]

#: Registered name (``<DATASET>_train``, ``<DATASET>_test``) and folder under datasets_root().
DATASET = "rgz_first_det"
#: Tile side (pixels at FIRST's 1.8"/px): 3', an RGZ subject.
RGZ_FIRST_TILE = 100
#: Emission threshold of the boxes, in units of the image's rms.
BOX_NSIGMA = 3.0
KINDS = ("rgz_first", "mirabest_fits", "mirabest_png", "first_radio_galaxy")
_PIXEL_SCALE = 1.8  # arcsec, FIRST
_PREFIX = {"rgz_first": "cut", "mirabest_fits": "mbf", "mirabest_png": "mbp"}
_PREFIX["first_radio_galaxy"] = "frg"
_POSITION = re.compile(r"^(?:\d+_)?([0-9.]+)_([+-]?[0-9.]+)")


# ------------------------------------------------------------------------------ images
def _tan_wcs(ra: float, dec: float, shape) -> object:
    """A FIRST TAN WCS centred on (ra, dec) at the middle of the array (FITS orientation)."""
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [(shape[1] + 1) / 2.0, (shape[0] + 1) / 2.0]
    wcs.wcs.cdelt = [-_PIXEL_SCALE / 3600.0, _PIXEL_SCALE / 3600.0]
    return wcs


def source_images(real: str | os.PathLike) -> tuple[list[dict], dict]:
    """The real FIRST images and where they are, without their pixels.

    Returns:
        (records ``{"name", "kind", "clipped", "ra", "dec", "size", "source", ...}``,
        skipped counts ``{"<kind>_no_position", "mirabest_png_blank", ...}``).
    """
    from astropy.io import fits
    from astropy.wcs import WCS

    from astrodet.data.real_sets import BLANK_MAX, load_cifar_tar

    real = Path(real)
    records, skipped = [], Counter()
    with open(real / "rgz_first" / "labels.csv", newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            records.append(
                {
                    "name": f"{i:03d}_{row['rgz_first_id']}",
                    "kind": "rgz_first",
                    "clipped": False,
                    "ra": float(row["rgz_ra"]),
                    "dec": float(row["rgz_dec"]),
                    "size": RGZ_FIRST_TILE,
                    "index": i,
                    "source": f"rgz_first/first_cutouts_100px_1p8arcsec.npz[{i}]",
                }
            )
    for path in sorted((real / "mirabest" / "FITS_subset").glob("*.fits")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SkyView headers hold non-ASCII commentary cards
            header = fits.getheader(path)
            wcs = WCS(header).celestial
        ny, nx = int(header["NAXIS2"]), int(header["NAXIS1"])
        ra, dec = wcs.all_pix2world((nx - 1) / 2.0, (ny - 1) / 2.0, 0)
        records.append(
            {
                "name": path.stem,
                "kind": "mirabest_fits",
                "clipped": False,
                "ra": float(ra),
                "dec": float(dec),
                "size": max(nx, ny),
                "path": str(path),
                "source": f"mirabest/FITS_subset/{path.name}",
            }
        )
    tar = real / "mirabest" / "batches.tar.gz"
    for split, (images, _, names) in load_cifar_tar(str(tar)).items():
        for i, (image, name) in enumerate(zip(images, names)):
            stem = Path(name).stem
            m = _POSITION.match(stem)
            if m is None:
                skipped["mirabest_png_no_position"] += 1
                continue
            if image.max() <= BLANK_MAX:
                skipped["mirabest_png_blank"] += 1
                continue
            records.append(
                {
                    "name": stem,
                    "kind": "mirabest_png",
                    "clipped": True,
                    "ra": float(m.group(1)),
                    "dec": float(m.group(2)),
                    "size": int(max(image.shape)),
                    "tar_split": split,
                    "index": i,
                    "source": f"mirabest/batches.tar.gz:{name}",
                }
            )
    for path in sorted((real / "first_radio_galaxy" / "galaxy_data").glob("*/*/*.png")):
        m = _POSITION.match(path.stem)
        if m is None or "_" not in path.stem:
            skipped["first_radio_galaxy_no_position"] += 1
            continue
        records.append(
            {
                "name": path.stem,
                "kind": "first_radio_galaxy",
                "clipped": True,
                "ra": float(m.group(1)),
                "dec": float(m.group(2)),
                "size": 300,
                "path": str(path),
                "source": str(path.relative_to(real)),
            }
        )
    # FR-DEEP's FIRST PNGs are named by running numbers: no position, no RGZ match
    frdeep = real / "frdeep" / "FIRST_PNG_dataset.tar.gz"
    if frdeep.is_file():
        skipped["frdeep_no_position"] = sum(len(v[2]) for v in load_cifar_tar(str(frdeep)).values())
    for kind, n in sorted(skipped.items()):
        logger.info("rgz_first_det: skipped %d images (%s)", n, kind)
    return records, dict(skipped)


def _pixels(rec: dict, real: Path, cutouts) -> tuple[np.ndarray, object]:
    """(2-D float32 in FITS orientation, celestial WCS) of a record."""
    from astropy.io import fits
    from astropy.wcs import WCS
    from PIL import Image

    from astrodet.data.real_sets import load_cifar_tar

    kind = rec["kind"]
    if kind == "rgz_first":
        data = np.asarray(cutouts[rec["index"]], np.float32)
        return data, _tan_wcs(rec["ra"], rec["dec"], data.shape)
    if kind == "mirabest_fits":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(rec["path"]) as hdul:
                data = np.asarray(hdul[0].data, np.float32)
                wcs = WCS(hdul[0].header).celestial
        while data.ndim > 2:
            data = data[0]
        return data, wcs
    if kind == "mirabest_png":
        tar = real / "mirabest" / "batches.tar.gz"
        image = load_cifar_tar(str(tar))[rec["tar_split"]][0][rec["index"]]
    else:
        with Image.open(rec["path"]) as im:
            image = np.asarray(im.convert("L"))
    # the PNGs keep the FITS arrays' row order (row 0 south): no flip
    data = image.astype(np.float32) / 255.0
    return data, _tan_wcs(rec["ra"], rec["dec"], data.shape)


def _inside(xy: np.ndarray, x0: float, y0: float, size_x: int, size_y: int) -> np.ndarray:
    """Pixel positions (0-based centres) inside a window of whole pixels."""
    x, y = xy[:, 0] - x0, xy[:, 1] - y0
    return (x >= -0.5) & (x < size_x - 0.5) & (y >= -0.5) & (y < size_y - 0.5)


def _image_tiles(rec, data, wcs, sources, *, tile: int, nsigma: float):
    """The tiles of one source image, each with its whole and partial RGZ sources.

    Returns:
        (tiles, catalog ids with a component in the image, catalog ids whole in it).
    """
    h, w = data.shape
    comps = [np.stack(wcs.all_world2pix(s["ra"], s["dec"], 0), axis=1) for s in sources]
    inside_image = [_inside(c, 0, 0, w, h) for c in comps]
    whole = [bool(m.all()) for m in inside_image]
    touched = {s["catalog_id"] for s, m in zip(sources, inside_image) if m.any()}
    whole_ids = {s["catalog_id"] for s, ok in zip(sources, whole) if ok}
    if not any(whole):
        return [], touched, whole_ids
    if min(h, w) < tile:
        raise ValueError(f"{rec['source']}: {w}x{h} pixels is smaller than a {tile} px tile")
    labels = emission_regions(data, clipped=rec["clipped"], nsigma=nsigma)
    boxes = [
        consensus_box(
            labels=labels,
            components=c[m],
            ang_extent_px=s["ang_extent"] / _PIXEL_SCALE,
        )
        if m.any()
        else None
        for s, c, m in zip(sources, comps, inside_image)
    ]
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    order = sorted(
        (k for k in range(len(sources)) if whole[k]),
        key=lambda k: float(np.hypot(*(comps[k].mean(0) - centre))),
    )
    tiles, done = [], set()
    for k in order:
        if k in done:
            continue
        cx, cy = comps[k].mean(axis=0)
        x0 = int(np.clip(round(cx - (tile - 1) / 2.0), 0, w - tile))
        y0 = int(np.clip(round(cy - (tile - 1) / 2.0), 0, h - tile))
        anns = []
        for j, (s, c) in enumerate(zip(sources, comps)):
            inside = _inside(c, x0, y0, tile, tile)
            if not inside.any():
                continue
            if inside.all():
                done.add(j)
            x_0, y_0, x_1, y_1 = boxes[j] - [x0, y0, x0, y0]
            box = np.clip([x_0, y_0, x_1, y_1], 0, tile)
            anns.append(
                {"source": s, "box": box, "components": c[inside] - [x0, y0], "whole": inside.all()}
            )
        tiles.append(
            {
                "image": rec,
                "data": data[y0 : y0 + tile, x0 : x0 + tile],
                "wcs": wcs[y0 : y0 + tile, x0 : x0 + tile],
                "origin": (x0, y0),
                "annotations": anns,
            }
        )
    return tiles, touched, whole_ids


# ------------------------------------------------------------------------------ building
def rgz_first_root() -> Path:
    """Default place of the set: ``datasets_root()/rgz_first_det``."""
    return datasets_root() / DATASET


def _candidates(records, sources) -> dict[int, list[int]]:
    """record index -> indices of sources with a component near its footprint."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    comp_src = np.concatenate([np.full(len(s["ra"]), i) for i, s in enumerate(sources)])
    comps = SkyCoord(
        np.concatenate([s["ra"] for s in sources]),
        np.concatenate([s["dec"] for s in sources]),
        unit="deg",
    )
    centres = SkyCoord([r["ra"] for r in records], [r["dec"] for r in records], unit="deg")
    radius = max(r["size"] for r in records) * _PIXEL_SCALE * 0.75  # > half the diagonal
    i_rec, i_comp, _, _ = comps.search_around_sky(centres, radius * u.arcsec)
    out: dict[int, set] = defaultdict(set)
    for r, c in zip(i_rec, i_comp):
        out[int(r)].add(int(comp_src[c]))
    return {r: sorted(v) for r, v in out.items()}


def _display(box, comps, height):
    """FITS-orientation pixel-edge box and 0-based centres -> COCO frame of the flipped
    image."""
    x0, y0, x1, y1 = (float(v) for v in box)
    xy = [[float(x) + 0.5, height - (float(y) + 0.5)] for x, y in comps]
    return [x0, height - y1, x1 - x0, y1 - y0], xy


def _fits_bytes(data, wcs, clipped) -> bytes:
    from astropy.io import fits

    from astrodet.sky.labels import _first_header

    header = _first_header(wcs.to_header(), data.shape)
    if clipped:  # 8-bit pixels / 255, not Jy/beam
        del header["BUNIT"]
        header["CLIPPED"] = (True, "8-bit PNG, noise cut away; pixel values / 255")
    buf = io.BytesIO()
    fits.PrimaryHDU(np.asarray(data, np.float32), header=header).writeto(buf)
    return buf.getvalue()


def _npy_bytes(data) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(np.asarray(data, np.float32)[::-1]))  # north up
    return buf.getvalue()


def _settings(tile, nsigma):
    return {"tile": tile, "nsigma": nsigma, "version": 1}


def build_rgz_first(
    root: str | os.PathLike | None = None,
    *,
    real_data: str | os.PathLike | None = None,
    tile: int = RGZ_FIRST_TILE,
    nsigma: float = BOX_NSIGMA,
    overwrite: bool = False,
    report: bool = True,
) -> Path:
    """Make the RGZ/FIRST detection set (see the module docstring); a complete set made
    with the same settings is kept.

    Args:
        root: output folder (default :func:`rgz_first_root`); written beside it and renamed
            into place when complete.
        real_data: the shared real data (default ``$ASTRODET_REAL_DATA``).
        tile: image side in pixels.
        nsigma: emission threshold of the boxes (rms units).
        overwrite: rebuild a complete set.
        report: print the table of counts per class and image kind.

    Returns:
        ``root``.
    """
    from astrodet.data.coco import save_coco_json
    from astrodet.sky.labels import _groups, _safe_name

    root = Path(root) if root is not None else rgz_first_root()
    done = root / "summary.json"
    settings = _settings(tile, nsigma)
    if done.is_file() and not overwrite:
        if json.loads(done.read_text()).get("settings") == settings:
            return root
        logger.info("%s was made with other settings: rebuilding it with %s", root, settings)
    real = Path(real_data) if real_data is not None else real_data_root()
    catalogue = real / "rgz_catalogue" / "full_catalogue.csv.tgz"
    for need in (catalogue, real / "rgz_first" / "labels.csv"):
        if not need.is_file():
            raise FileNotFoundError(f"{need} not found; set ASTRODET_REAL_DATA to the real data")
    sources, duplicates = unique_rgz_sources(read_rgz_sources(catalogue))
    records, skipped = source_images(real)
    with np.load(real / "rgz_first" / "first_cutouts_100px_1p8arcsec.npz") as z:
        cutouts = np.asarray(z["images"])  # allow_pickle is off: only arrays are read

    tiles, touched, whole_somewhere = [], set(), set()
    used = Counter()
    for r, idx in sorted(_candidates(records, sources).items()):
        rec = records[r]
        data, wcs = _pixels(rec, real, cutouts)
        found, seen, whole = _image_tiles(
            rec, data, wcs, [sources[i] for i in idx], tile=tile, nsigma=nsigma
        )
        touched |= seen
        whole_somewhere |= whole
        used[rec["kind"]] += bool(found)
        tiles.extend(found)
    if not tiles:
        raise ValueError(f"no RGZ source lies whole in any FIRST image under {real}")
    for k, t in enumerate(tiles):
        rec = t["image"]
        t["name"] = f"{_PREFIX[rec['kind']]}_{_safe_name(rec['name'])}_{k:04d}"
        ra, dec = t["wcs"].all_pix2world((tile - 1) / 2.0, (tile - 1) / 2.0, 0)
        t["ra"], t["dec"], t["size"] = float(ra), float(dec), tile
    groups = _groups(tiles)
    moved = set()
    for g, members in enumerate(groups):
        anns = [a for i in members for a in tiles[i]["annotations"]]
        side = "test" if any(a["source"]["claran_split"] == "test" for a in anns) else "train"
        if side == "test":
            moved.update(
                a["source"]["catalog_id"] for a in anns if a["source"]["claran_split"] == "train"
            )
        for i in members:
            tiles[i]["split"], tiles[i]["group"] = side, g

    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=_parent(root)))
    try:
        summary = _write(tmp, tiles, save_coco_json, tile=tile)
        summary.update(
            settings=settings,
            catalogue={
                "entries": len(sources) + duplicates["duplicates"] + duplicates["conflicts"],
                **duplicates,
                "sources": len(sources),
                "per_class": dict(Counter(s["class"] for s in sources)),
            },
            images={
                kind: {
                    "available": sum(r["kind"] == kind for r in records),
                    "with_rgz_source": used[kind],
                }
                for kind in KINDS
            },
            skipped_images=skipped,
            rgz_outside_every_image=len(sources) - len(touched),
            rgz_cut_by_every_edge=len(touched - whole_somewhere),
            claran_train_in_test=len(moved),
            sky_groups={
                s: len({t["group"] for t in tiles if t["split"] == s}) for s in ("train", "test")
            },
        )
        atomic_write_json(tmp / "summary.json", summary)
        if root.exists():
            if not overwrite and not done.is_file():
                raise FileExistsError(f"{root} exists and is not a complete set; pass overwrite")
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if report:
        print(format_counts(summary))
    logger.info("RGZ/FIRST set written to %s", root)
    return root


def _parent(root: Path) -> Path:
    root.parent.mkdir(parents=True, exist_ok=True)
    return root.parent


def _write(folder: Path, tiles: list[dict], save_coco_json, *, tile: int) -> dict:
    """Write both splits under ``folder``; returns the per-split counts."""
    summary = {"splits": {}}
    for side in ("train", "test"):
        dicts, extras = [], []
        counts = {
            "tiles": Counter(),
            "sources": {k: Counter() for k in KINDS},
            "partial": 0,
        }
        unique = {}
        for t in (t for t in tiles if t["split"] == side):
            rec = t["image"]
            fits_rel = f"fields/{side}/{t['name']}.fits"
            atomic_write_bytes(folder / fits_rel, _fits_bytes(t["data"], t["wcs"], rec["clipped"]))
            atomic_write_bytes(folder / side / "images" / f"{t['name']}.npy", _npy_bytes(t["data"]))
            anns, rgz = [], []
            for a in t["annotations"]:
                s = a["source"]
                bbox, comps = _display(a["box"], a["components"], tile)
                anns.append(
                    {
                        "bbox": bbox,
                        "category_id": RGZ_CLASSES.index(s["class"]),
                        "iscrowd": 0 if a["whole"] else 1,
                    }
                )
                rgz.append(
                    {
                        "catalog_id": s["catalog_id"],
                        "first_id": s["first_id"],
                        "components": comps,
                        "claran_split": s["claran_split"],
                        "cl": s["cl"],
                        "duplicates": s.get("duplicates", []),
                        "ang_extent": s["ang_extent"],
                    }
                )
                if a["whole"]:
                    counts["sources"][rec["kind"]][s["class"]] += 1
                    unique[s["catalog_id"]] = s["class"]
                else:
                    counts["partial"] += 1
            counts["tiles"][rec["kind"]] += 1
            image_id = len(dicts)
            dicts.append(
                {
                    "file_name": f"{t['name']}.npy",
                    "height": tile,
                    "width": tile,
                    "image_id": image_id,
                    "annotations": anns,
                }
            )
            extras.append(
                (
                    {
                        "kind": rec["kind"],
                        "clipped": rec["clipped"],
                        "ra": t["ra"],
                        "dec": t["dec"],
                        "group": t["group"],
                        "source_image": rec["source"],
                        "origin": list(t["origin"]),
                        "fits_file": fits_rel,
                    },
                    rgz,
                )
            )
        json_file = folder / side / "annotations.json"
        save_coco_json(json_file, dicts, RGZ_CLASSES)
        # the consensus behind each box rides along in the COCO file (readers ignore it)
        coco = json.loads(json_file.read_text())
        by_image = defaultdict(list)
        for ann in coco["annotations"]:
            by_image[ann["image_id"]].append(ann)
        for img, (extra, rgz) in zip(coco["images"], extras):
            img.update(extra)
            for ann, info in zip(by_image[img["id"]], rgz):
                ann["rgz"] = info
        atomic_write_json(json_file, coco, indent=None)
        split_counts = {
            "tiles": {k: int(counts["tiles"][k]) for k in KINDS},
            "sources": {k: {c: int(counts["sources"][k][c]) for c in RGZ_CLASSES} for k in KINDS},
            "unique_sources": {c: sum(v == c for v in unique.values()) for c in RGZ_CLASSES},
            "partial_sources": counts["partial"],
        }
        atomic_write_json(folder / side / "summary.json", split_counts)
        summary["splits"][side] = split_counts
    return summary


def format_counts(summary: dict) -> str:
    """A plain-text table of a set's summary: boxes per class and image kind, per split."""
    lines = []
    for side, c in summary["splits"].items():
        head = f"{side:<7}" + "".join(f"{k:>20}" for k in KINDS) + f"{'unique':>9}"
        lines += [head, "-" * len(head)]
        for cls in RGZ_CLASSES:
            row = "".join(f"{c['sources'][k][cls]:>20}" for k in KINDS)
            lines.append(f"{cls:<7}{row}{c['unique_sources'][cls]:>9}")
        tiles = "".join(f"{c['tiles'][k]:>20}" for k in KINDS)
        lines.append(f"{'images':<7}{tiles}{'':>9}")
        lines.append(f"partial sources (iscrowd boxes): {c['partial_sources']}")
        lines.append("")
    extra = {"catalogue": summary.get("catalogue")}
    extra.update({k: summary.get(k) for k in ("rgz_outside_every_image", "rgz_cut_by_every_edge")})
    extra.update(
        claran_train_in_test=summary.get("claran_train_in_test"),
        skipped_images=summary.get("skipped_images"),
    )
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ registration
def load_rgz_first_coco(
    json_file: str | os.PathLike,
    image_root: str | os.PathLike,
    dataset_name: str | None = None,
    **kwargs,
) -> list[dict]:
    """``load_coco_json`` that first builds the set when ``json_file`` is its default place
    (any other COCO set is read as it is)."""
    from astrodet.data.coco import load_coco_json

    json_file = Path(json_file)
    default = rgz_first_root().resolve()
    if json_file.resolve().parent.parent == default:
        build_rgz_first(default)
    return load_coco_json(str(json_file), str(image_root), dataset_name, **kwargs)


def _register() -> None:
    for split in ("train", "test"):
        name = f"{DATASET}_{split}"
        if name in DatasetCatalog.list():
            continue
        folder = rgz_first_root() / split
        DatasetCatalog.register(
            name,
            functools.partial(
                load_rgz_first_coco,
                str(folder / "annotations.json"),
                str(folder / "images"),
                name,
            ),
        )
        MetadataCatalog.get(name).set(
            thing_classes=list(RGZ_CLASSES),
            task="detection",
            stretch="snr",
            evaluator_type="coco",
            json_file=str(folder / "annotations.json"),
            image_root=str(folder / "images"),
            beam_pixels=FIRST_BEAM_PX,
        )


_register()

# the simulated radio galaxies of the same task (rgz_first_sim_train) register beside it
from astrodet.data import rgz_sim as _rgz_sim  # noqa: E402,F401
