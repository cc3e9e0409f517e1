import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from astrodet.evaluation.classification import classification_metrics


def test_matches_sklearn_on_random_labels():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, 300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 5, 300))
    m = classification_metrics(y_true, y_pred, num_classes=5)
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert m["per_class_f1"] == pytest.approx(list(f1_score(y_true, y_pred, average=None)))
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (5, 5) and cm.sum() == 300
    assert np.trace(cm) == int((y_true == y_pred).sum())
    assert cm[2].sum() == int((y_true == 2).sum())


def test_absent_class_counts_as_zero():
    m = classification_metrics([0, 1, 0, 1], [0, 1, 0, 1], num_classes=3)
    assert m["per_class_f1"] == [1.0, 1.0, 0.0]
    assert m["macro_f1"] == pytest.approx(2 / 3)
    assert m["accuracy"] == 1.0
    assert m["confusion_matrix"][2] == [0, 0, 0]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="differ in length"):
        classification_metrics([0, 1], [0], num_classes=2)
    with pytest.raises(ValueError, match=r"y_pred holds labels outside \[0, 2\)"):
        classification_metrics([0, 1], [0, 2], num_classes=2)
    with pytest.raises(ValueError, match="no labels"):
        classification_metrics([], [], num_classes=2)
