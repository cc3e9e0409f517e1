"""The probe heads on small synthetic features: separable classes must be learned."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from probe.heads import class_weights, fit_predict, paper_epochs


def blobs(n_per_class, num_classes=3, dim=48, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_classes, dim)) * 1.5
    y = np.repeat(np.arange(num_classes), n_per_class)
    x = centres[y] + spread * rng.normal(size=(len(y), dim))
    # an offset and scale like raw network features, which the fast protocol standardises
    return (5.0 + 3.0 * x).astype(np.float32), y


@pytest.mark.parametrize(
    "head,protocol,kwargs",
    [("linear", "fast", {}), ("linear", "paper", {"epochs": 15}), ("knn", "fast", {})],
)
def test_heads_learn_separable_classes(head, protocol, kwargs):
    x, y = blobs(60)
    xt, yt = blobs(40, seed=0)
    xt = xt + np.random.default_rng(1).normal(scale=0.3, size=xt.shape).astype(np.float32)
    pred, info = fit_predict(
        x, y, xt, num_classes=3, head=head, protocol=protocol, seed=0, device="cpu", **kwargs
    )
    assert pred.shape == yt.shape and pred.dtype == np.int64
    assert f1_score(yt, pred, average="macro") > 0.95
    if protocol == "fast" and head == "linear":
        assert info["C"] > 0


def test_fast_protocol_is_deterministic_and_handles_singleton_classes():
    x, y = blobs(20)
    keep = np.r_[0, np.arange(20, 60)]  # class 0 has one example: no validation split
    p1, info = fit_predict(x[keep], y[keep], x, num_classes=3, device="cpu", seed=3)
    p2, _ = fit_predict(x[keep], y[keep], x, num_classes=3, device="cpu", seed=3)
    assert np.array_equal(p1, p2)
    assert info["C"] == 1.0


def test_class_weights_balance_counts():
    y = np.array([0] * 90 + [1] * 10)
    w = class_weights(y, 3)
    assert w[2] == 0.0
    assert w[1] / w[0] == pytest.approx(9.0)
    assert (w[y]).mean() == pytest.approx(1.0)


def test_balanced_weights_help_minority_class():
    x, y = blobs(200, num_classes=2, dim=8, spread=2.5, seed=4)
    keep = np.r_[np.arange(200), np.arange(200, 215)]  # 200 vs 15
    xt, yt = blobs(200, num_classes=2, dim=8, spread=2.5, seed=4)
    plain, _ = fit_predict(
        x[keep], y[keep], xt, num_classes=2, device="cpu", protocol="paper", epochs=10
    )
    weighted, _ = fit_predict(
        x[keep],
        y[keep],
        xt,
        num_classes=2,
        device="cpu",
        protocol="paper",
        epochs=10,
        balanced=True,
    )
    assert (weighted == 1).sum() > (plain == 1).sum()


def test_bad_arguments():
    x, y = blobs(5)
    with pytest.raises(ValueError, match="unknown head 'svm'"):
        fit_predict(x, y, x, num_classes=3, head="svm")
    with pytest.raises(ValueError, match="unknown protocol"):
        fit_predict(x, y, x, num_classes=3, protocol="slow")
    with pytest.raises(ValueError, match="-d"):
        fit_predict(x, y, x[:, :3], num_classes=3)
    assert paper_epochs("rgz_first") == 200 and paper_epochs("gmnist") == 100
