"""Simulated skies: the embedded default data, made on the fly, seeded and fast.

Three kinds, each written as ``<root>/<kind>/{train,test}/``:

* ``sky``: MGCLS-like 256x256 radio fields (float32 Jy/beam, ``images/*.npy``) with compact
  sources (beam-sized Gaussians, signal-to-noise from a power law between a few and a few
  hundred), unlabelled extended FR-I/FR-II doubles, and noise correlated on the beam scale.
  Labels are the compact sources only, one class ``source``, each box the bounding box of
  the source's FWHM ellipse, as MGCLS boxes are made from PyBDSF catalogues.
* ``rgz``: Radio Galaxy Zoo-like 132x132 cutouts holding one radio galaxy of the six
  component/peak classes (1C_1P, 1C_2P, 1C_3P, 2C_2P, 2C_3P, 3C_3P). A component is an
  island of emission above three times the noise; peaks are the Gaussian maxima inside.
  The box encloses the galaxy's 3-sigma contour.
* ``galaxies``: GalaxyMNIST-like 64x64 RGB uint8 galaxies of four classes (smooth_round,
  smooth_cigar, edge_on_disk, unbarred_spiral): Sersic bulges and discs, dust lanes, spiral
  arms, a Gaussian PSF, sky noise and background stars, shown through an asinh stretch.
  A classification set: ``images.npy`` (N x 64 x 64 x 3 uint8) and ``labels.csv``
  (``index,label,class_name``).

Detection kinds are COCO json (``annotations.json``, written by
:func:`astrodet.data.coco.save_coco_json`) beside ``images/*.npy``. Pixel coordinates are
COCO's: pixel ``i`` covers ``[i, i + 1)``, row 0 is the top of the image.

Command line::

    python -m astrodet.data.synthetic --out DIR [--kind sky|rgz|galaxies|all]
        [--n-train N --n-test N] [--seed S] [--overwrite]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from astrodet.structures import BoxMode
from astrodet.utils import atomic_write_json, atomic_write_text, datasets_root

logger = logging.getLogger(__name__)

__all__ = [
    "GALAXY_CLASSES",
    "KINDS",
    "RGZ_CLASSES",
    "SKY_CLASSES",
    "ensure_synthetic",
    "generate_galaxies",
    "generate_rgz",
    "generate_sky",
    "load_synthetic",
    "load_synthetic_coco",
    "make_galaxy",
    "make_radio_field",
    "make_rgz_cutout",
    "write_synthetic",
]

SKY_CLASSES = ["source"]
RGZ_CLASSES = ["1C_1P", "1C_2P", "1C_3P", "2C_2P", "2C_3P", "3C_3P"]
GALAXY_CLASSES = ["smooth_round", "smooth_cigar", "edge_on_disk", "unbarred_spiral"]
KINDS = ("sky", "rgz", "galaxies")

#: Default sizes of the registered ``synthetic_*`` sets (train, test).
DEFAULT_SIZES = {"sky": (200, 50), "rgz": (600, 150), "galaxies": (800, 200)}
#: Bumped whenever the generators change, so cached sets are regenerated.
GENERATOR_VERSION = 1
_MARKER = ".complete.json"
_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


# --------------------------------------------------------------------------- rendering
def _add_gaussian(img, x, y, peak, sig_maj, sig_min, theta):
    """Add an elliptical Gaussian to ``img`` in place, evaluated on a local stamp.

    ``x, y`` are continuous COCO coordinates (pixel centres at i + 0.5); ``theta`` is the
    major axis' angle from the +x axis towards +y, radians.
    """
    h, w = img.shape
    r = int(np.ceil(4.0 * sig_maj)) + 1
    cx, cy = int(np.floor(x)), int(np.floor(y))
    x0, x1 = max(cx - r, 0), min(cx + r + 1, w)
    y0, y1 = max(cy - r, 0), min(cy + r + 1, h)
    if x0 >= x1 or y0 >= y1:
        return
    dx = (np.arange(x0, x1) + 0.5 - x)[None, :]
    dy = (np.arange(y0, y1) + 0.5 - y)[:, None]
    c, s = np.cos(theta), np.sin(theta)
    u = dx * c + dy * s
    v = -dx * s + dy * c
    img[y0:y1, x0:x1] += peak * np.exp(-0.5 * ((u / sig_maj) ** 2 + (v / sig_min) ** 2))


def _ellipse_halfwidths(a, b, theta):
    """Half-width and half-height of the bounding box of an ellipse with semi-axes a, b."""
    c, s = np.cos(theta), np.sin(theta)
    return np.sqrt((a * c) ** 2 + (b * s) ** 2), np.sqrt((a * s) ** 2 + (b * c) ** 2)


def _correlated_noise(rng, shape, rms, beam_sigma):
    """White noise smoothed by the beam and rescaled to ``rms``: noise correlated on the
    beam scale, as in a restored interferometric image."""
    from scipy.ndimage import gaussian_filter  # imported here: keeps `import astrodet.data` fast

    white = rng.standard_normal(shape)
    # a unit-sum Gaussian of width s divides the white-noise rms by 2 sqrt(pi) s
    return gaussian_filter(white, beam_sigma, mode="wrap") * (
        rms * 2.0 * np.sqrt(np.pi) * beam_sigma
    )


def _power_law(rng, n, lo, hi, index):
    """``n`` draws from p(s) ~ s**-index on [lo, hi] (inverse CDF)."""
    u = rng.random(n)
    if abs(index - 1.0) < 1e-9:
        return lo * (hi / lo) ** u
    a = 1.0 - index
    return (lo**a + u * (hi**a - lo**a)) ** (1.0 / a)


def _clip_box(x0, y0, x1, y1, w, h):
    return max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h))


# --------------------------------------------------------------------------- radio fields
def make_radio_field(
    rng: np.random.Generator,
    *,
    size: int = 256,
    beam_fwhm: float = 5.0,
    noise_rms: float = 5e-6,
    mean_compact: float = 20.0,
    mean_extended: float = 1.5,
    snr_range: tuple[float, float] = (5.0, 300.0),
    snr_index: float = 1.8,
) -> tuple[np.ndarray, list[dict], dict]:
    """One MGCLS-like radio field.

    Args:
        rng: the random generator (the only source of randomness).
        size: image side in pixels.
        beam_fwhm: restoring beam FWHM in pixels.
        noise_rms: rms of the (beam-correlated) noise, Jy/beam.
        mean_compact: Poisson mean of the number of compact sources (at least one is drawn).
        mean_extended: Poisson mean of the number of unlabelled FR-I/FR-II doubles.
        snr_range: peak signal-to-noise range of the compact sources.
        snr_index: power-law index of the SNR distribution (p(snr) ~ snr**-index).

    Returns:
        (image HxW float32, annotations in Detectron2 form with ``bbox`` XYWH_ABS, ``category_id``
        0, plus ``snr`` and ``peak``, info dict with ``snr`` of every compact source and
        ``n_extended``).
    """
    img = np.zeros((size, size), np.float64)
    sig_b = beam_fwhm * _FWHM_TO_SIGMA
    n_c = max(1, int(rng.poisson(mean_compact)))
    snr = _power_law(rng, n_c, snr_range[0], snr_range[1], snr_index)
    xs = rng.uniform(2.0, size - 2.0, n_c)
    ys = rng.uniform(2.0, size - 2.0, n_c)
    maj = beam_fwhm * rng.uniform(1.0, 1.4, n_c)
    mino = beam_fwhm * rng.uniform(1.0, 1.0 + (maj / beam_fwhm - 1.0))
    theta = rng.uniform(0.0, np.pi, n_c)
    annotations = []
    for i in range(n_c):
        peak = snr[i] * noise_rms
        _add_gaussian(
            img, xs[i], ys[i], peak, maj[i] * _FWHM_TO_SIGMA, mino[i] * _FWHM_TO_SIGMA, theta[i]
        )
        hx, hy = _ellipse_halfwidths(maj[i] / 2.0, mino[i] / 2.0, theta[i])
        x0, y0, x1, y1 = _clip_box(xs[i] - hx, ys[i] - hy, xs[i] + hx, ys[i] + hy, size, size)
        annotations.append(
            {
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": 0,
                "snr": float(snr[i]),
                "peak": float(peak),
            }
        )
    n_e = int(rng.poisson(mean_extended))
    for _ in range(n_e):
        _add_double(img, rng, size=size, sig_b=sig_b, noise_rms=noise_rms)
    img += _correlated_noise(rng, img.shape, noise_rms, sig_b)
    info = {"snr": snr.tolist(), "n_extended": n_e}
    return img.astype(np.float32), annotations, info


def _add_double(img, rng, *, size, sig_b, noise_rms):
    """An FR-I (core-brightened plumes) or FR-II (edge-brightened hotspots) double."""
    cx, cy = rng.uniform(0.1 * size, 0.9 * size, 2)
    phi = rng.uniform(0.0, np.pi)
    half = rng.uniform(10.0, 35.0)
    bend = rng.normal(0.0, 0.25)
    for side in (-1.0, 1.0):
        ang = phi + (bend if side > 0 else -bend) * (rng.random() < 0.5)
        ux, uy = side * np.cos(ang), side * np.sin(ang)
        if rng.random() < 0.5:  # FR-II: bright hotspot at the end, diffuse lobe behind it
            hs = rng.uniform(20.0, 150.0) * noise_rms
            _add_gaussian(img, cx + half * ux, cy + half * uy, hs, sig_b, sig_b, 0.0)
            lobe = half * 0.8
            _add_gaussian(
                img,
                cx + lobe * ux,
                cy + lobe * uy,
                hs * rng.uniform(0.1, 0.3),
                sig_b * rng.uniform(2.5, 4.0),
                sig_b * rng.uniform(1.2, 2.0),
                ang,
            )
        else:  # FR-I: jets fading and widening away from the core
            n = 5
            base = rng.uniform(15.0, 80.0) * noise_rms
            for k in range(1, n + 1):
                t = half * k / n
                _add_gaussian(
                    img,
                    cx + t * ux,
                    cy + t * uy,
                    base * (1.0 - 0.8 * k / n),
                    sig_b * (1.0 + 0.5 * k),
                    sig_b * (1.0 + 0.25 * k),
                    ang,
                )
    core = rng.uniform(3.0, 40.0) * noise_rms
    _add_gaussian(img, cx, cy, core, sig_b, sig_b, 0.0)


# --------------------------------------------------------------------------- RGZ cutouts
# (islands, peaks per island) for each class
_RGZ_LAYOUT = {
    "1C_1P": (1,),
    "1C_2P": (2,),
    "1C_3P": (3,),
    "2C_2P": (1, 1),
    "2C_3P": (2, 1),
    "3C_3P": (1, 1, 1),
}


def make_rgz_cutout(
    rng: np.random.Generator,
    label: int,
    *,
    size: int = 132,
    beam_fwhm: float = 4.0,
    noise_rms: float = 1.5e-4,
    snr_range: tuple[float, float] = (15.0, 150.0),
    box_snr: float = 3.0,
) -> tuple[np.ndarray, list[float], dict]:
    """One RGZ-like cutout holding a single radio galaxy of class ``RGZ_CLASSES[label]``.

    Peaks inside one island are 3-4 beam sigmas apart with amplitude ratios above 0.6, so
    they stay separate maxima yet joined above the 3-sigma contour; islands are separated
    by more than the sum of their 3-sigma extents plus a gap.

    Args:
        rng: the random generator.
        label: index into :data:`RGZ_CLASSES`.
        size: image side in pixels.
        beam_fwhm: beam FWHM in pixels.
        noise_rms: rms of the correlated noise.
        snr_range: range of the brightest peak's signal-to-noise (log-uniform).
        box_snr: the box encloses each Gaussian down to this multiple of the noise.

    Returns:
        (image HxW float32, box [x, y, w, h] XYWH_ABS, info with ``peaks`` (x, y) list and
        ``n_components``).
    """
    layout = _RGZ_LAYOUT[RGZ_CLASSES[label]]
    sig_b = beam_fwhm * _FWHM_TO_SIGMA
    phi = rng.uniform(0.0, 2 * np.pi)
    axis = np.array([np.cos(phi), np.sin(phi)])
    primary = noise_rms * float(np.exp(rng.uniform(*np.log(snr_range))))
    # build each island along the axis, in island-local offsets
    islands = []
    for n_peaks in layout:
        spacing = sig_b * rng.uniform(3.0, 3.6) * (1.3 if n_peaks > 1 else 1.0)
        offsets = (np.arange(n_peaks) - (n_peaks - 1) / 2.0) * spacing
        gauss = []
        for off in offsets:
            amp = primary * rng.uniform(0.6, 1.0)
            smaj = sig_b * rng.uniform(1.0, 1.3)
            smin = sig_b * rng.uniform(1.0, min(1.15, smaj / sig_b))
            gauss.append((off, amp, smaj, smin))
        # 3-sigma half-extent of the island along the axis
        ext = max(
            abs(o) + s * np.sqrt(2.0 * np.log(max(a / (box_snr * noise_rms), 1.0)))
            for o, a, s, _ in gauss
        )
        islands.append((gauss, ext))
    # place islands along the axis with gaps
    centres = [0.0]
    for i in range(1, len(islands)):
        gap = rng.uniform(4.0, 14.0)
        centres.append(centres[-1] + islands[i - 1][1] + islands[i][1] + gap)
    centres = np.array(centres) - (centres[0] + centres[-1]) / 2.0
    span = max(abs(c) + isl[1] for c, isl in zip(centres, islands))
    limit = size / 2.0 - 3.0
    jitter = max(limit - span, 0.0)
    cx, cy = size / 2.0 + rng.uniform(-1.0, 1.0, 2) * min(jitter, 10.0)
    img = np.zeros((size, size), np.float64)
    x0 = y0 = np.inf
    x1 = y1 = -np.inf
    peaks = []
    for c, (gauss, _) in zip(centres, islands):
        for off, amp, smaj, smin in gauss:
            px, py = np.array([cx, cy]) + (c + off) * axis
            _add_gaussian(img, px, py, amp, smaj, smin, phi)
            peaks.append((float(px), float(py)))
            k = np.sqrt(2.0 * np.log(max(amp / (box_snr * noise_rms), 1.0)))
            k = max(k, np.sqrt(2.0 * np.log(2.0)))  # never smaller than the FWHM ellipse
            hx, hy = _ellipse_halfwidths(k * smaj, k * smin, phi)
            x0, x1 = min(x0, px - hx), max(x1, px + hx)
            y0, y1 = min(y0, py - hy), max(y1, py + hy)
    img += _correlated_noise(rng, img.shape, noise_rms, sig_b)
    x0, y0, x1, y1 = _clip_box(x0, y0, x1, y1, size, size)
    info = {"peaks": peaks, "n_components": len(layout), "class": RGZ_CLASSES[label]}
    return img.astype(np.float32), [x0, y0, x1 - x0, y1 - y0], info


# --------------------------------------------------------------------------- optical galaxies
def _sersic(r, re, n):
    b = 2.0 * n - 1.0 / 3.0
    return np.exp(-b * ((r / re) ** (1.0 / n) - 1.0))


def make_galaxy(rng: np.random.Generator, label: int, *, size: int = 64) -> np.ndarray:
    """One GalaxyMNIST-like galaxy of class ``GALAXY_CLASSES[label]``.

    Args:
        rng: the random generator.
        label: index into :data:`GALAXY_CLASSES`.
        size: image side in pixels.

    Returns:
        HxWx3 uint8 RGB image.
    """
    cls = GALAXY_CLASSES[label]
    c = size / 2.0 + rng.normal(0.0, 1.0, 2)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    dx, dy = xx - c[0], yy - c[1]
    theta = rng.uniform(0.0, np.pi)
    ct, st = np.cos(theta), np.sin(theta)
    u = dx * ct + dy * st  # along the major axis
    v = -dx * st + dy * ct

    def ell_r(q):
        return np.sqrt(u**2 + (v / q) ** 2) + 1e-3

    red = np.array([1.0, 0.78, 0.55])
    blue = np.array([0.65, 0.8, 1.0])
    if cls == "smooth_round":
        q = rng.uniform(0.75, 1.0)
        light = _sersic(ell_r(q), rng.uniform(3.0, 7.0), rng.uniform(2.0, 4.0))[..., None] * red
    elif cls == "smooth_cigar":
        q = rng.uniform(0.28, 0.5)
        light = _sersic(ell_r(q), rng.uniform(5.0, 10.0), rng.uniform(1.0, 2.5))[..., None] * red
    elif cls == "edge_on_disk":
        q = rng.uniform(0.08, 0.18)
        disc = _sersic(ell_r(q), rng.uniform(8.0, 14.0), 1.0)
        bulge = 0.6 * _sersic(ell_r(0.7), rng.uniform(1.5, 2.5), 2.0)
        # dust lane: an absorbing band along the major axis, deeper in blue
        width = rng.uniform(0.5, 1.0)
        lane = np.exp(-0.5 * ((v - rng.normal(0.0, 0.3)) / width) ** 2)
        depth = rng.uniform(0.5, 0.9)
        absorb = 1.0 - depth * lane[..., None] * np.array([0.8, 0.9, 1.0])
        light = (disc[..., None] * 0.5 * (red + blue) + bulge[..., None] * red) * absorb
    else:  # unbarred_spiral
        q = rng.uniform(0.6, 1.0)
        r = ell_r(q)
        disc = _sersic(r, rng.uniform(6.0, 10.0), 1.0)
        phi = np.arctan2(v / q, u)
        pitch = np.deg2rad(rng.uniform(12.0, 30.0))
        arms = 1.0 + rng.uniform(0.5, 0.9) * np.cos(
            2.0 * (phi - np.log(r + 1.0) / np.tan(pitch)) + rng.uniform(0, 2 * np.pi)
        )
        bulge = 0.8 * _sersic(ell_r(0.8), rng.uniform(1.5, 3.0), 2.5)
        light = (disc * arms)[..., None] * blue + bulge[..., None] * red
    light = light * rng.uniform(0.6, 1.2)
    # background stars: point sources, blurred by the PSF below
    for _ in range(int(rng.poisson(0.8))):
        sx, sy = rng.integers(0, size, 2)
        light[sy, sx] += rng.uniform(2.0, 15.0) * rng.uniform(0.8, 1.0, 3)
    from scipy.ndimage import gaussian_filter

    psf = rng.uniform(0.8, 1.3)
    light = gaussian_filter(light, (psf, psf, 0.0))
    light += rng.normal(0.0, rng.uniform(0.005, 0.015), light.shape)
    alpha = 0.08  # asinh softening, like survey colour images
    out = np.arcsinh(np.clip(light, 0.0, None) / alpha) / np.arcsinh(1.5 / alpha)
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------- batches
def _balanced_labels(rng, n, k):
    labels = np.arange(n) % k
    rng.shuffle(labels)
    return labels


def generate_sky(n: int, *, seed: int = 0, **field_kwargs) -> tuple[list[np.ndarray], list[dict]]:
    """``n`` radio fields (see :func:`make_radio_field`), seeded.

    Returns:
        (images, dicts) where each dict has ``height``, ``width``, ``image_id`` (0..n-1),
        ``annotations`` and ``info``.
    """
    rng = np.random.default_rng(seed)
    images, dicts = [], []
    for i in range(n):
        img, anns, info = make_radio_field(rng, **field_kwargs)
        images.append(img)
        h, w = img.shape
        dicts.append({"height": h, "width": w, "image_id": i, "annotations": anns, "info": info})
    return images, dicts


def generate_rgz(n: int, *, seed: int = 0, **cutout_kwargs) -> tuple[list[np.ndarray], list[dict]]:
    """``n`` RGZ-like cutouts with balanced classes (see :func:`make_rgz_cutout`), seeded."""
    rng = np.random.default_rng(seed)
    labels = _balanced_labels(rng, n, len(RGZ_CLASSES))
    images, dicts = [], []
    for i, lab in enumerate(labels):
        img, box, info = make_rgz_cutout(rng, int(lab), **cutout_kwargs)
        images.append(img)
        h, w = img.shape
        ann = {"bbox": box, "bbox_mode": BoxMode.XYWH_ABS, "category_id": int(lab)}
        dicts.append({"height": h, "width": w, "image_id": i, "annotations": [ann], "info": info})
    return images, dicts


def generate_galaxies(n: int, *, seed: int = 0, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``n`` galaxies with balanced classes (see :func:`make_galaxy`), seeded.

    Returns:
        (images N x size x size x 3 uint8, labels N int64).
    """
    rng = np.random.default_rng(seed)
    labels = _balanced_labels(rng, n, len(GALAXY_CLASSES)).astype(np.int64)
    images = np.empty((n, size, size, 3), np.uint8)
    for i, lab in enumerate(labels):
        images[i] = make_galaxy(rng, int(lab), size=size)
    return images, labels


