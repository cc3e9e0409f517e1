"""The probe heads on small synthetic features: separable classes must be learned."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from probe.heads import DEFAULT_SHRINKAGE, class_weights, fit_predict, lda_predict, paper_epochs


def blobs(n_per_class, num_classes=3, dim=48, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_classes, dim)) * 1.5
    y = np.repeat(np.arange(num_classes), n_per_class)
    x = centres[y] + spread * rng.normal(size=(len(y), dim))
    # an offset and scale like raw network features, which the fast protocol standardises
    return (5.0 + 3.0 * x).astype(np.float32), y


@pytest.mark.parametrize(
    "head,protocol,kwargs",
    [
        ("linear", "fast", {}),
        ("linear", "logistic", {}),
        ("linear", "paper", {"epochs": 15}),
        ("knn", "fast", {}),
    ],
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
        assert 0 < info["shrinkage"] < 1
    if protocol == "logistic":
        assert info["C"] > 0


@pytest.mark.parametrize(
    "protocol,key,default", [("fast", "shrinkage", DEFAULT_SHRINKAGE), ("logistic", "C", 1.0)]
)
def test_protocols_are_deterministic_and_handle_singleton_classes(protocol, key, default):
    x, y = blobs(20)
    keep = np.r_[0, np.arange(20, 60)]  # class 0 has one example: no validation split
    kw = dict(num_classes=3, device="cpu", seed=3, protocol=protocol)
    p1, info = fit_predict(x[keep], y[keep], x, **kw)
    p2, _ = fit_predict(x[keep], y[keep], x, **kw)
    assert np.array_equal(p1, p2)
    assert info[key] == default


@pytest.mark.parametrize("shrinkage", [0.01, 0.3])
def test_fast_protocol_equals_sklearn_shrinkage_lda(shrinkage):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    x, y = blobs(30, num_classes=4, dim=64, spread=3.0, seed=5)
    xt, _ = blobs(50, num_classes=4, dim=64, spread=3.0, seed=6)
    # already standardised, so that the shrinkage means the same in both
    mean, std = x.mean(0), x.std(0)
    x, xt = (x - mean) / std, (xt - mean) / std
    ours, info = lda_predict(x, y, xt, num_classes=4, balanced=False, shrinkages=(shrinkage,))
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=shrinkage).fit(x, y)
    assert info == {"shrinkage": shrinkage}
    assert np.array_equal(ours, lda.predict(xt))
    # equal priors (balanced) move decisions towards a rare class
    keep = np.r_[np.arange(30), np.arange(30, 34), np.arange(60, 120)]
    kw = dict(num_classes=4, shrinkages=(0.3,))
    plain, _ = lda_predict(x[keep], y[keep], xt, balanced=False, **kw)
    equal, _ = lda_predict(x[keep], y[keep], xt, balanced=True, **kw)
    assert (equal == 1).sum() > (plain == 1).sum()


def test_fast_protocol_is_invariant_to_feature_offsets_and_scales():
    x, y = blobs(40, num_classes=3, dim=32, spread=2.0, seed=7)
    xt, _ = blobs(30, num_classes=3, dim=32, spread=2.0, seed=8)
    rng = np.random.default_rng(0)
    scale = np.exp(rng.normal(0, 2, 32)).astype(np.float32)
    offset = rng.normal(0, 100, 32).astype(np.float32)
    p1, i1 = fit_predict(x, y, xt, num_classes=3, seed=1)
    p2, i2 = fit_predict(x * scale + offset, y, xt * scale + offset, num_classes=3, seed=1)
    assert i1 == i2
    assert np.mean(p1 == p2) > 0.98


def test_fast_protocol_never_predicts_an_absent_class_and_rejects_nan():
    x, y = blobs(20, num_classes=3)
    pred, _ = fit_predict(x, y, x, num_classes=5)
    assert set(np.unique(pred)) <= {0, 1, 2}
    bad = x.copy()
    bad[3, 5] = np.nan
    bad[7] = np.inf
    with pytest.raises(ValueError, match="2 train feature vectors hold NaN or infinite"):
        fit_predict(bad, y, x, num_classes=3)
    with pytest.raises(ValueError, match="1 test feature vectors"):
        fit_predict(x, y, bad[6:8], num_classes=3)


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
    with pytest.raises(ValueError, match="fast, logistic, paper"):
        fit_predict(x, y, x, num_classes=3, protocol="lbfgs")
    with pytest.raises(ValueError, match="-d"):
        fit_predict(x, y, x[:, :3], num_classes=3)
    assert paper_epochs("rgz_first") == 200 and paper_epochs("gmnist") == 100
