"""COCO box metrics: a functional ``evaluate_coco`` and Detectron2's ``COCOEvaluator``.

Metrics are fractions in ``[0, 1]``. A value is NaN where it is undefined: ``AP``/``AP50``/
``AP75`` when the evaluated images hold no ground truth at all, ``APs``/``APm``/``APl`` when
no ground-truth box falls in that area range, and ``AP50-<class>``/``AP-<class>`` for a class
without ground truth. :func:`metrics_to_json` turns NaN into ``None`` (``null`` in json).

Two backends compute the same numbers: ``"pycocotools"`` (the reference API) and
``"faster"`` (faster-coco-eval, the same algorithm in C++; agrees to 1e-3 and is several times
faster on large sets). ``"auto"`` takes faster-coco-eval where it is importable.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from astrodet.structures import BoxMode
from astrodet.utils import atomic_write_json

logger = logging.getLogger(__name__)

__all__ = [
    "COCOEvaluator",
    "dicts_to_coco_gt",
    "evaluate_coco",
    "flatten_metrics",
    "metrics_to_json",
    "predictions_to_coco_results",
    "resolve_backend",
]

BACKENDS = ("auto", "pycocotools", "faster")
RESULTS_FILE = "coco_instances_results.json"


def resolve_backend(backend: str = "auto") -> str:
    """Name the backend that will run: ``"faster"`` or ``"pycocotools"``.

    Args:
        backend: ``"auto"`` (faster-coco-eval where importable), ``"faster"`` or
            ``"pycocotools"``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown COCO backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        try:
            import faster_coco_eval  # noqa: F401
        except ImportError:
            return "pycocotools"
        return "faster"
    return backend


def _api(backend: str):
    if backend == "faster":
        from faster_coco_eval import COCO, COCOeval_faster

        return COCO, COCOeval_faster
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    return COCO, COCOeval


def _clean_gt(gt: dict) -> dict:
    """A copy of a COCO json dict with what COCOeval needs filled in (area, iscrowd, ids)."""
    for key in ("images", "annotations", "categories"):
        if key not in gt:
            raise ValueError(f"COCO ground truth has no {key!r} list")
    gt = copy.deepcopy(gt)
    gt.setdefault("info", {})
    for i, ann in enumerate(gt["annotations"]):
        if "bbox" not in ann or len(ann["bbox"]) != 4:
            raise ValueError(f"ground-truth annotation {ann.get('id', i)} has no 4-number 'bbox'")
        ann.setdefault("id", i + 1)
        ann.setdefault("iscrowd", 0)
        if "area" not in ann:
            ann["area"] = float(ann["bbox"][2]) * float(ann["bbox"][3])
    return gt


def _check_results(gt: dict, results: Sequence[dict], image_ids: set) -> None:
    cat_ids = {c["id"] for c in gt["categories"]}
    bad_img = sorted({r["image_id"] for r in results} - image_ids)
    if bad_img:
        raise ValueError(
            f"results name image ids that are not in the ground truth: {bad_img[:10]}"
            + (" ..." if len(bad_img) > 10 else "")
        )
    bad_cat = sorted({r["category_id"] for r in results} - cat_ids)
    if bad_cat:
        raise ValueError(
            f"results name category ids that are not in the ground truth: {bad_cat}; "
            f"valid ids are {sorted(cat_ids)}"
        )
    for r in results:
        if "bbox" not in r or "score" not in r:
            raise ValueError(f"a result for image {r.get('image_id')} lacks 'bbox' or 'score'")


def _load_results(coco_gt, results: Sequence[dict], COCO):
    """The detections as a COCO object; also for an empty list, which ``loadRes`` refuses."""
    dataset = {
        "info": {},
        "images": copy.deepcopy(coco_gt.dataset["images"]),
        "categories": copy.deepcopy(coco_gt.dataset["categories"]),
        "annotations": [],
    }
    for i, r in enumerate(results):
        x, y, w, h = (float(v) for v in r["bbox"])
        dataset["annotations"].append(
            {
                "id": i + 1,
                "image_id": r["image_id"],
                "category_id": r["category_id"],
                "bbox": [x, y, w, h],
                "area": w * h,
                "score": float(r["score"]),
                "iscrowd": 0,
            }
        )
    coco_dt = COCO()
    coco_dt.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt.createIndex()
    return coco_dt


def _mean_defined(values: np.ndarray) -> float:
    values = values[values > -1]  # -1 marks "no ground truth" in COCOeval's arrays
    return float(np.mean(values)) if values.size else float("nan")