# --------------------------------------------------------------------------- writing
def _split_seed(seed, kind, split):
    # distinct, stable streams per kind and split
    return [int(seed), KINDS.index(kind), 0 if split == "train" else 1]


def _write_detection(folder: Path, images, dicts, thing_classes):
    from astrodet.data.coco import save_coco_json

    img_dir = folder / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for img, d in zip(images, dicts):
        path = img_dir / f"{d['image_id']:06d}.npy"
        np.save(path, img)
        anns = [{k: a[k] for k in ("bbox", "bbox_mode", "category_id")} for a in d["annotations"]]
        # relative to image_root, so the folder can be moved or renamed
        out.append({**{k: v for k, v in d.items() if k != "info"}, "file_name": path.name})
        out[-1]["annotations"] = anns
    save_coco_json(folder / "annotations.json", out, thing_classes)


def _write_galaxies(folder: Path, images, labels):
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "images.npy", images)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", "label", "class_name"])
    for i, lab in enumerate(labels):
        w.writerow([i, int(lab), GALAXY_CLASSES[int(lab)]])
    atomic_write_text(folder / "labels.csv", buf.getvalue())


def _write_kind(folder: Path, kind: str, n_train: int, n_test: int, seed: int):
    for split, n in (("train", n_train), ("test", n_test)):
        s = _split_seed(seed, kind, split)
        if kind == "sky":
            _write_detection(folder / split, *generate_sky(n, seed=s), SKY_CLASSES)
        elif kind == "rgz":
            _write_detection(folder / split, *generate_rgz(n, seed=s), RGZ_CLASSES)
        else:
            _write_galaxies(folder / split, *generate_galaxies(n, seed=s))


