"""Draw images, ground-truth boxes and predictions, with astronomical stretches.

Detectron2's names: ``Visualizer(image, metadata).draw_instance_predictions(pred)`` returns a
:class:`VisImage` with ``.save(path)`` and ``.get_image()``. The raw image (HW or HWC, any
units) is turned into RGB by :func:`astrodet.data.stretch.to_rgb` with the chosen stretch, the
one way the whole toolkit turns raw pixels into pictures of cutouts. Drawing uses OpenCV.

Whole survey fields (:func:`save_field_picture`, the picture every finder writes) are drawn
with matplotlib: sky axes through astropy's WCSAxes, an asinh stretch from 2 sigma below the
background, a colourbar in Jy/beam, the restoring beam, and a second table (injected truth,
physical-source boxes) beside the catalogue.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from astrodet.structures import BoxMode
from astrodet.utils import atomic_write_bytes

__all__ = [
    "VisImage",
    "Visualizer",
    "class_color",
    "concat_panels",
    "draw_comparison",
    "draw_field",
    "field_stretch",
    "save_field_picture",
    "visualize_predictions",
]

# Tableau-10: distinct on a dark sky.
_PALETTE = np.array(
    [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (188, 189, 34),
        (23, 190, 207),
        (127, 127, 127),
    ],
    dtype=np.uint8,
)


def class_color(class_id: int) -> tuple[int, int, int]:
    """The RGB colour of a (contiguous, 0-based) class id."""
    return tuple(int(v) for v in _PALETTE[int(class_id) % len(_PALETTE)])


def _get(obj: Any, key: str, default=None):
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


class VisImage:
    """An RGB uint8 picture being drawn on.

    Args:
        img: HxWx3 uint8 RGB.
        scale: how many output pixels per image pixel.
    """

    def __init__(self, img: np.ndarray, scale: float = 1.0):
        self.img = np.ascontiguousarray(img, dtype=np.uint8)
        self.scale = float(scale)

    @property
    def height(self) -> int:
        return self.img.shape[0]

    @property
    def width(self) -> int:
        return self.img.shape[1]

    def get_image(self) -> np.ndarray:
        """A copy of the picture, HxWx3 uint8 RGB."""
        return self.img.copy()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the picture (format from the suffix: .png, .jpg, ...) atomically."""
        path = Path(path)
        ok, buf = cv2.imencode(path.suffix or ".png", cv2.cvtColor(self.img, cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError(f"cannot encode an image as {path.suffix!r} for {path}")
        return atomic_write_bytes(path, buf.tobytes())


class Visualizer:
    """Draw boxes and labels over an astronomical image.

    Args:
        image: raw image, HW or HWC (1 or 3 channels), any units.
        metadata: anything with ``thing_classes`` (a ``Metadata`` or a dict), for class names.
        stretch: stretch name for :func:`astrodet.data.stretch.to_rgb` (``"zscale"``,
            ``"asinh"``, ``"multi"``...); None when the image is already in [0, 1] (8-bit sets).
        scale: enlarge the picture by this factor (nearest neighbour, so pixels stay visible).
    """

    def __init__(self, image: np.ndarray, metadata: Any = None, *, stretch="zscale", scale=1.0):
        from astrodet.data.stretch import to_rgb

        image = np.asarray(image)
        if image.ndim not in (2, 3):
            raise ValueError(f"Visualizer needs an HW or HWC image, got shape {image.shape}")
        if stretch is None and image.dtype == np.uint8:
            image = image.astype(np.float32) / 255.0
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        rgb = np.clip(to_rgb(image, stretch=stretch), 0.0, 1.0)
        img = (rgb * 255.0 + 0.5).astype(np.uint8)
        if scale != 1.0:
            h, w = img.shape[:2]
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            img = cv2.resize(img, size, interpolation=cv2.INTER_NEAREST)
        self.metadata = metadata
        self.scale = float(scale)
        self.output = VisImage(img, scale)
        short = min(self.output.height, self.output.width)
        self._line_width = max(1, round(short / 300))
        self._font_scale = max(0.35, short / 900)

    def _class_name(self, class_id: int) -> str:
        names = _get(self.metadata, "thing_classes")
        if names is not None and 0 <= class_id < len(names):
            return str(names[class_id])
        return str(class_id)

    def get_output(self) -> VisImage:
        """The picture drawn so far."""
        return self.output

    def draw_box(
        self,
        box: Sequence[float],
        *,
        color: tuple[int, int, int] = (0, 255, 0),
        line_width: int | None = None,
    ) -> VisImage:
        """Draw one XYXY box given in image pixels.

        Args:
            box: ``(x0, y0, x1, y1)`` in image pixels.
            color: RGB.
            line_width: in output pixels (default grows with the picture).
        """
        x0, y0, x1, y1 = (float(v) * self.scale for v in box)
        lw = line_width or self._line_width
        p0 = (int(round(x0)), int(round(y0)))
        p1 = (max(int(round(x1)) - 1, p0[0]), max(int(round(y1)) - 1, p0[1]))
        cv2.rectangle(self.output.img, p0, p1, tuple(int(c) for c in color), lw, cv2.LINE_8)
        return self.output

    def draw_text(
        self,
        text: str,
        position: Sequence[float],
        *,
        color: tuple[int, int, int] = (255, 255, 255),
        font_scale: float | None = None,
        background: tuple[int, int, int] | None = (0, 0, 0),
    ) -> VisImage:
        """Draw text whose bottom-left corner is at ``position`` (image pixels).

        Args:
            text: the text.
            position: ``(x, y)`` in image pixels; moved inside the picture where needed.
            color: RGB.
            font_scale: OpenCV font scale (default grows with the picture).
            background: RGB of a box behind the text, or None.
        """
        fs = font_scale or self._font_scale
        font = cv2.FONT_HERSHEY_SIMPLEX
        (tw, th), base = cv2.getTextSize(text, font, fs, 1)
        x = int(np.clip(round(position[0] * self.scale), 0, max(0, self.output.width - tw)))
        y = int(np.clip(round(position[1] * self.scale), th + 1, self.output.height - base))
        if background is not None:
            cv2.rectangle(
                self.output.img, (x, y - th - 1), (x + tw, y + base), background, cv2.FILLED
            )
        cv2.putText(self.output.img, text, (x, y), font, fs, color, 1, cv2.LINE_AA)
        return self.output

    def _draw_labelled(self, boxes, classes, scores=None) -> VisImage:
        for i, (box, c) in enumerate(zip(boxes, classes)):
            color = class_color(c)
            self.draw_box(box, color=color)
            label = self._class_name(int(c))
            if scores is not None:
                label = f"{label} {scores[i]:.2f}"
            self.draw_text(label, (box[0], box[1] - 1 / self.scale), color=color)
        return self.output

    def draw_instance_predictions(self, predictions: Any, score_threshold: float = 0.5) -> VisImage:
        """Draw predicted boxes with class name and score.

        Args:
            predictions: a torchvision dict ``{"boxes" XYXY, "scores", "labels" 1-based}``, or a
                Detectron2-like object/dict with ``pred_boxes``, ``scores``, ``pred_classes``
                (0-based), optionally under ``"instances"``.
            score_threshold: predictions scoring below are not drawn.
        """
        if isinstance(predictions, dict) and "instances" in predictions:
            predictions = predictions["instances"]
        if _get(predictions, "boxes") is not None:
            boxes = _to_numpy(_get(predictions, "boxes"))
            classes = _to_numpy(_get(predictions, "labels")).astype(np.int64) - 1
        else:
            boxes = _get(predictions, "pred_boxes")
            boxes = _to_numpy(getattr(boxes, "tensor", boxes))
            classes = _to_numpy(_get(predictions, "pred_classes")).astype(np.int64)
        scores = _to_numpy(_get(predictions, "scores")).astype(np.float64)
        boxes = boxes.reshape(-1, 4)
        keep = scores >= score_threshold
        # Draw the most confident last, so they are on top.
        order = np.argsort(scores[keep], kind="stable")
        return self._draw_labelled(
            boxes[keep][order], classes[keep][order], scores[keep][order].tolist()
        )

    def draw_dataset_dict(self, d: dict) -> VisImage:
        """Draw a dataset dict's ground-truth boxes with class names.

        Args:
            d: a Detectron2 dataset dict: ``annotations`` with ``bbox``, ``bbox_mode``,
                ``category_id`` (contiguous).
        """
        anns = d.get("annotations", [])
        boxes = [
            BoxMode.convert(list(a["bbox"]), a.get("bbox_mode", BoxMode.XYWH_ABS), BoxMode.XYXY_ABS)
            for a in anns
        ]
        return self._draw_labelled(boxes, [int(a["category_id"]) for a in anns])


def concat_panels(
    images: Sequence[np.ndarray], *, gap: int = 4, color: tuple[int, int, int] = (255, 255, 255)
) -> np.ndarray:
    """Put RGB pictures side by side (top-aligned) with a ``gap``-pixel separator."""
    if not images:
        raise ValueError("concat_panels needs at least one image")
    height = max(im.shape[0] for im in images)
    width = sum(im.shape[1] for im in images) + gap * (len(images) - 1)
    out = np.empty((height, width, 3), dtype=np.uint8)
    out[:] = color
    x = 0
    for im in images:
        out[: im.shape[0], x : x + im.shape[1]] = im
        x += im.shape[1] + gap
    return out


def draw_comparison(
    image: np.ndarray,
    d: dict,
    predictions: Any,
    metadata: Any = None,
    *,
    stretch="zscale",
    scale: float = 1.0,
    score_threshold: float = 0.5,
) -> np.ndarray:
    """Ground truth (left) beside predictions (right), as one RGB uint8 picture.

    Args:
        image: the raw image.
        d: its dataset dict (ground-truth ``annotations``, contiguous ``category_id``).
        predictions: as :meth:`Visualizer.draw_instance_predictions` takes.
        metadata: anything with ``thing_classes``.
        stretch: see :class:`Visualizer`.
        scale: see :class:`Visualizer`.
        score_threshold: predictions scoring below are not drawn.
    """
    left = Visualizer(image, metadata, stretch=stretch, scale=scale)
    left.draw_dataset_dict(d)
    n_gt = len(d.get("annotations", []))
    left.draw_text(f"ground truth: {n_gt}", (0, 0), color=(255, 255, 255))
    right = Visualizer(image, metadata, stretch=stretch, scale=scale)
    right.draw_instance_predictions(predictions, score_threshold=score_threshold)
    n_pred = int((_to_numpy(_get(predictions, "scores")) >= score_threshold).sum())
    right.draw_text(f"predictions >= {score_threshold:g}: {n_pred}", (0, 0), color=(255, 255, 255))
    return concat_panels([left.get_output().img, right.get_output().img])


def _auto_stretch(file_name: str, default) -> Any:
    # 8-bit picture files are already stretched; raw arrays and FITS need one.
    if Path(str(file_name)).suffix.lower() in (".png", ".jpg", ".jpeg"):
        return None
    return default


def visualize_predictions(
    *,
    json_file: str | os.PathLike,
    image_root: str | os.PathLike,
    predictions: str | os.PathLike,
    out_dir: str | os.PathLike,
    n: int = 8,
    score_threshold: float = 0.5,
    stretch: Any = "auto",
    scale: float | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Draw ground truth beside predictions for the first ``n`` images of a COCO set.

    Args:
        json_file: the COCO json the predictions were made on.
        image_root: folder of its images.
        predictions: COCO results json (``coco_instances_results.json``; original category ids).
        out_dir: folder for the PNGs (refused when it exists and is not empty, unless
            ``overwrite``).
        n: how many images.
        score_threshold: predictions scoring below are not drawn.
        stretch: stretch name, None, or ``"auto"`` (none for PNG/JPEG files, zscale otherwise).
        scale: enlargement; default makes the shorter side at least 256 pixels.
        overwrite: replace an existing ``out_dir``.
        progress: show a progress bar.

    Returns:
        the PNG paths written.
    """
    import json

    from tqdm import tqdm

    from astrodet.data.coco import load_coco_json
    from astrodet.data.io import load_dict_image
    from astrodet.utils import prepare_output_dir

    predictions = Path(predictions)
    if not predictions.is_file():
        raise FileNotFoundError(f"predictions file {predictions} not found")
    results = json.loads(predictions.read_text())
    if not isinstance(results, list):
        raise ValueError(f"{predictions} is not a COCO results list")
    with open(json_file) as f:
        categories = sorted(json.load(f)["categories"], key=lambda c: c["id"])
    to_contiguous = {c["id"]: i for i, c in enumerate(categories)}
    metadata = {"thing_classes": [c["name"] for c in categories]}
    dicts = load_coco_json(json_file, image_root)[: max(0, int(n))]
    by_image: dict[Any, list[dict]] = {}
    for r in results:
        by_image.setdefault(r["image_id"], []).append(r)
    bad = sorted({r["category_id"] for r in results} - set(to_contiguous))
    if bad:
        raise ValueError(f"{predictions} has category ids {bad} that {json_file} does not define")

    out_dir = prepare_output_dir(out_dir, overwrite=overwrite)
    written = []
    for d in tqdm(dicts, desc="drawing", unit="img", disable=not progress):
        rs = by_image.get(d["image_id"], [])
        boxes = np.array([r["bbox"] for r in rs], dtype=np.float64).reshape(-1, 4)
        pred = {
            "boxes": BoxMode.convert(boxes, BoxMode.XYWH_ABS, BoxMode.XYXY_ABS),
            "scores": np.array([r["score"] for r in rs], dtype=np.float64),
            "labels": np.array([to_contiguous[r["category_id"]] + 1 for r in rs], np.int64),
        }
        image = load_dict_image(d)
        s = scale or max(1.0, float(np.ceil(256 / min(image.shape[:2]))))
        st = _auto_stretch(d.get("file_name", ""), "zscale") if stretch == "auto" else stretch
        picture = draw_comparison(
            image, d, pred, metadata, stretch=st, scale=s, score_threshold=score_threshold
        )
        path = out_dir / f"{d['image_id']}_{Path(str(d.get('file_name', 'image'))).stem}.png"
        VisImage(picture).save(path)
        written.append(path)
    return written


# --------------------------------------------------------------------------- whole fields
#: Paul Tol's colour-blind-safe "vibrant" red and blue: a catalogue and the table it is
#: compared with (injected truth, physical sources) stay apart on a grey sky.
FIELD_COLOR = "#CC3311"
TRUTH_COLOR = "#0077BB"
_BOX_COLUMNS = ("x_min", "y_min", "x_max", "y_max")


def _binned_field(field, k: int) -> np.ndarray:
    """The field block-averaged by ``k`` (NaN ignored, a block without data is NaN), read
    ``k`` rows at a time so a survey field is never held whole."""
    ny, nx = field.shape
    if k == 1:
        return field.read(0, ny, 0, nx)
    nyb, nxb = -(-ny // k), -(-nx // k)
    out = np.empty((nyb, nxb), np.float32)
    for i in range(nyb):
        rows = np.full((k, nxb * k), np.nan, np.float32)
        part = field.read(i * k, (i + 1) * k, 0, nx)
        rows[: len(part), :nx] = part
        blocks = rows.reshape(k, nxb, k)
        finite = np.isfinite(blocks)
        n = finite.sum(axis=(0, 2))
        total = np.where(finite, blocks, 0.0).sum(axis=(0, 2))
        out[i] = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    return out


def _binned_wcs(wcs, k: int):
    """The WCS of the ``k``-binned image: binned pixel ``i`` is the block of original pixels
    ``[i k, i k + k)``."""
    from astropy.wcs import WCS

    if k == 1:
        return wcs
    # astropy's strided slice rescales CDELT only: a CD matrix has to become PC + CDELT first
    w = WCS(wcs.to_header(relax=True)) if wcs.wcs.has_cd() else wcs.deepcopy()
    return w[::k, ::k]


def field_stretch(image: np.ndarray, *, percentile: float = 99.99, noise_level: float = 0.15):
    """An asinh normalisation for a radio image: from 2 sigma below the background to a high
    percentile, softened so that 1 sigma above the background sits at ``noise_level`` of the
    colour range whatever the dynamic range: the noise stays a faint grey and faint sources
    still stand out beside bright ones.

    Args:
        image: the pixels (NaN ignored).
        percentile: the upper limit (raised to at least 30 sigma above the background, so a
            field of noise does not fill the range).
        noise_level: where 1 sigma above the background falls, in (0, 1).

    Returns:
        ``(norm, median, sigma)``: an astropy ``ImageNormalize`` and the sigma-clipped
        background level and rms it was built from.
    """
    from astropy.visualization import AsinhStretch, ImageNormalize, LinearStretch
    from scipy.optimize import brentq

    from astrodet.sky.measure import estimate_background

    finite = image[np.isfinite(image)]
    if finite.size == 0:
        raise ValueError("the image has no finite pixels to draw")
    # a strided sample of about a million pixels gives the same statistics much faster
    median, sigma = estimate_background(finite[:: max(1, finite.size // 1_000_000)])
    top = float(np.max(finite))
    if not sigma > 0:  # a constant or near-constant image: show its full range
        lo = float(np.min(finite))
        return ImageNormalize(vmin=lo, vmax=max(top, lo + 1e-12)), median, sigma
    vmin = median - 2.0 * sigma
    # not the brightest pixel when it is faint: a field of noise must not fill the range
    vmax = max(float(np.percentile(finite, percentile)), median + 30.0 * sigma)
    x = 3.0 * sigma / (vmax - vmin)  # 1 sigma above the background, as a fraction of the range
    if x >= noise_level:  # little dynamic range: a linear stretch already keeps noise faint
        return ImageNormalize(vmin=vmin, vmax=vmax, stretch=LinearStretch()), median, sigma

    # asinh(x / a) / asinh(1 / a) falls from 1 (a -> 0) to x (a -> inf): solve in log a
    def excess(t):
        return np.arcsinh(x / 10**t) / np.arcsinh(1 / 10**t) - noise_level

    # a range of more than about a billion sigma cannot be softened that far: the limit
    log_a = brentq(excess, -8.0, 4.0) if excess(-8.0) > 0 else -8.0
    norm = ImageNormalize(vmin=vmin, vmax=vmax, stretch=AsinhStretch(10**log_a), clip=False)
    return norm, median, sigma


def _positions(field, table, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions of a table's rows: ``x``, ``y`` where given, else ``ra``/``dec``
    through the field's WCS; NaN where neither is."""
    names = set(table.colnames)
    n = len(table)
    x = np.asarray(table["x"], float) if "x" in names else np.full(n, np.nan)
    y = np.asarray(table["y"], float) if "y" in names else np.full(n, np.nan)
    if {"ra", "dec"} <= names and field.wcs is not None:
        need = ~(np.isfinite(x) & np.isfinite(y))
        if need.any():
            x, y = x.copy(), y.copy()
            x[need], y[need] = field.world_to_pixel(
                np.asarray(table["ra"], float)[need], np.asarray(table["dec"], float)[need]
            )
    elif not ({"x", "y"} <= names or {"ra", "dec"} <= names):
        raise ValueError(
            f"the {what} table has neither x, y nor ra, dec columns; it has {table.colnames}"
        )
    return x, y


def _sky_angles(field, x, y, pa) -> np.ndarray:
    """Angles (deg, counter-clockwise from +x) of position angles ``pa`` (east of north) at
    pixel positions ``x``, ``y``: from the local directions of north and east in the WCS,
    so rotated, flipped and Galactic images are drawn right; north up without a WCS."""
    pa = np.radians(np.nan_to_num(np.asarray(pa, float)))
    if field.wcs is None or len(x) == 0:
        return np.degrees(pa) + 90.0
    from astrodet.sky.field import pixel_to_radec, radec_to_pixel

    ra, dec = pixel_to_radec(field.wcs, x, y)
    step = 1.0 / 3600.0
    nx, ny = radec_to_pixel(field.wcs, ra, dec + step)
    ex, ey = radec_to_pixel(field.wcs, ra + step / np.maximum(np.cos(np.radians(dec)), 1e-6), dec)
    north = np.stack([nx - x, ny - y])
    east = np.stack([ex - x, ey - y])
    north /= np.linalg.norm(north, axis=0)
    east /= np.linalg.norm(east, axis=0)
    v = np.cos(pa) * north + np.sin(pa) * east
    return np.degrees(np.arctan2(v[1], v[0]))


def _brightness(table) -> np.ndarray:
    for name in ("peak_flux", "snr", "total_flux", "score"):
        if name in table.colnames:
            values = np.asarray(table[name], float)
            if np.isfinite(values).any():
                return np.nan_to_num(values, nan=-np.inf)
    return -np.arange(len(table), dtype=float)  # table order


def _as_table(obj, what: str):
    from astropy.table import Table

    if isinstance(obj, Table):
        return obj
    try:
        return Table(obj)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"the {what} table must be an astropy Table, got {type(obj).__name__}"
        ) from e


def _axis_labels(wcs) -> tuple[str, str]:
    from astropy.wcs.utils import wcs_to_celestial_frame

    lon = str(wcs.wcs.ctype[0]).upper()
    if lon.startswith("GLON"):
        return "Galactic longitude", "Galactic latitude"
    if lon.startswith("RA"):
        try:
            frame = wcs_to_celestial_frame(wcs)
            name = {"fk5": "J2000", "fk4": "B1950"}.get(frame.name, frame.name.upper())
        except ValueError:
            name = ""
        suffix = f" ({name})" if name else ""
        return f"RA{suffix}", f"Dec{suffix}"
    return wcs.wcs.ctype[0].split("-")[0], wcs.wcs.ctype[1].split("-")[0]


class _Grid:
    """Original field pixels -> the drawn (``k``-binned) pixels, and the sizes drawn there."""

    def __init__(self, field, k: int, drawn_side: int):
        self.field, self.k = field, k
        self.scale = (field.pixel_scale or 1.0) * k  # arcsec (or pixels) per drawn pixel
        # a floor on the drawn size keeps sources visible on heavily binned fields
        self.floor = max(2.0, 0.003 * drawn_side)

    def drawn(self, v) -> np.ndarray:
        """Original pixel centres -> drawn pixel centres."""
        return (np.asarray(v, float) - (self.k - 1) / 2.0) / self.k

    def ellipses(self, table, what: str) -> dict[str, np.ndarray]:
        """The drawn ellipses of a table's rows with a position (``rows`` indexes the table);
        rows without a size get the beam's."""
        import logging

        field, beam, n = self.field, self.field.beam, len(table)
        x, y = _positions(field, table, what)
        ok = np.isfinite(x) & np.isfinite(y)
        if (~ok).any():
            logging.getLogger(__name__).warning(
                "%s: %d of %d %s have no pixel position: not drawn",
                Path(str(field.path)).name,
                int((~ok).sum()),
                n,
                what,
            )
        cols = set(table.colnames)
        maj, mn, pa = (
            np.asarray(table[c], float) if c in cols else np.full(n, default)
            for c, default in (("maj", np.nan), ("min", np.nan), ("pa", beam.pa))
        )
        sized = np.isfinite(maj) & np.isfinite(mn)
        maj, mn = np.where(sized, maj, beam.maj), np.where(sized, mn, beam.min)
        rows = np.flatnonzero(ok)
        return {
            "rows": rows,
            "x": self.drawn(x[rows]),
            "y": self.drawn(y[rows]),
            "w": np.maximum(maj[rows] / self.scale, self.floor),
            "h": np.maximum(mn[rows] / self.scale, self.floor),
            "angle": _sky_angles(field, x[rows], y[rows], pa[rows]),
        }


def _ellipse_artist(ax, e: dict, **style):
    from matplotlib.collections import EllipseCollection

    art = EllipseCollection(
        e["w"],
        e["h"],
        e["angle"],
        units="xy",
        offsets=np.column_stack([e["x"], e["y"]]),
        offset_transform=ax.transData,
        facecolor="none",
        **style,
    )
    ax.add_collection(art)
    return art


def _draw_truth(ax, grid: _Grid, truth, what: str, lw: float):
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    style = {"edgecolor": TRUTH_COLOR, "linestyle": "--", "linewidth": lw, "gid": "truth"}
    if not set(_BOX_COLUMNS) <= set(truth.colnames):
        return _ellipse_artist(ax, grid.ellipses(truth, what), **style)
    b = np.stack([np.asarray(truth[c], float) for c in _BOX_COLUMNS], axis=1)
    good = np.isfinite(b).all(axis=1)
    if (~good).any():
        import logging

        logging.getLogger(__name__).warning(
            "%d of %d %s boxes are not finite: not drawn", int((~good).sum()), len(b), what
        )
    # a box edge e (pixel i spans [i, i + 1)) lies at e / k - 0.5 on the drawn grid
    b = b[good] / grid.k - 0.5
    rects = [Rectangle((x0, y0), x1 - x0, y1 - y0) for x0, y0, x1, y1 in b]
    art = PatchCollection(rects, facecolor="none", **style)
    ax.add_collection(art)
    return art


def _draw_ids(ax, table, e: dict, *, max_labels: int, side: tuple[int, int]) -> int:
    """Write the ids of the brightest sources beside their ellipses, leaving out any that
    would sit on a brighter one's label; returns how many were written."""
    import matplotlib.patheffects as pe

    ny, nx = side
    ids = np.asarray(table["source_id"]) if "source_id" in table.colnames else np.arange(len(table))
    order = np.argsort(-_brightness(table)[e["rows"]], kind="stable")
    gap = 0.035 * max(nx, ny)
    placed: list[tuple[float, float]] = []
    halo = [pe.withStroke(linewidth=2, foreground="white")]
    for j in order:
        if len(placed) >= max_labels:
            break
        right = e["x"][j] + 0.5 * e["w"][j] < 0.93 * nx  # near the right edge: write it left
        tx = e["x"][j] + (0.5 if right else -0.5) * e["w"][j]
        ty = e["y"][j] + 0.5 * e["h"][j]
        if any(abs(tx - px) < gap and abs(ty - py) < 0.5 * gap for px, py in placed):
            continue
        placed.append((tx, ty))
        ax.text(
            tx,
            ty,
            str(ids[e["rows"][j]]),
            color=FIELD_COLOR,
            fontsize=7,
            ha="left" if right else "right",
            gid="source_id",
            path_effects=halo,
            clip_on=True,
        )
    return len(placed)


def _draw_beam(ax, grid: _Grid) -> None:
    """The restoring beam in a box in the lower left corner, as radio maps show it."""
    from matplotlib.patches import Ellipse
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredAuxTransformBox

    beam = grid.field.beam
    w, h = beam.maj / grid.scale, beam.min / grid.scale
    if w < 1.5:  # under two drawn pixels: a dot that says nothing
        return
    ny, nx = grid.field.shape
    cx, cy = grid.drawn(nx / 2), grid.drawn(ny / 2)
    centre = [cx * grid.k + (grid.k - 1) / 2], [cy * grid.k + (grid.k - 1) / 2]
    angle = float(_sky_angles(grid.field, *centre, [beam.pa])[0])
    box = AnchoredAuxTransformBox(ax.transData, loc="lower left", frameon=True, pad=0.3)
    box.drawing_area.add_artist(
        Ellipse((0, 0), w, h, angle=angle, facecolor="0.4", edgecolor="black", lw=0.6)
    )
    box.patch.set_alpha(0.85)
    box.set_gid("beam")
    ax.add_artist(box)


def draw_field(
    field,
    table,
    *,
    truth=None,
    max_pixels: int = 2048,
    max_labels: int = 30,
    name: str = "sources",
    truth_name: str = "truth",
    title: str | None = None,
):
    """A publication-style figure of a field with a catalogue's FWHM ellipses.

    RA/Dec axes (WCSAxes) when the field has a celestial WCS, pixel axes otherwise; an asinh
    stretch from 2 sigma below the background (:func:`field_stretch`); a colourbar in
    (m)Jy/beam; the restoring beam in the lower left corner; the ids of the brightest
    ``max_labels`` sources, leaving out those that would overlap a brighter one's.

    Args:
        field: a :class:`~astrodet.sky.field.Field`.
        table: a catalogue in our columns (``x``, ``y`` pixels or ``ra``, ``dec``; ``maj``,
            ``min`` arcsec and ``pa`` deg where known, else the beam is drawn).
        truth: an optional second table drawn dashed in another colour: boxes when it has
            ``x_min, y_min, x_max, y_max`` (XYXY, pixel ``i`` spans ``[i, i + 1)``), else
            ellipses or beam-sized circles at its positions.
        max_pixels: longest side of the drawn image; larger fields are block-averaged.
        max_labels: at most this many source ids are written.
        name: what the catalogue's rows are called (legend and title).
        truth_name: what the truth table's rows are called.
        title: replaces the default title (file name and counts).

    Returns:
        the matplotlib ``Figure``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if max_pixels < 16:
        raise ValueError(f"max_pixels must be at least 16, got {max_pixels}")
    if max_labels < 0:
        raise ValueError(f"max_labels must be at least 0, got {max_labels}")
    table = _as_table(table, name)
    truth = None if truth is None else _as_table(truth, truth_name)
    ny, nx = field.shape
    k = max(1, -(-max(ny, nx) // int(max_pixels)))
    image = _binned_field(field, k)
    norm, _, _ = field_stretch(image)
    # display in mJy/beam for the faint radio sky, where Jy/beam ticks would read 0.000
    unit, factor = ("mJy/beam", 1e3) if abs(norm.vmax) < 0.5 else ("Jy/beam", 1.0)
    norm.vmin, norm.vmax = norm.vmin * factor, norm.vmax * factor
    nyb, nxb = image.shape

    # about one drawn pixel per image pixel at 150 dpi, within a page's limits
    width = float(np.clip(nxb / 150.0, 6.0, 14.0))
    height = float(np.clip(width * nyb / nxb, 3.0, 14.0))
    fig = plt.figure(figsize=(width + 1.4, height + 0.6), dpi=150)
    if field.wcs is not None:
        ax = fig.add_subplot(projection=_binned_wcs(field.wcs, k))
        for coord, label in zip(ax.coords, _axis_labels(field.wcs)):
            coord.set_axislabel(label)
    else:
        ax = fig.add_subplot()
        ax.set_xlabel("x (pixel)" + (f", {k}x{k} binned" if k > 1 else ""))
        ax.set_ylabel("y (pixel)" + (f", {k}x{k} binned" if k > 1 else ""))
    cmap = matplotlib.colormaps["gray_r"].with_extremes(bad="#dde6ef")  # blanks: pale blue
    im = ax.imshow(image * factor, origin="lower", cmap=cmap, norm=norm)
    ax.set_xlim(-0.5, nxb - 0.5)
    ax.set_ylim(-0.5, nyb - 0.5)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).set_label(unit)

    grid = _Grid(field, k, max(nxb, nyb))
    n = len(table)
    # thinner lines on crowded fields, so the sky between the sources stays visible
    lw = float(np.clip(1.2 * (50.0 / max(n, 1)) ** 0.25, 0.4, 1.2))
    if truth is not None and len(truth):
        _draw_truth(ax, grid, truth, truth_name, lw)
    undrawn = 0
    if n:
        e = grid.ellipses(table, name)
        undrawn = n - len(e["rows"])
        _ellipse_artist(ax, e, edgecolor=FIELD_COLOR, linewidth=lw, gid="sources")
        _draw_ids(ax, table, e, max_labels=max_labels, side=(nyb, nxb))
    _draw_beam(ax, grid)
    if truth is not None:
        handles = [
            Line2D([], [], color=FIELD_COLOR, lw=1, label=f"{name} ({n})"),
            Line2D([], [], color=TRUTH_COLOR, ls="--", lw=1, label=f"{truth_name} ({len(truth)})"),
        ]
        ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.85)
    if title is None:
        title = f"{Path(str(field.path)).name}: {n} {name}"
        if undrawn:
            title += f" ({undrawn} without a pixel position)"
        if truth is not None:
            title += f", {len(truth)} {truth_name}"
        if k > 1:
            title += f" (shown {k}x{k} binned)"
    ax.set_title(title, fontsize=10)
    return fig


def save_field_picture(
    field, table, path: str | os.PathLike, *, truth=None, max_pixels: int = 2048, **kwargs
) -> Path:
    """A PNG of the field with the catalogue's FWHM ellipses (see :func:`draw_field`).

    Any catalogue works (a finder's, PyBDSF's); every finder's picture is drawn here.

    Args:
        field: the :class:`~astrodet.sky.field.Field`.
        table: a catalogue in our columns.
        path: the PNG, written atomically.
        truth: an optional second table (injected sources, physical-source boxes).
        max_pixels: longest side of the drawn image; larger fields are block-averaged.
        **kwargs: the other options of :func:`draw_field` (``max_labels``, ``name``...).
    """
    from astrodet.utils import atomic_save_figure

    fig = draw_field(field, table, truth=truth, max_pixels=max_pixels, **kwargs)
    return atomic_save_figure(fig, path, bbox_inches="tight")