def evaluate_coco(
    *,
    gt: dict,
    results: Sequence[dict],
    backend: str = "auto",
    image_ids: Iterable[int] | None = None,
) -> dict[str, float]:
    """COCO box metrics of ``results`` against ``gt``.

    Args:
        gt: a COCO json dict (``images``, ``annotations``, ``categories``); ``area`` and
            ``iscrowd`` are filled in where missing (area = box area).
        results: COCO results: ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``
            with the ground truth's own category ids. May be empty (every AP is then 0).
        backend: ``"auto"``, ``"pycocotools"`` or ``"faster"``.
        image_ids: evaluate only these images (default: every image in ``gt``).

    Returns:
        ``{"AP", "AP50", "AP75", "APs", "APm", "APl", "AP-<class>", "AP50-<class>", ...}``
        as fractions in ``[0, 1]``, NaN where undefined (see the module docstring).
    """
    name = resolve_backend(backend)
    COCO, COCOeval = _api(name)
    gt = _clean_gt(gt)
    all_ids = {img["id"] for img in gt["images"]}
    if image_ids is not None:
        image_ids = sorted(set(image_ids))
        missing = sorted(set(image_ids) - all_ids)
        if missing:
            raise ValueError(f"image ids not in the ground truth: {missing[:10]}")
    _check_results(gt, results, all_ids)
    if not results:
        logger.warning("no detections to evaluate: every AP is 0")

    coco_gt = COCO()
    coco_gt.dataset = gt
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
    coco_dt = _load_results(coco_gt, results, COCO)

    kwargs = {"print_function": logger.debug} if name == "faster" else {}
    evaluator = COCOeval(coco_gt, coco_dt, "bbox", **kwargs)
    if image_ids is not None:
        evaluator.params.imgIds = image_ids
    # pycocotools prints its progress; keep it for debug logs only.
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        evaluator.evaluate()
        evaluator.accumulate()
    logger.debug(buf.getvalue())

    # precision: [IoU thresholds, recall points, classes, area ranges, max dets]; area 0 = all,
    # max dets -1 = 100, exactly the cells COCOeval.summarize reads.
    precision = np.asarray(evaluator.eval["precision"])
    iou_thrs = np.asarray(evaluator.params.iouThrs)
    t50 = int(np.argmin(np.abs(iou_thrs - 0.5)))
    t75 = int(np.argmin(np.abs(iou_thrs - 0.75)))
    metrics = {
        "AP": _mean_defined(precision[:, :, :, 0, -1]),
        "AP50": _mean_defined(precision[t50, :, :, 0, -1]),
        "AP75": _mean_defined(precision[t75, :, :, 0, -1]),
        "APs": _mean_defined(precision[:, :, :, 1, -1]),
        "APm": _mean_defined(precision[:, :, :, 2, -1]),
        "APl": _mean_defined(precision[:, :, :, 3, -1]),
    }
    names = {c["id"]: str(c.get("name", c["id"])) for c in gt["categories"]}
    for k, cat_id in enumerate(evaluator.params.catIds):
        metrics[f"AP-{names[cat_id]}"] = _mean_defined(precision[:, :, k, 0, -1])
    for k, cat_id in enumerate(evaluator.params.catIds):
        metrics[f"AP50-{names[cat_id]}"] = _mean_defined(precision[t50, :, k, 0, -1])
    return metrics


def metrics_to_json(metrics: Any) -> Any:
    """Replace NaN (undefined metrics) by ``None`` recursively, so json gets ``null``."""
    if isinstance(metrics, dict):
        return {k: metrics_to_json(v) for k, v in metrics.items()}
    if isinstance(metrics, list | tuple):
        return [metrics_to_json(v) for v in metrics]
    if isinstance(metrics, float | np.floating) and math.isnan(metrics):
        return None
    if isinstance(metrics, np.floating):
        return float(metrics)
    return metrics


def flatten_metrics(results: dict[str, dict[str, float]]) -> dict[str, float]:
    """``{"bbox": {"AP": x}}`` -> ``{"bbox/AP": x}``: the keys of ``metrics.json``."""
    return {f"{task}/{k}": v for task, res in results.items() for k, v in res.items()}


