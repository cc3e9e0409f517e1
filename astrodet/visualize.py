"""Draw images, ground-truth boxes and predictions, with astronomical stretches.

Detectron2's names: ``Visualizer(image, metadata).draw_instance_predictions(pred)`` returns a
:class:`VisImage` with ``.save(path)`` and ``.get_image()``. The raw image (HW or HWC, any
units) is turned into RGB by :func:`astrodet.data.stretch.to_rgb` with the chosen stretch, the
one way the whole toolkit turns raw pixels into pictures. Drawing uses OpenCV.
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
