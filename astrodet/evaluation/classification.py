"""Classification metrics shared by the probes and the supervised baseline."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

__all__ = ["classification_metrics"]


def classification_metrics(y_true, y_pred, *, num_classes: int) -> dict:
    """Macro F1, accuracy, per-class F1 and the confusion matrix of one set of predictions.

    Every class ``0..num_classes-1`` counts, also one absent from both ``y_true`` and
    ``y_pred`` (its F1 is 0), so numbers from different subsets stay comparable and equal
    ``sklearn.metrics.f1_score(y_true, y_pred, average="macro", labels=range(num_classes))``.

    Args:
        y_true: true labels, integers in ``[0, num_classes)``.
        y_pred: predicted labels, same length.
        num_classes: number of classes.

    Returns:
        dict with ``macro_f1`` (float), ``accuracy`` (float), ``per_class_f1`` (list of
        ``num_classes`` floats) and ``confusion_matrix`` (``num_classes`` x ``num_classes``
        nested list of ints; rows are true classes, columns predictions).
    """
    y_true = np.asarray(y_true).reshape(-1)
    y_pred = np.asarray(y_pred).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred differ in length: {y_true.shape[0]} != {y_pred.shape[0]}"
        )
    if y_true.size == 0:
        raise ValueError("classification_metrics got no labels")
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.issubdtype(y.dtype, np.integer):
            if not np.all(np.equal(np.mod(y, 1), 0)):
                raise ValueError(f"{name} holds non-integer labels")
            y = y.astype(np.int64)
        bad = (y < 0) | (y >= num_classes)
        if bad.any():
            raise ValueError(
                f"{name} holds labels outside [0, {num_classes}): {sorted(set(y[bad].tolist()))[:5]}"
            )
    y_true = y_true.astype(np.int64)
    y_pred = y_pred.astype(np.int64)
    labels = np.arange(num_classes)
    per_class = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0.0)
    return {
        "macro_f1": float(np.mean(per_class)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "per_class_f1": [float(v) for v in per_class],
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