def dicts_to_coco_gt(
    dicts: Sequence[dict],
    thing_classes: Sequence[str],
    dataset_id_to_contiguous_id: dict[int, int] | None = None,
) -> dict:
    """A COCO ground-truth dict from Detectron2 dataset dicts (contiguous category ids).

    Args:
        dicts: dataset dicts with ``image_id``, ``height``, ``width``, ``annotations``.
        thing_classes: class names, index = contiguous id.
        dataset_id_to_contiguous_id: the original ids (default: contiguous id + 1).
    """
    to_orig = _contiguous_to_original(len(thing_classes), dataset_id_to_contiguous_id)
    images, annotations = [], []
    for d in dicts:
        for key in ("image_id", "height", "width"):
            if key not in d:
                raise ValueError(f"dataset dict {d.get('file_name', '?')} has no {key!r}")
        images.append(
            {
                "id": d["image_id"],
                "height": int(d["height"]),
                "width": int(d["width"]),
                "file_name": str(d.get("file_name", "")),
            }
        )
        for ann in d.get("annotations", []):
            box = BoxMode.convert(
                list(ann["bbox"]), ann.get("bbox_mode", BoxMode.XYWH_ABS), BoxMode.XYWH_ABS
            )
            cat = int(ann["category_id"])
            if not 0 <= cat < len(thing_classes):
                raise ValueError(
                    f"annotation in image {d['image_id']} has category_id {cat}, outside "
                    f"0..{len(thing_classes) - 1} ({len(thing_classes)} thing_classes)"
                )
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": d["image_id"],
                    "category_id": to_orig[cat],
                    "bbox": [float(v) for v in box],
                    "area": float(ann.get("area", box[2] * box[3])),
                    "iscrowd": int(ann.get("iscrowd", 0)),
                }
            )
    categories = [{"id": to_orig[i], "name": n} for i, n in enumerate(thing_classes)]
    return {"info": {}, "images": images, "annotations": annotations, "categories": categories}


