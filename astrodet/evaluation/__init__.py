"""Evaluation: COCO box metrics (Detectron2's ``COCOEvaluator``), classification metrics, and
the classical source finder scored by the same evaluator (:mod:`.classical`)."""

from .classification import classification_metrics
from .coco_evaluation import (
    COCOEvaluator,
    dicts_to_coco_gt,
    evaluate_coco,
    flatten_metrics,
    metrics_to_json,
    predictions_to_coco_results,
    resolve_backend,
)

__all__ = [
    "COCOEvaluator",
    "classification_metrics",
    "dicts_to_coco_gt",
    "evaluate_coco",
    "flatten_metrics",
    "metrics_to_json",
    "predictions_to_coco_results",
    "resolve_backend",
]