def _marker(kind, n_train, n_test, seed):
    return {
        "kind": kind,
        "n_train": int(n_train),
        "n_test": int(n_test),
        "seed": int(seed),
        "version": GENERATOR_VERSION,
    }


def _check_kind(kind):
    if kind not in KINDS:
        raise ValueError(f"unknown synthetic kind {kind!r}; choose one of {list(KINDS)}")


def write_synthetic(
    out_dir: str | os.PathLike,
    *,
    kind: str,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
) -> Path:
    """Generate one kind into ``out_dir/<kind>/{train,test}`` atomically.

    The set is written to a temporary folder and renamed into place together with a
    marker file, so a killed run never leaves a half-written set that looks complete.
    An existing folder for the kind is replaced.

    Args:
        out_dir: the parent folder.
        kind: ``"sky"``, ``"rgz"`` or ``"galaxies"``.
        n_train, n_test: number of images (default :data:`DEFAULT_SIZES`).
        seed: the seed; the same seed gives the same files.

    Returns:
        the kind's folder.
    """
    _check_kind(kind)
    d_train, d_test = DEFAULT_SIZES[kind]
    n_train = d_train if n_train is None else int(n_train)
    n_test = d_test if n_test is None else int(n_test)
    if n_train < 0 or n_test < 0:
        raise ValueError(f"image counts must be >= 0, got n_train={n_train}, n_test={n_test}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / kind
    tmp = out_dir / f".{kind}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    t0 = time.perf_counter()
    try:
        _write_kind(tmp, kind, n_train, n_test, seed)
        atomic_write_json(tmp / _MARKER, _marker(kind, n_train, n_test, seed))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info(
        "synthetic %s: %d train + %d test written to %s in %.1f s",
        kind,
        n_train,
        n_test,
        final,
        time.perf_counter() - t0,
    )
    return final


def _is_complete(folder: Path, marker: dict) -> bool:
    try:
        return json.loads((folder / _MARKER).read_text()) == marker
    except (OSError, ValueError):
        return False


def ensure_synthetic(
    kind: str,
    *,
    root: str | os.PathLike | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
) -> Path:
    """The folder of a synthetic set, generating it on first use.

    A set whose marker file is missing or records other settings (a half-written folder,
    another seed, an older generator) is regenerated.

    Args:
        kind: ``"sky"``, ``"rgz"`` or ``"galaxies"``.
        root: parent folder, default ``datasets_root()/synthetic``.
        n_train, n_test: sizes (default :data:`DEFAULT_SIZES`).
        seed: the seed.
    """
    _check_kind(kind)
    root = Path(root) if root is not None else datasets_root() / "synthetic"
    d_train, d_test = DEFAULT_SIZES[kind]
    marker = _marker(
        kind, d_train if n_train is None else n_train, d_test if n_test is None else n_test, seed
    )
    folder = root / kind
    if _is_complete(folder, marker):
        return folder
    logger.info("generating synthetic %s set into %s (first use)", kind, folder)
    try:
        return write_synthetic(
            root, kind=kind, n_train=marker["n_train"], n_test=marker["n_test"], seed=seed
        )
    except OSError:
        # another process may have finished the same set meanwhile
        if _is_complete(folder, marker):
            return folder
        raise


def load_synthetic(
    kind: str, split: str, *, root: str | os.PathLike | None = None, **kwargs
) -> list[dict]:
    """Dataset dicts of a synthetic set (generated on first use).

    Detection kinds give Detectron2 dicts (via :func:`astrodet.data.coco.load_coco_json`);
    ``galaxies`` gives classification dicts ``{"image_id", "label", "image"}`` with the image
    float32 HWC in [0, 1].

    Args:
        kind: ``"sky"``, ``"rgz"`` or ``"galaxies"``.
        split: ``"train"`` or ``"test"``.
        root: parent folder, default ``datasets_root()/synthetic``.
        kwargs: passed to :func:`ensure_synthetic` (n_train, n_test, seed).
    """
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    folder = ensure_synthetic(kind, root=root, **kwargs) / split
    if kind == "galaxies":
        images = np.load(folder / "images.npy")
        with open(folder / "labels.csv", newline="") as f:
            labels = [int(r["label"]) for r in csv.DictReader(f)]
        if len(labels) != len(images):
            raise ValueError(
                f"{folder}: {len(images)} images but {len(labels)} labels in labels.csv"
            )
        return [
            {"image_id": i, "label": lab, "image": images[i].astype(np.float32) / 255.0}
            for i, lab in enumerate(labels)
        ]
    from astrodet.data.coco import load_coco_json

    return load_coco_json(folder / "annotations.json", folder / "images")


def _default_kind(json_file: str | os.PathLike) -> str | None:
    """The detection kind whose default place (``datasets_root()/synthetic/<kind>/<split>``)
    holds ``json_file``, else None."""
    path = Path(json_file).expanduser().resolve()
    root = (datasets_root() / "synthetic").resolve()
    for kind in ("sky", "rgz"):
        if path in {root / kind / split / "annotations.json" for split in ("train", "test")}:
            return kind
    return None


def load_synthetic_coco(
    json_file: str | os.PathLike,
    image_root: str | os.PathLike,
    dataset_name: str | None = None,
    **kwargs,
) -> list[dict]:
    """:func:`~astrodet.data.coco.load_coco_json` that generates a simulated set first when
    ``json_file`` is its default place and the set is not there yet.

    The synthetic configs read their data through this, so they take ``json_file`` and
    ``image_root`` like every other detection config: left at the default they train on the
    simulated sky (made on first use, as :func:`ensure_synthetic` does); pointed at another
    COCO set they read that set and generate nothing.

    Args:
        json_file, image_root, dataset_name: as for ``load_coco_json``.
        kwargs: passed to ``load_coco_json`` (``return_summary``).
    """
    from astrodet.data.coco import load_coco_json

    kind = _default_kind(json_file)
    if kind is not None:
        ensure_synthetic(kind)
    return load_coco_json(json_file, image_root, dataset_name, **kwargs)


# --------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m astrodet.data.synthetic",
        description="Write simulated radio fields, RGZ-like cutouts and optical galaxies "
        "as COCO json + .npy arrays (galaxies: images.npy + labels.csv).",
    )
    parser.add_argument("--out", required=True, help="output folder; one subfolder per kind")
    parser.add_argument("--kind", choices=[*KINDS, "all"], default="all")
    parser.add_argument("--n-train", type=int, default=None, help="default: per kind")
    parser.add_argument("--n-test", type=int, default=None, help="default: per kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing kind folders in --out"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    kinds = list(KINDS) if args.kind == "all" else [args.kind]
    out = Path(args.out)
    existing = [k for k in kinds if (out / k).exists() and any((out / k).iterdir())]
    if existing and not args.overwrite:
        print(
            f"error: {', '.join(str(out / k) for k in existing)} exists and is not empty; "
            "pass --overwrite to replace it",
            file=sys.stderr,
        )
        return 2
    for kind in kinds:
        write_synthetic(out, kind=kind, n_train=args.n_train, n_test=args.n_test, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