def _contiguous_to_original(num_classes: int, mapping: dict[int, int] | None) -> list[int]:
    if not mapping:
        return list(range(1, num_classes + 1))
    inverse = {int(c): int(orig) for orig, c in mapping.items()}
    if sorted(inverse) != list(range(num_classes)):
        raise ValueError(
            f"thing_dataset_id_to_contiguous_id {mapping} does not cover 0..{num_classes - 1}"
        )
    return [inverse[i] for i in range(num_classes)]


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def predictions_to_coco_results(
    image_id: int, prediction: Any, contiguous_to_original: Sequence[int]
) -> list[dict]:
    """One image's predictions as COCO results (XYWH, original category ids).

    Args:
        image_id: the image's id.
        prediction: a torchvision dict ``{"boxes" XYXY, "scores", "labels" 1-based}``, or a
            Detectron2-like object/dict with ``pred_boxes``, ``scores``, ``pred_classes``
            (0-based), optionally under ``"instances"``.
        contiguous_to_original: original category id per contiguous id.
    """
    if isinstance(prediction, dict) and "instances" in prediction:
        prediction = prediction["instances"]
    if isinstance(prediction, dict) and "boxes" in prediction:
        boxes = _to_numpy(prediction["boxes"])
        scores = _to_numpy(prediction["scores"])
        classes = _to_numpy(prediction["labels"]).astype(np.int64) - 1
    else:
        get = prediction.get if isinstance(prediction, dict) else lambda k: getattr(prediction, k)
        boxes = get("pred_boxes")
        boxes = _to_numpy(getattr(boxes, "tensor", boxes))
        scores = _to_numpy(get("scores"))
        classes = _to_numpy(get("pred_classes")).astype(np.int64)
    boxes = boxes.reshape(-1, 4).astype(np.float64)
    if not (len(boxes) == len(scores) == len(classes)):
        raise ValueError(
            f"image {image_id}: {len(boxes)} boxes, {len(scores)} scores, {len(classes)} labels"
        )
    bad = classes[(classes < 0) | (classes >= len(contiguous_to_original))]
    if bad.size:
        raise ValueError(
            f"image {image_id}: predicted labels {sorted(set((bad + 1).tolist()))} outside "
            f"1..{len(contiguous_to_original)} (labels are category_id + 1)"
        )
    xywh = BoxMode.convert(boxes, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    return [
        {
            "image_id": int(image_id),
            "category_id": int(contiguous_to_original[c]),
            "bbox": [round(float(v), 3) for v in box],
            "score": float(s),
        }
        for box, s, c in zip(xywh, scores, classes)
    ]


class COCOEvaluator:
    """Detectron2's evaluator shape: ``reset()``, ``process(inputs, outputs)``, ``evaluate()``.

    The ground truth comes from ``dataset`` (a list of dataset dicts) or from the registered
    ``dataset_name`` (its ``json_file`` where the metadata has one, else its dicts).

    Args:
        dataset_name: a name registered in ``DatasetCatalog``/``MetadataCatalog``.
        dataset: dataset dicts, instead of a registered name.
        thing_classes: class names (default: from the metadata).
        output_dir: where ``coco_instances_results.json`` is written (None: not written).
        backend: ``"auto"``, ``"pycocotools"`` or ``"faster"``.
    """

    def __init__(
        self,
        dataset_name: str | None = None,
        *,
        dataset: Sequence[dict] | None = None,
        thing_classes: Sequence[str] | None = None,
        output_dir: str | os.PathLike | None = None,
        backend: str = "auto",
    ):
        if dataset_name is None and dataset is None:
            raise ValueError("COCOEvaluator needs a dataset_name or a dataset")
        resolve_backend(backend)  # fail early on a wrong name
        self.backend = backend
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self._gt = self._build_gt(dataset_name, dataset, thing_classes)
        cats = self._gt["categories"]
        self._contiguous_to_original = [c["id"] for c in cats]
        self._image_ids = {img["id"] for img in self._gt["images"]}
        self.reset()

    @staticmethod
    def _build_gt(dataset_name, dataset, thing_classes) -> dict:
        metadata = None
        if dataset_name is not None:
            from astrodet.data import MetadataCatalog

            metadata = MetadataCatalog.get(dataset_name)
            thing_classes = thing_classes or getattr(metadata, "thing_classes", None)
        mapping = getattr(metadata, "thing_dataset_id_to_contiguous_id", None)
        if dataset is None:
            json_file = getattr(metadata, "json_file", None)
            if json_file and Path(json_file).is_file():
                import json

                with open(json_file) as f:
                    gt = json.load(f)
                # Keep the json's category order consistent with the contiguous ids.
                order = mapping or {c["id"]: i for i, c in enumerate(gt["categories"])}
                gt["categories"] = sorted(gt["categories"], key=lambda c: order[c["id"]])
                return gt
            from astrodet.data import DatasetCatalog

            dataset = DatasetCatalog.get(dataset_name)
        if thing_classes is None:
            n = 1 + max(
                (a["category_id"] for d in dataset for a in d.get("annotations", [])), default=0
            )
            thing_classes = [f"class_{i}" for i in range(n)]
            logger.warning("no thing_classes given; naming the %d classes class_<i>", n)
        return dicts_to_coco_gt(dataset, list(thing_classes), mapping)

    def reset(self) -> None:
        """Forget the predictions seen so far."""
        self._results: list[dict] = []
        self._seen: list[int] = []

    def process(self, inputs: Sequence[dict], outputs: Sequence[Any]) -> None:
        """Record one batch of predictions.

        Args:
            inputs: the batch's dataset dicts (need ``image_id``).
            outputs: per image ``{"boxes" XYXY native px, "scores", "labels" 1-based}``.
        """
        if len(inputs) != len(outputs):
            raise ValueError(f"process got {len(inputs)} inputs but {len(outputs)} outputs")
        for inp, out in zip(inputs, outputs):
            image_id = inp["image_id"]
            if image_id not in self._image_ids:
                raise ValueError(f"image_id {image_id} is not in the evaluator's ground truth")
            self._seen.append(image_id)
            self._results.extend(
                predictions_to_coco_results(image_id, out, self._contiguous_to_original)
            )

    def _gather(self) -> tuple[list[int], list[dict]] | None:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self._seen, self._results
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, (self._seen, self._results))
        if dist.get_rank() != 0:
            return None
        seen = [i for s, _ in gathered for i in s]
        results = [r for _, rs in gathered for r in rs]
        return seen, results

    def evaluate(self) -> dict[str, dict[str, float]]:
        """Metrics over every image processed (all ranks under DDP).

        Returns:
            ``{"bbox": {"AP", "AP50", ...}}`` on the main process; ``{}`` on the other ranks,
            as Detectron2's evaluators do.
        """
        gathered = self._gather()
        if gathered is None:
            return {}
        seen, results = gathered
        if not seen:
            logger.warning("COCOEvaluator.evaluate() called before any process(): nothing to do")
            return {}
        if self.output_dir is not None:
            atomic_write_json(self.output_dir / RESULTS_FILE, results, indent=None)
            logger.info("wrote %d detections to %s", len(results), self.output_dir / RESULTS_FILE)
        metrics = evaluate_coco(gt=self._gt, results=results, backend=self.backend, image_ids=seen)
        logger.info(
            "bbox: AP %.4f  AP50 %.4f  AP75 %.4f on %d images",
            metrics["AP"],
            metrics["AP50"],
            metrics["AP75"],
            len(set(seen)),
        )
        return {"bbox": metrics}
