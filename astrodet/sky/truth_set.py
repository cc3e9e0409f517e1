"""A training set whose labels are exact: sources of known shape injected into real FIRST noise.

A detector trained on PyBDSF's catalogues learns PyBDSF's reading of the sky, faint misses
included. Here the labels are the injected sources themselves (:func:`astrodet.sky.inject.
inject_sources`), so every labelled source is real and every unlabelled bump is noise. The
noise is real: the same FIRST fields and split as ``first_pybdsf``
(:func:`astrodet.sky.labels.first_items`, :func:`~astrodet.sky.labels.first_split`), with
their own sources taken out in one of two ways (``background``):

* ``"inverted"``: the field times -1. Its real sources become holes, so none of them, however
  faint, sits in the image unlabelled (a residual map would keep every source below PyBDSF's
  threshold as an unlabelled positive bump and teach the network to ignore exactly those).
  Injected sources keep off the holes (the field's emission of either sign, grown by three
  beams).
* ``"noise"``: Gaussian noise correlated like the beam (white noise smoothed by the beam's
  Gaussian over sqrt 2, whose autocorrelation is then the beam), scaled by the field's own
  rms map over its background map.
* ``"both"``: each copy of a field takes the two in turn.

Each field gets ``copies`` independent draws of ``n`` sources per ``area_per_source`` pixels
(seeded by the field's name, the copy and ``seed``); peak S/N log-uniform in ``snr_range``
over the field's local rms (:func:`astrodet.sky.measure.background_map`), a third of them
resolved (1-3 beams). The boxes are the injected sources' FWHM ellipses, cut into tiles as
the PyBDSF labels are (:func:`astrodet.data.mgcls.prepare_mgcls`), so a detector trained on
either set is read out by the same finder.

The registered set ``first_injected_{train,test}`` is built on first use under
``datasets_root()/first_injected`` (a few seconds); its fields stay in ``fields/`` beside the
truth tables they were made with, and the held-out real fields themselves (their own sources
in, nothing injected) in ``fields/held_out/``: the fields to score finders on with
``tools/inject_recover.py``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from astrodet.data.catalog import DatasetCatalog, MetadataCatalog
from astrodet.data.coco import load_coco_json
from astrodet.data.mgcls import MGCLS_CLASSES, prepare_mgcls
from astrodet.utils import atomic_write_json, datasets_root, real_data_root

from .labels import (
    FIRST_BEAM,
    FIRST_PIXEL_SCALE,
    FIRST_TILE,
    FIRST_TRAIN_STRIDE,
    _write_fits,
    first_items,
    first_split,
)

logger = logging.getLogger(__name__)

__all__ = [
    "BACKGROUNDS",
    "build_first_injected",
    "correlated_noise",
    "first_injected_root",
    "inject_over_noise",
    "load_first_injected_coco",
]

BACKGROUNDS = ("inverted", "noise", "both")
#: Build settings of the registered set; a set made with others is rebuilt.
DEFAULTS = {
    "background": "inverted",
    "copies": 2,
    "area_per_source": 1500.0,
    "snr_range": [3.0, 100.0],
    "seed": 0,
}
_TRUTH_COLUMNS = {"x": "x", "y": "y", "maj": "maj", "min": "min", "pa": "pa"}


def correlated_noise(
    shape: tuple[int, int], *, beam_pixels: Sequence[float], rng: np.random.Generator
) -> np.ndarray:
    """Unit-variance Gaussian noise whose autocorrelation has the beam's shape.

    Args:
        shape: ``(ny, nx)``.
        beam_pixels: ``(maj, min, pa)``: FWHM in pixels, pa from +y towards -x.
        rng: the random generator.
    """
    from scipy.signal import fftconvolve

    from .inject import gaussian_model

    maj, mn, pa = (float(v) for v in beam_pixels)
    # smoothing by a Gaussian of covariance C gives an autocorrelation of covariance 2C
    half = int(np.ceil(3.0 * maj / np.sqrt(2.0)))
    kernel = gaussian_model(
        (2 * half + 1, 2 * half + 1),
        x=[half],
        y=[half],
        peak=[1.0],
        maj=[maj / np.sqrt(2.0)],
        min=[mn / np.sqrt(2.0)],
        pa=[pa],
    )
    white = rng.standard_normal((shape[0] + 2 * half, shape[1] + 2 * half))
    smooth = fftconvolve(white, kernel, mode="valid")
    return smooth / np.sqrt((kernel**2).sum())


def inject_over_noise(
    field,
    *,
    background: str,
    n: int,
    seed: Sequence[int],
    snr_range: Sequence[float] = DEFAULTS["snr_range"],
):
    """A real field's noise without its sources, with ``n`` sources injected.

    Args:
        field: a :class:`~astrodet.sky.field.Field`.
        background: ``"inverted"`` or ``"noise"`` (see the module docstring).
        n: sources asked for.
        seed: entropy of the draws (noise and sources).
        snr_range: peak S/N range (log-uniform).

    Returns:
        ``(image, truth)``: float32 pixels in the field's units and the truth catalogue
        (pixel ``x``/``y``, sizes in arcsec; :func:`astrodet.sky.inject.inject_sources`).
    """
    from .inject import _pixel_beam, _sky_jacobian, emission_mask, inject_sources
    from .measure import background_map

    if background not in ("inverted", "noise"):
        raise ValueError(f"background must be 'inverted' or 'noise', got {background!r}")
    rng = np.random.default_rng(list(seed))
    ny, nx = field.shape
    image = field.read(0, ny, 0, nx).astype(np.float64)
    bkg, rms = background_map(field)
    beam_px = _pixel_beam(field, _sky_jacobian(field))
    if background == "inverted":
        base = 2.0 * bkg - image  # mirrored about the background: real sources become holes
        avoid = emission_mask(
            np.abs(image - bkg), background=0.0, rms=rms, beam_pixels=field.beam_pixels()
        )
    else:
        base = bkg + rms * correlated_noise((ny, nx), beam_pixels=beam_px, rng=rng)
        base[~np.isfinite(image)] = np.nan
        avoid = None
    injected, truth = inject_sources(
        base,
        beam_pixels=beam_px,
        rms=rms,
        n=n,
        seed=rng,
        snr_range=snr_range,
        avoid_mask=avoid,
        pixel_scale=field.pixel_scale,
    )
    return injected, truth


def first_injected_root(tile: int = FIRST_TILE) -> Path:
    """Default place of the injected FIRST set cut into ``tile`` px tiles:
    ``datasets_root()/first_injected`` for FIRST's 48 px tiles, ``first_injected_t<tile>``
    for others (the fields are the same; only the COCO tiles differ)."""
    tile = int(tile)
    return datasets_root() / ("first_injected" if tile == FIRST_TILE else f"first_injected_t{tile}")


def build_first_injected(
    root: str | os.PathLike | None = None,
    *,
    real_data: str | os.PathLike | None = None,
    background: str = DEFAULTS["background"],
    copies: int = DEFAULTS["copies"],
    area_per_source: float = DEFAULTS["area_per_source"],
    snr_range: Sequence[float] = DEFAULTS["snr_range"],
    seed: int = DEFAULTS["seed"],
    size: int = FIRST_TILE,
    train_stride: int | None = FIRST_TRAIN_STRIDE,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Make the injected FIRST set: ``root/fields/{train,test}/`` (the injected images as FITS
    and their truth as CSV), ``root/fields/held_out/`` (the held-out real fields as they are),
    ``root/{train,test}/`` (COCO), ``root/settings.json``.

    Args:
        root: output folder (default :func:`first_injected_root`); kept when complete and
            made with the same settings.
        real_data: the shared real data (default ``$ASTRODET_REAL_DATA``).
        background: ``"inverted"``, ``"noise"`` or ``"both"`` (module docstring).
        copies: independent injections per field (the held-out side gets one).
        area_per_source: pixels of field per injected source (a 300 px field: 60).
        snr_range: injected peak S/N range (log-uniform).
        seed: of the injections (the split is ``first_pybdsf``'s).
        size: tile side of the COCO images.
        train_stride: pixels between training tiles' corners (held-out tiles side by side).
        overwrite: rebuild a complete set.
        progress: a progress bar over the fields.

    Returns:
        ``root``.
    """
    from astropy.io import fits
    from tqdm import tqdm

    from .catalogue import write_catalogue
    from .field import open_field

    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {BACKGROUNDS}, got {background!r}")
    if copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    root = Path(root) if root is not None else first_injected_root()
    settings = {
        "background": background,
        "copies": int(copies),
        "area_per_source": float(area_per_source),
        "snr_range": [float(v) for v in snr_range],
        "seed": int(seed),
        "tile": int(size),
        "train_stride": int(train_stride or size),
        "held_out_fields": True,  # sets made before the held-out fields were kept are remade
    }
    done = root / "settings.json"
    if done.is_file() and not overwrite:
        made = json.loads(done.read_text())
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
    split = first_split(items)  # first_pybdsf's: its held-out fields stay held out here
    cutouts = np.load(real / "rgz_first" / "first_cutouts_100px_1p8arcsec.npz", allow_pickle=True)[
        "images"
    ]
    kinds = ["inverted", "noise"] if background == "both" else [background]
    summary, counts = {}, {}
    for side in ("train", "test"):
        folder = root / "fields" / side
        folder.mkdir(parents=True, exist_ok=True)
        images, truths, n_sources = [], [], 0
        mine = [it for it in items if split[it["name"]] == side]
        for it in tqdm(mine, desc=f"injecting ({side})", unit="field", disable=not progress):
            original = folder / f".{it['name']}.original.fits"
            _write_fits(it, original, cutouts)
            field = open_field(original)
            header = fits.getheader(original)
            n = max(1, round(field.shape[0] * field.shape[1] / area_per_source))
            for copy in range(copies if side == "train" else 1):
                kind = kinds[copy % len(kinds)]
                name_seed = zlib.crc32(it["name"].encode())
                image, truth = inject_over_noise(
                    field,
                    background=kind,
                    n=n,
                    seed=(int(seed), name_seed, copy, 0 if side == "train" else 1),
                    snr_range=snr_range,
                )
                stem = f"{it['name']}_c{copy}"
                path = folder / f"{stem}.fits"
                header["INJBKG"] = (kind, "background of the injected sources")
                _atomic_fits(path, image, header)
                truths.append(
                    write_catalogue(truth, folder / stem, formats=("csv",), overwrite=True)["csv"]
                )
                images.append(path)
                n_sources += len(truth)
            field.close()
            if side == "test":
                held_out = root / "fields" / "held_out"
                held_out.mkdir(exist_ok=True)
                os.replace(original, held_out / f"{it['name']}.fits")
            else:
                original.unlink()
        summary[side] = prepare_mgcls(
            image=images,
            catalog=truths,
            out_dir=root / side,
            size=size,
            stride=train_stride if side == "train" else None,
            columns=_TRUTH_COLUMNS,
            size_unit="arcsec",
            max_major_beams=None,
            overwrite=True,
        )
        counts[side] = {"fields": len(images), "injected": n_sources}
    atomic_write_json(done, {**settings, "counts": counts, "summary": summary})
    logger.info("injected FIRST set written to %s: %s", root, counts)
    return root


def _atomic_fits(path: Path, data: np.ndarray, header) -> None:
    from astrodet.utils import atomic_write_fits

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atomic_write_fits(path, np.asarray(data, np.float32), header)


def load_first_injected_coco(
    json_file: str | os.PathLike,
    image_root: str | os.PathLike,
    dataset_name: str | None = None,
    *,
    tile: int = FIRST_TILE,
    **kwargs,
) -> list[dict]:
    """``load_coco_json`` that first builds the injected FIRST set when ``json_file`` is its
    default place (:func:`first_injected_root` of ``tile``) and it is missing or was made
    with other settings; the training tiles overlap by half."""
    json_file = Path(json_file)
    default = first_injected_root(tile).resolve()
    if json_file.resolve().parent.parent == default:
        build_first_injected(default, size=int(tile), train_stride=int(tile) // 2)
    return load_coco_json(str(json_file), str(image_root), dataset_name, **kwargs)


def _register() -> None:
    for split in ("train", "test"):
        name = f"first_injected_{split}"
        if name in DatasetCatalog.list():
            continue
        folder = first_injected_root() / split
        DatasetCatalog.register(
            name,
            functools.partial(
                load_first_injected_coco,
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
