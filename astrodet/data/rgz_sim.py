"""Simulated radio galaxies in real FIRST noise: training data that teaches association.

A radio galaxy is drawn as a sum of elliptical Gaussians (:func:`draw_radio_galaxy`), as seen
through FIRST's 5.4" beam (3 px at 1.8"/px):

* ``compact``: one Gaussian up to 1.5 beams, or a close pair (a compact double);
* ``fr1``: a core and two jets of Gaussians fading and widening outwards;
* ``fr2`` / ``fr2_core``: two lobes, each a compact hotspot at its outer end and diffuse
  emission trailing back towards the centre, without / with a compact core;
* ``bent``: a core and two jets bent to one side (wide- and narrow-angle tails).

Its components and peaks are measured on its own noiseless model (:func:`describe_source`):
the components are the 8-connected islands above ``nsigma`` x rms (each placed at its
brightest pixel, as RGZ places a component at its catalogue position), the peaks the
model's local maxima above that level within a beam's radius; the class is the RGZ class of
these counts (:func:`rgz_class`). So the truth is exact: which Gaussians, and which
components, make one physical source.

Each image (:func:`simulate_image`) is a ``tile`` x ``tile`` window of a real FIRST image
times -1 (its own sources become holes: no unlabelled positive source is left, and the
injected sources keep clear of the holes; windows where the field dips below -5 rms, a
sidelobe that would be a positive source once inverted, are not used), with one radio
galaxy near the middle (extended ones drawn most, as on the real images) and, in half the
images, one or two unrelated neighbours at the galaxy's own scale (a quarter to one and a
half of its extent from it, at least a beam clear of its emission), so that "near each
other" does not mean "one source". A share of the images (``clipped_fraction``) is made as
the 8-bit PNGs of the real set are: the noise below 3 rms cut away, scaled to the peak, 255
levels.

Boxes follow the real set's rule (:func:`astrodet.data.rgz_consensus.consensus_box` on the
image's own emission), so real and simulated labels mean the same thing. The noise comes
from the real FIRST images (:func:`astrodet.sky.labels.first_items`) that share no sky with
any test tile of ``rgz_first_det``.

The registered set ``rgz_first_sim_train`` is built on first use under
``datasets_root()/rgz_first_sim`` (seeded; a set made with other settings is rebuilt):
``train/annotations.json`` (COCO, six RGZ classes; images carry ``clipped``,
``noise_image``, ``origin``; annotations carry ``sim``: ``morphology``, ``components``,
``n_peaks``, ``neighbour``), ``train/images/*.npy`` (north up, as ``rgz_first_det``) and
``summary.json`` (counts per class and morphology).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import shutil
import tempfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np

from astrodet.data.catalog import DatasetCatalog, MetadataCatalog
from astrodet.data.rgz import RGZ_CLASSES
from astrodet.data.rgz_consensus import FIRST_BEAM_PX, consensus_box, emission_regions
from astrodet.utils import atomic_write_json, datasets_root, real_data_root

logger = logging.getLogger(__name__)

__all__ = [
    "DATASET",
    "MORPHOLOGIES",
    "build_rgz_sim",
    "describe_source",
    "draw_radio_galaxy",
    "load_rgz_first_training",
    "load_rgz_sim_coco",
    "rgz_class",
    "rgz_sim_root",
    "simulate_image",
]

#: Registered name (``<DATASET>_train``) and folder under datasets_root().
DATASET = "rgz_first_sim"
MORPHOLOGIES = ("compact", "fr1", "fr2", "fr2_core", "bent")
#: Build settings of the registered set; a set made with others is rebuilt.
DEFAULTS = {"n_images": 600, "tile": 100, "nsigma": 3.0, "clipped_fraction": 0.5, "seed": 0}
_VERSION = 3
# most RGZ sources on these FIRST images are extended (the images were cut around radio
# galaxies): compact galaxies are drawn least, and most neighbours are compact
_MORPHOLOGY_WEIGHTS = (0.1, 0.2, 0.3, 0.2, 0.2)
# the brightest peak of a galaxy, in rms: RGZ's sources are FIRST catalogue sources (> 5
# sigma), most of them well above it
_SNR_RANGE = (8.0, 300.0)


# ------------------------------------------------------------------------------ classes
def rgz_class(n_components: int, n_peaks: int) -> str:
    """The RGZ class of a source with ``n_components`` components and ``n_peaks`` peaks.

    RGZ's six classes stop at three: three or more components are ``3C_3P``, one component
    with three or more peaks ``1C_3P``; a source has at least one peak per component.

    Raises:
        ValueError: fewer than one component.
    """
    if n_components < 1:
        raise ValueError(f"a source has at least one component, got {n_components}")
    c = min(int(n_components), 3)
    p = min(max(int(n_peaks), c), 3)
    return f"{c}C_{p}P"


# ------------------------------------------------------------------------------ drawing
def _gauss(x, y, peak, maj, mn, pa, *, beam):
    """One Gaussian as seen through a circular beam: intrinsic FWHM ``maj``/``mn`` (pixels)
    widened by the beam in quadrature."""
    return (
        float(x),
        float(y),
        float(peak),
        math.hypot(maj, beam),
        math.hypot(mn, beam),
        float(pa) % 180.0,
    )


def _pa(dx: float, dy: float) -> float:
    """Position angle (degrees from +y towards -x) of the direction (dx, dy)."""
    return math.degrees(math.atan2(-dx, dy))


def _chain(rng, points, peaks, widths, *, beam) -> list[tuple]:
    """Gaussians along a path, each elongated along it."""
    out = []
    for k, ((x, y), p, w) in enumerate(zip(points, peaks, widths)):
        j = min(k + 1, len(points) - 1)
        i = max(k - 1, 0)
        dx, dy = points[j][0] - points[i][0], points[j][1] - points[i][1]
        step = math.hypot(dx, dy) / max(j - i, 1)
        out.append(_gauss(x, y, p, max(1.3 * step, w), w, _pa(dx, dy), beam=beam))
    return out


def draw_radio_galaxy(
    rng: np.random.Generator,
    *,
    morphology: str,
    beam_px: float = FIRST_BEAM_PX,
    peak: float = 1.0,
    max_extent_px: float = 80.0,
) -> dict:
    """A radio galaxy as a list of Gaussians, centred on (0, 0).

    Args:
        rng: the random generator.
        morphology: one of :data:`MORPHOLOGIES`.
        beam_px: beam FWHM in pixels (the Gaussians are seen through it).
        peak: the brightest Gaussian's peak (the image's units).
        max_extent_px: the galaxy's largest size, end to end.

    Returns:
        ``{"morphology", "x", "y", "peak", "maj", "min", "pa"}`` (arrays; pixels, FWHM,
        degrees from +y towards -x), seen through the beam.
    """
    if morphology not in MORPHOLOGIES:
        raise ValueError(f"morphology must be one of {MORPHOLOGIES}, got {morphology!r}")
    b = beam_px
    half = 0.5 * max_extent_px
    theta = rng.uniform(0.0, 2.0 * math.pi)
    u = np.array([math.cos(theta), math.sin(theta)])
    g: list[tuple] = []
    if morphology == "compact":
        if rng.random() < 0.7:
            size = rng.uniform(0.0, 1.5) * b
            g.append(
                _gauss(0, 0, peak, size, size * rng.uniform(0.3, 1.0), rng.uniform(0, 180), beam=b)
            )
        else:  # a compact double, one to three beams apart
            sep = rng.uniform(1.0, 3.0) * b
            for s, p in ((0.5, 1.0), (-0.5, rng.uniform(0.3, 1.0))):
                size = rng.uniform(0.0, 0.8) * b
                g.append(_gauss(*(s * sep * u), p * peak, size, size, 0.0, beam=b))
    elif morphology in ("fr1", "bent"):
        g.append(_gauss(0, 0, peak, rng.uniform(0, 0.5) * b, rng.uniform(0, 0.5) * b, 0.0, beam=b))
        length = min(rng.uniform(3.0, 12.0) * b, half)
        tail = u if morphology == "bent" else None
        for side in (1.0, -1.0):
            n = int(rng.integers(3, 7))
            step = length * rng.uniform(0.8, 1.2) / n
            if morphology == "bent":
                # jets leave the core at up to 90 degrees from the tail and turn into it
                start = theta + side * rng.uniform(0.5, 1.6)
                bend = -side * rng.uniform(0.15, 0.45)
                angles = [start + bend * k for k in range(n)]
            else:
                angle = theta + (0.0 if side > 0 else math.pi) + rng.normal(0.0, 0.2)
                angles = [angle + rng.normal(0.0, 0.05) * k for k in range(n)]
            pts, x, y = [], 0.0, 0.0
            for a in angles:
                if tail is not None and abs(math.remainder(a - theta, 2 * math.pi)) < 0.05:
                    a = theta
                x, y = x + step * math.cos(a), y + step * math.sin(a)
                pts.append((x, y))
            first = peak * rng.uniform(0.15, 0.6)
            fade = np.linspace(1.0, rng.uniform(0.2, 0.6), n)
            widths = np.linspace(0.7, rng.uniform(1.5, 2.5), n) * b
            g += _chain(rng, pts, first * fade, widths, beam=b)
    else:  # fr2, fr2_core: hotspots at the ends of the lobes
        dist = min(rng.uniform(3.0, 12.0) * b, half - b)
        hot = []
        for side in (1.0, -1.0):
            angle = theta + (0.0 if side > 0 else math.pi) + rng.normal(0.0, 0.15)
            d = dist * rng.uniform(0.75, 1.0)
            v = np.array([math.cos(angle), math.sin(angle)])
            p = peak * (1.0 if side > 0 else rng.uniform(0.3, 1.0))
            size = rng.uniform(0.0, 0.8) * b
            hot.append(_gauss(*(d * v), p, size, size * rng.uniform(0.5, 1.0), 0.0, beam=b))
            # diffuse lobe trailing back towards the core
            for k in range(int(rng.integers(1, 3))):
                back = d - rng.uniform(0.8, 2.5) * b * (k + 1)
                width = rng.uniform(1.5, 3.5) * b
                g.append(
                    _gauss(
                        *(max(back, 1.5 * b) * v),
                        p * rng.uniform(0.15, 0.5),
                        width,
                        width * rng.uniform(0.5, 1.0),
                        _pa(*v),
                        beam=b,
                    )
                )
        g = hot + g
        if morphology == "fr2_core":
            g.append(_gauss(0, 0, peak * rng.uniform(0.1, 0.8), 0.0, 0.0, 0.0, beam=b))
    cols = np.asarray(g, float).reshape(-1, 6)
    return {
        "morphology": morphology,
        **{k: cols[:, i] for i, k in enumerate(("x", "y", "peak", "maj", "min", "pa"))},
    }


def _shifted(galaxy: dict, dx: float, dy: float) -> dict:
    return {**galaxy, "x": galaxy["x"] + dx, "y": galaxy["y"] + dy}


def describe_source(
    galaxy: dict,
    shape: tuple[int, int],
    *,
    rms: float,
    nsigma: float = DEFAULTS["nsigma"],
    beam_px: float = FIRST_BEAM_PX,
) -> dict:
    """A source's noiseless model and what RGZ would count on it.

    Args:
        galaxy: Gaussians of :func:`draw_radio_galaxy`, in the image's pixel frame.
        shape: ``(ny, nx)`` of the image.
        rms: the image's noise (same units as the peaks).
        nsigma: the emission level of components and peaks, in rms.
        beam_px: beam FWHM in pixels (a peak is the brightest pixel within its radius).

    Returns:
        ``{"model", "mask" (model above the level), "components" (K, 2) x, y of each
        island's brightest pixel, "n_peaks", "class", "extent" (pixels)}``; no component
        when the model never reaches the level.
    """
    from scipy import ndimage

    from astrodet.sky.inject import gaussian_model

    model = gaussian_model(
        shape,
        x=galaxy["x"],
        y=galaxy["y"],
        peak=galaxy["peak"],
        maj=galaxy["maj"],
        min=galaxy["min"],
        pa=galaxy["pa"],
    )
    level = nsigma * rms
    mask = model > level
    islands, n = ndimage.label(mask, structure=np.ones((3, 3), int))
    comps = []
    for k in range(1, n + 1):
        flat = np.where(islands == k, model, -np.inf)
        y, x = np.unravel_index(int(np.argmax(flat)), shape)
        comps.append((float(x), float(y)))
    r = max(1, int(round(beam_px)))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    footprint = xx**2 + yy**2 <= r * r
    tops = mask & (model == ndimage.maximum_filter(model, footprint=footprint))
    # a maximum between pixel centres is two or four equal pixels: one peak
    peaks = int(ndimage.label(tops, structure=np.ones((3, 3), int))[1])
    comps = np.asarray(comps, float).reshape(-1, 2)
    extent = 0.0
    if mask.any():
        ys, xs = np.nonzero(mask)
        extent = float(math.hypot(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1))
    return {
        "model": model,
        "mask": mask,
        "components": comps,
        "n_peaks": max(peaks, len(comps)),
        "class": rgz_class(len(comps), peaks) if len(comps) else None,
        "extent": extent,
    }


# ------------------------------------------------------------------------------ images
def _grown(mask: np.ndarray, pixels: float) -> np.ndarray:
    from scipy import ndimage

    if not mask.any():
        return mask
    return ndimage.distance_transform_edt(~mask) <= pixels


def simulate_image(
    noise: np.ndarray,
    *,
    rng: np.random.Generator,
    rms: float,
    avoid: np.ndarray | None = None,
    nsigma: float = DEFAULTS["nsigma"],
    beam_px: float = FIRST_BEAM_PX,
    max_neighbours: int = 2,
    morphology: str | None = None,
    tries: int = 50,
) -> tuple[np.ndarray, list[dict]] | None:
    """One radio galaxy and its unrelated neighbours added to a noise image.

    Args:
        noise: 2-D background (FITS orientation), not changed.
        rng: the random generator.
        rms: the noise's rms (the peaks' S/N are over it).
        avoid: True where no emission may go (the holes of an inverted field).
        nsigma: emission level of components, peaks and sources' footprints, in rms.
        beam_px: beam FWHM in pixels.
        max_neighbours: neighbours drawn: none in half the images, else 1 to this many.
        morphology: the galaxy's (default: drawn from :data:`MORPHOLOGIES`).
        tries: placements tried for each source.

    Returns:
        ``(image, sources)`` with ``sources`` a list of :func:`describe_source` results plus
        ``"galaxy"`` (its Gaussians), ``"morphology"`` and ``"neighbour"``; None when the
        galaxy found no place.
    """
    h, w = noise.shape
    taken = np.zeros((h, w), bool) if avoid is None else np.asarray(avoid, bool).copy()
    margin = beam_px  # a source's emission stays a beam inside the edges
    inner = np.zeros((h, w), bool)
    m = int(math.ceil(margin))
    inner[m : h - m, m : w - m] = True
    sources: list[dict] = []

    def place(galaxy, centres):
        for cx, cy in centres:
            g = _shifted(galaxy, cx, cy)
            d = describe_source(g, (h, w), rms=rms, nsigma=nsigma, beam_px=beam_px)
            if d["class"] is None:
                return None
            foot = _grown(d["mask"], beam_px)
            if (d["mask"] & ~inner).any() or (foot & taken).any():
                continue
            return {**d, "galaxy": g, "foot": foot}
        return None

    kind = morphology or str(rng.choice(MORPHOLOGIES, p=_MORPHOLOGY_WEIGHTS))
    peak = rms * math.exp(rng.uniform(*np.log(_SNR_RANGE)))
    galaxy = draw_radio_galaxy(
        rng, morphology=kind, beam_px=beam_px, peak=peak, max_extent_px=0.8 * min(h, w)
    )
    spread = 0.15 * min(h, w)
    centres = [((w - 1) / 2.0, (h - 1) / 2.0)] + [
        ((w - 1) / 2.0 + rng.uniform(-spread, spread), (h - 1) / 2.0 + rng.uniform(-spread, spread))
        for _ in range(tries)
    ]
    main = place(galaxy, centres)
    if main is None:
        return None
    main.update(morphology=kind, neighbour=False)
    sources.append(main)
    taken |= main["foot"]
    centre = main["components"].mean(axis=0)
    scale = max(main["extent"], 4.0 * beam_px)
    n_neighbours = 0 if rng.random() < 0.5 else int(rng.integers(1, max_neighbours + 1))
    for _ in range(n_neighbours):
        nkind = "compact" if rng.random() < 0.5 else str(rng.choice(MORPHOLOGIES))
        npeak = rms * math.exp(rng.uniform(math.log(5.0), math.log(100.0)))
        other = draw_radio_galaxy(
            rng, morphology=nkind, beam_px=beam_px, peak=npeak, max_extent_px=0.5 * scale
        )
        spots = []
        for _ in range(tries):
            r = rng.uniform(0.25, 1.5) * scale
            a = rng.uniform(0.0, 2.0 * math.pi)
            spots.append((centre[0] + r * math.cos(a), centre[1] + r * math.sin(a)))
        found = place(other, spots)
        if found is None:
            continue
        found.update(morphology=nkind, neighbour=True)
        sources.append(found)
        taken |= found["foot"]
    image = np.asarray(noise, np.float64) + sum(s["model"] for s in sources)
    return image.astype(np.float32), sources


def _clip_like_png(image: np.ndarray, rms: float) -> np.ndarray:
    """As the 8-bit PNGs were made: noise below 3 rms cut away, scaled to the peak, 255
    levels."""
    out = np.where(np.nan_to_num(image) > 3.0 * rms, image, 0.0)
    top = float(out.max())
    if top <= 0:
        return np.zeros_like(image, np.float32)
    return (np.round(out / top * 255.0) / 255.0).astype(np.float32)


# ------------------------------------------------------------------------------ the set
def rgz_sim_root() -> Path:
    """Default place of the simulated set: ``datasets_root()/rgz_first_sim``."""
    return datasets_root() / DATASET


def _noise_images(real: Path, exclude: list[dict]) -> list[tuple[str, np.ndarray]]:
    """Real FIRST images (FITS orientation) that share no sky with ``exclude``
    (``{"ra", "dec", "size"}``: the test tiles)."""
    import warnings

    from astropy.io import fits

    from astrodet.sky.labels import _groups, first_items

    items = first_items(real)
    groups = _groups(items + [{**e, "kind": "exclude"} for e in exclude])
    banned = {i for g in groups if any(j >= len(items) for j in g) for i in g if i < len(items)}
    cutouts = None
    out = []
    for i, it in enumerate(items):
        if i in banned:
            continue
        if it["kind"] == "mirabest":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = np.asarray(fits.getdata(it["path"]), np.float32)
            while data.ndim > 2:
                data = data[0]
        else:
            if cutouts is None:
                with np.load(real / "rgz_first" / "first_cutouts_100px_1p8arcsec.npz") as z:
                    cutouts = np.asarray(z["images"])
            data = np.asarray(cutouts[it["index"]], np.float32)
        out.append((it["name"], data))
    return out


def _settings(**kw) -> dict:
    return {**{k: kw[k] for k in DEFAULTS}, "version": _VERSION}


def build_rgz_sim(
    root: str | os.PathLike | None = None,
    *,
    real_data: str | os.PathLike | None = None,
    test_json: str | os.PathLike | None = None,
    n_images: int = DEFAULTS["n_images"],
    tile: int = DEFAULTS["tile"],
    nsigma: float = DEFAULTS["nsigma"],
    clipped_fraction: float = DEFAULTS["clipped_fraction"],
    seed: int = DEFAULTS["seed"],
    overwrite: bool = False,
) -> Path:
    """Make the simulated set (module docstring); a complete set with the same settings is
    kept.

    Args:
        root: output folder (default :func:`rgz_sim_root`).
        real_data: the shared real data (default ``$ASTRODET_REAL_DATA``).
        test_json: the real test split whose sky the noise keeps clear of (default
            ``rgz_first_det``'s, built when missing).
        n_images, tile: images and their side in pixels.
        nsigma: emission level of components, peaks and boxes, in rms.
        clipped_fraction: share of images made as the clipped 8-bit PNGs.
        seed: of the draws.
        overwrite: rebuild a complete set.

    Returns:
        ``root``.
    """
    from astropy.stats import sigma_clipped_stats

    from astrodet.data.coco import save_coco_json
    from astrodet.data.rgz_first import _display, _npy_bytes, build_rgz_first, rgz_first_root
    from astrodet.sky.inject import emission_mask
    from astrodet.utils import atomic_write_bytes

    if n_images < 1 or not 0.0 <= clipped_fraction <= 1.0:
        raise ValueError(
            f"n_images must be >= 1 and clipped_fraction in [0, 1], got {n_images}, "
            f"{clipped_fraction}"
        )
    root = Path(root) if root is not None else rgz_sim_root()
    settings = _settings(
        n_images=n_images, tile=tile, nsigma=nsigma, clipped_fraction=clipped_fraction, seed=seed
    )
    done = root / "summary.json"
    if done.is_file() and not overwrite:
        if json.loads(done.read_text()).get("settings") == settings:
            return root
        logger.info("%s was made with other settings: rebuilding it with %s", root, settings)
    real = Path(real_data) if real_data is not None else real_data_root()
    if test_json is None:
        test_json = build_rgz_first(rgz_first_root(), real_data=real, report=False)
        test_json = Path(test_json) / "test" / "annotations.json"
    tests = [
        {"ra": im["ra"], "dec": im["dec"], "size": im["width"]}
        for im in json.loads(Path(test_json).read_text())["images"]
    ]
    fields = [(n, d) for n, d in _noise_images(real, tests) if min(d.shape) >= tile]
    if not fields:
        raise ValueError(f"no FIRST image under {real} is clear of the test split's sky")
    rng = np.random.default_rng([int(seed), zlib.crc32(DATASET.encode())])
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=_parent(root)))
    try:
        dicts, extras = [], []
        counts = {"class": Counter(), "morphology": Counter(), "neighbours": 0, "clipped": 0}
        attempts = 0
        while len(dicts) < n_images:
            attempts += 1
            if attempts > 20 * n_images:
                raise ValueError(f"only {len(dicts)} of {n_images} images found room")
            name, field = fields[int(rng.integers(len(fields)))]
            y0 = int(rng.integers(0, field.shape[0] - tile + 1))
            x0 = int(rng.integers(0, field.shape[1] - tile + 1))
            window = -np.asarray(field[y0 : y0 + tile, x0 : x0 + tile], np.float64)
            finite = np.isfinite(window)
            if finite.mean() < 0.99:
                continue
            _, bkg, rms = sigma_clipped_stats(window[finite], sigma=3.0, maxiters=10)
            if not rms > 0:
                continue
            window = np.where(finite, window, bkg)
            if np.max(window - bkg) > 5.0 * rms:
                # a negative sidelobe of the field, positive once inverted: an unlabelled
                # source to the model
                continue
            avoid = emission_mask(
                np.abs(window - bkg), background=0.0, rms=rms, beam_pixels=FIRST_BEAM_PX,
                grow_beams=1.0,
            )  # fmt: skip
            made = simulate_image(window, rng=rng, rms=float(rms), avoid=avoid, nsigma=nsigma)
            if made is None:
                continue
            image, sources = made
            clipped = bool(rng.random() < clipped_fraction)
            pixels = _clip_like_png(image - bkg, float(rms)) if clipped else image
            labels = emission_regions(pixels, clipped=clipped, nsigma=nsigma)
            anns, infos = [], []
            for s in sources:
                box = consensus_box(
                    labels=labels, components=s["components"], ang_extent_px=s["extent"]
                )
                box = np.clip(box, 0, tile)
                bbox, comps = _display(box, s["components"], tile)
                anns.append({"bbox": bbox, "category_id": RGZ_CLASSES.index(s["class"])})
                infos.append(
                    {
                        "morphology": s["morphology"],
                        "components": comps,
                        "n_peaks": int(s["n_peaks"]),
                        "neighbour": bool(s["neighbour"]),
                        "gaussians": int(len(s["galaxy"]["x"])),
                    }
                )
                counts["class"][s["class"]] += 1
                counts["morphology"][s["morphology"]] += 1
                counts["neighbours"] += bool(s["neighbour"])
            counts["clipped"] += clipped
            k = len(dicts)
            file_name = f"sim_{k:05d}.npy"
            atomic_write_bytes(tmp / "train" / "images" / file_name, _npy_bytes(pixels))
            dicts.append(
                {
                    "file_name": file_name,
                    "height": tile,
                    "width": tile,
                    "image_id": k,
                    "annotations": anns,
                }
            )
            extras.append(({"clipped": clipped, "noise_image": name, "origin": [x0, y0]}, infos))
        json_file = tmp / "train" / "annotations.json"
        save_coco_json(json_file, dicts, RGZ_CLASSES)
        coco = json.loads(json_file.read_text())
        by_image: dict[int, list] = {}
        for ann in coco["annotations"]:
            by_image.setdefault(ann["image_id"], []).append(ann)
        for img, (extra, infos) in zip(coco["images"], extras):
            img.update(extra)
            for ann, info in zip(by_image.get(img["id"], []), infos):
                ann["sim"] = info
        atomic_write_json(json_file, coco, indent=None)
        summary = {
            "settings": settings,
            "images": len(dicts),
            "noise_images": len(fields),
            "per_class": {c: int(counts["class"][c]) for c in RGZ_CLASSES},
            "per_morphology": {m: int(counts["morphology"][m]) for m in MORPHOLOGIES},
            "neighbours": int(counts["neighbours"]),
            "clipped_images": int(counts["clipped"]),
        }
        atomic_write_json(tmp / "summary.json", summary)
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("simulated RGZ/FIRST set written to %s: %s", root, summary)
    return root


def _parent(root: Path) -> Path:
    root.parent.mkdir(parents=True, exist_ok=True)
    return root.parent


# ------------------------------------------------------------------------------ loading
def load_rgz_sim_coco(
    json_file: str | os.PathLike,
    image_root: str | os.PathLike,
    dataset_name: str | None = None,
    **kwargs,
) -> list[dict]:
    """``load_coco_json`` that first builds the simulated set when ``json_file`` is its
    default place."""
    from astrodet.data.coco import load_coco_json

    json_file = Path(json_file)
    default = rgz_sim_root().resolve()
    if json_file.resolve().parent.parent == default:
        build_rgz_sim(default)
    return load_coco_json(str(json_file), str(image_root), dataset_name, **kwargs)


TRAININGS = ("real", "sim", "both")


def load_rgz_first_training(
    json_file: str | os.PathLike,
    image_root: str | os.PathLike,
    dataset_name: str | None = None,
    *,
    training: str = "real",
    sim_json_file: str | os.PathLike | None = None,
    sim_image_root: str | os.PathLike | None = None,
) -> list[dict]:
    """The training images of the RGZ/FIRST configs: the real consensus split
    (``json_file``, ``image_root``), the simulated set, or both.

    Args:
        json_file, image_root, dataset_name: the real split (built on first use when at its
            default place).
        training: ``"real"``, ``"sim"`` or ``"both"``.
        sim_json_file, sim_image_root: the simulated set (default
            ``rgz_sim_root()/train``, built on first use).
    """
    from astrodet.data.rgz_first import load_rgz_first_coco

    if training not in TRAININGS:
        raise ValueError(f"dataloader.train.dataset.training must be one of {TRAININGS}, "
                         f"got {training!r}")  # fmt: skip
    out = []
    if training in ("real", "both"):
        out += load_rgz_first_coco(json_file, image_root, dataset_name)
    if training in ("sim", "both"):
        folder = rgz_sim_root() / "train"
        sim = load_rgz_sim_coco(
            sim_json_file or folder / "annotations.json",
            sim_image_root or folder / "images",
            f"{DATASET}_train",
        )
        start = 1 + max((d["image_id"] for d in out), default=-1)
        out += [{**d, "image_id": start + k} for k, d in enumerate(sim)]
    return out


def _register() -> None:
    name = f"{DATASET}_train"
    if name in DatasetCatalog.list():
        return
    folder = rgz_sim_root() / "train"
    DatasetCatalog.register(
        name,
        functools.partial(
            load_rgz_sim_coco, str(folder / "annotations.json"), str(folder / "images"), name
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
