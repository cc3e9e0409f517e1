"""Edge cases of the fast protocol's shrinkage LDA: shapes, degenerate columns, grid choice."""

import numpy as np
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.metrics import f1_score

from probe.heads import SHRINKAGES, fit_predict, lda_predict

# numpy errors instead of warnings: a NaN or infinity anywhere in a fit fails the test
STRICT = dict(divide="raise", over="raise", invalid="raise")


def gaussian_classes(counts, test_counts, dim, seed, sep=1.0, factors=0, loud=0.0):
    """Class means ``sep`` x N(0, 1) per dimension and unit noise plus, optionally,
    ``factors`` shared noise directions of scale ``loud`` (a strongly correlated, anisotropic
    within-class covariance). Offset and scaled like raw network features."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(counts), dim)) * sep
    directions = rng.normal(size=(factors, dim))

    def draw(n_per_class):
        y = np.repeat(np.arange(len(n_per_class)), n_per_class)
        noise = rng.normal(size=(len(y), dim))
        noise += loud * rng.normal(size=(len(y), factors)) @ directions
        return (5.0 + 3.0 * (centres[y] + noise)).astype(np.float32), y

    return (*draw(counts), *draw(test_counts))


def with_columns(x, columns):
    return np.hstack([x, *(np.asarray(c, np.float32).reshape(len(x), -1) for c in columns)])


def constants(n, values):
    return [np.full(n, v) for v in values]


@pytest.mark.parametrize("shrinkages", [SHRINKAGES, (0.001,), (0.9,)])
def test_more_dimensions_than_examples(shrinkages):
    # 300-d, 40 examples: the within-class covariance has rank 37, only shrinkage makes it
    # invertible
    x, y, xt, yt = gaussian_classes([14, 13, 13], [100] * 3, 300, seed=0, sep=0.3)
    with np.errstate(**STRICT):
        pred, info = lda_predict(x, y, xt, num_classes=3, balanced=False, shrinkages=shrinkages)
    assert info["shrinkage"] in shrinkages
    assert f1_score(yt, pred, average="macro") > 0.9


def test_unshrunk_singular_covariance_is_skipped_or_rejected():
    x, y, xt, _ = gaussian_classes([14, 13, 13], [10] * 3, 300, seed=1, sep=0.3)
    # in the grid, a singular point fails its factorisation and is passed over
    _, info = lda_predict(x, y, xt, num_classes=3, balanced=False, shrinkages=(0.0, 0.5))
    assert info == {"shrinkage": 0.5}
    # alone, it cannot be fitted at all
    with pytest.raises(ValueError, match="not positive definite"):
        lda_predict(x, y, xt, num_classes=3, balanced=False, shrinkages=(0.0,))


def test_constant_columns_only_rescale_the_shrinkage_target():
    # A constant column is 0 once centred: it adds nothing to the within-class covariance
    # and its weight is 0, but it counts in the dimension d of the target trace / d * I.
    # With k of them, (1 - g) S + g tr(S) / (d + k) I is proportional to the matrix of the
    # shrinkage g' without them, where g' / (1 - g') = g d / ((d + k)(1 - g)); equal priors
    # make the decisions blind to that scale, so the predictions are identical. The values
    # have exact float32 means (the next test covers ones that do not).
    x, y, xt, _ = gaussian_classes([40] * 3, [150] * 3, 20, seed=2, sep=0.6)
    values = (0.0, 2.5, -7.25, 1e4) * 10  # many, so that g' is far enough from g
    d, k, g = x.shape[1], len(values), 0.3
    ratio = g * d / ((d + k) * (1 - g))
    kw = dict(num_classes=3, balanced=True)
    with np.errstate(**STRICT):
        padded, _ = lda_predict(
            with_columns(x, constants(len(x), values)),
            y,
            with_columns(xt, constants(len(xt), values)),
            shrinkages=(g,),
            **kw,
        )
    plain, _ = lda_predict(x, y, xt, shrinkages=(ratio / (1 + ratio),), **kw)
    assert np.array_equal(padded, plain)
    # not a vacuous comparison: the plain shrinkage g itself decides differently somewhere
    other, _ = lda_predict(x, y, xt, shrinkages=(g,), **kw)
    assert 0 < np.sum(other != plain)


def test_duplicated_and_constant_columns_barely_change_predictions():
    # Duplicates weigh their feature twice in the identity target and change trace / d,
    # so the classifier changes a little: near-equal predictions, not identical ones.
    x, y, xt, yt = gaussian_classes([60, 40, 50], [150] * 3, 24, seed=3, sep=0.8)

    def extra(a):
        return [a[:, :6], a[:, 3], a[:, 3], *constants(len(a), (0.0, -2.5))]

    kw = dict(num_classes=3, balanced=False, shrinkages=(0.3,))
    with np.errstate(**STRICT):
        padded, info = lda_predict(with_columns(x, extra(x)), y, with_columns(xt, extra(xt)), **kw)
    plain, _ = lda_predict(x, y, xt, **kw)
    assert info == {"shrinkage": 0.3}
    assert set(np.unique(padded)) <= {0, 1, 2}
    assert np.mean(padded == plain) >= 0.98
    assert f1_score(yt, padded, average="macro") > 0.9


def test_a_constant_column_is_neutral_whatever_its_value():
    # Strongly correlated noise: validation picks a small shrinkage (checked below).
    x, y, xt, yt = gaussian_classes([100] * 3, [100] * 3, 30, seed=0, sep=0.5, factors=2, loud=8)
    preds = {}
    for value in (0.0, 3.7):
        col = constants(len(x), [value])
        test_col = constants(len(xt), [value])
        pred, info = fit_predict(
            with_columns(x, col), y, with_columns(xt, test_col), num_classes=3, seed=0
        )
        assert info["shrinkage"] <= 0.01
        preds[value] = pred
    # centred, both columns are all zeros: the same classifier
    assert np.mean(preds[0.0] == preds[3.7]) >= 0.98
    assert f1_score(yt, preds[3.7], average="macro") > 0.8


@pytest.mark.parametrize("balanced", [False, True])
def test_two_classes(balanced):
    x, y, xt, yt = gaussian_classes([25, 45], [100, 100], 16, seed=4, sep=0.5)
    pred, info = fit_predict(x, y, xt, num_classes=2, balanced=balanced)
    assert info["shrinkage"] in SHRINKAGES
    assert set(np.unique(pred)) == {0, 1}
    assert f1_score(yt, pred, average="macro") > 0.8


@pytest.mark.parametrize("balanced", [False, True])
def test_absent_classes_anywhere_in_the_label_range(balanced):
    # labels 1 and 4 out of 6 classes: absent ones before, between and after them
    x, y, xt, yt = gaussian_classes([25, 45], [100, 100], 16, seed=5, sep=0.5)
    labels = np.array([1, 4])
    with np.errstate(**STRICT):
        wide, wide_info = lda_predict(x, labels[y], xt, num_classes=6, balanced=balanced)
    narrow, narrow_info = lda_predict(x, y, xt, num_classes=2, balanced=balanced)
    assert set(np.unique(wide)) == {1, 4}
    # the absent classes change nothing: same split, grid choice and decisions
    assert wide_info == narrow_info
    assert np.array_equal(wide, labels[narrow])
    assert 0.7 < np.mean(narrow == yt) < 1.0  # the priors have near-boundary points to decide


@pytest.mark.parametrize("num_classes", [3, 4, 5, 6])
@pytest.mark.parametrize("shrinkage", [0.001, 0.1, 0.6, 0.9])
def test_equals_sklearn_lsqr_lda_with_unequal_class_counts(num_classes, shrinkage):
    # sklearn shrinks each class covariance towards tr(C_k) / d * I and pools them with the
    # class frequencies; the trace being linear, that is the pooled covariance shrunk
    # towards tr(S) / d * I as here, and its priors are the frequencies (balanced=False)
    counts = [10 + 17 * k for k in range(num_classes)]
    x, y, xt, yt = gaussian_classes(
        counts, [60] * num_classes, 40, seed=num_classes, sep=0.5, factors=3, loud=1.0
    )
    mean, std = x.mean(0), x.std(0)
    x, xt = (x - mean) / std, (xt - mean) / std  # standardised: the shrinkage means the same
    ours, _ = lda_predict(
        x, y, xt, num_classes=num_classes, balanced=False, shrinkages=(shrinkage,)
    )
    theirs = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=shrinkage).fit(x, y).predict(xt)
    assert np.array_equal(ours, theirs)
    assert 1 / num_classes + 0.2 < np.mean(ours == yt) < 1.0  # neither trivial nor perfect


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("per_class,dim", [(300, 30), (8, 200)])
def test_correlated_noise_chooses_the_small_shrinkage(seed, per_class, dim):
    # Two loud shared noise directions hide the class means from a nearest-mean rule
    # (shrinkage near 1); LDA with little shrinkage projects them out. That holds even
    # with 8 examples per class in 200-d, as the loud part has rank 2.
    x, y, xt, yt = gaussian_classes(
        [per_class] * 3, [100] * 3, dim, seed=seed, sep=0.5, factors=2, loud=8
    )
    kw = dict(num_classes=3, balanced=False, seed=seed)
    pred, info = lda_predict(x, y, xt, shrinkages=(0.9, 0.001), **kw)
    assert info == {"shrinkage": 0.001}
    strong, _ = lda_predict(x, y, xt, shrinkages=(0.9,), **kw)
    assert f1_score(yt, pred, average="macro") > f1_score(yt, strong, average="macro") + 0.2


@pytest.mark.parametrize("seed", range(5))
def test_validation_ties_keep_the_first_grid_point(seed):
    # Few examples in high dimension with isotropic noise: which shrinkage is better is
    # not robust, but well separated classes make every grid point perfect on validation,
    # and a tie keeps the earlier one, in either order.
    x, y, xt, yt = gaussian_classes([8] * 3, [50] * 3, 300, seed=seed, sep=0.5)
    for grid in [(0.9, 0.001), (0.001, 0.9)]:
        pred, info = lda_predict(
            x, y, xt, num_classes=3, balanced=False, seed=seed, shrinkages=grid
        )
        assert info == {"shrinkage": grid[0]}
        assert np.mean(pred == yt) > 0.95


def test_input_dtypes_layouts_and_no_mutation():
    x, y, xt, _ = gaussian_classes([30, 50, 20, 40], [80] * 4, 50, seed=6, sep=0.5)
    # float64 data that float32 cannot hold exactly; the fit runs in float32 either way
    rng = np.random.default_rng(6)
    x64 = x.astype(np.float64) + rng.normal(scale=1e-3, size=x.shape)
    xt64 = xt.astype(np.float64) + rng.normal(scale=1e-3, size=xt.shape)
    x32, xt32 = x64.astype(np.float32), xt64.astype(np.float32)
    kw = dict(num_classes=4, balanced=True, seed=2)
    originals = [a.copy() for a in (x64, xt64, x32, xt32, y)]

    ref, ref_info = lda_predict(x32, y, xt32, **kw)
    runs = [
        lda_predict(x64, y, xt64, **kw),
        lda_predict(x32, y.astype(np.int32), xt64, **kw),
        lda_predict(np.asfortranarray(x32), y, np.asfortranarray(xt32), **kw),
        lda_predict(np.repeat(x32, 2, axis=1)[:, ::2], y, xt32, **kw),  # strided view
        fit_predict(x64, y, xt64, num_classes=4, balanced=True, seed=2),
    ]
    for pred, info in runs:
        assert info == ref_info
        assert np.array_equal(pred, ref)
    assert len(np.unique(ref)) == 4
    # a C-ordered float32 array enters without a copy: it must come out unchanged
    for before, after in zip(originals, (x64, xt64, x32, xt32, y)):
        assert after.dtype == before.dtype
        assert np.array_equal(after, before)


def test_a_grid_without_a_usable_shrinkage_is_an_error():
    x, y, xt, _ = gaussian_classes([20] * 2, [5] * 2, 100, seed=1, sep=0.5)
    with pytest.raises(ValueError, match="include a larger one"):
        lda_predict(x, y, xt, num_classes=2, balanced=False, shrinkages=(0.0, 0.0))
    for grid in ((), (0.5, 1.5), (-0.1,)):
        with pytest.raises(ValueError, match=r"shrinkages must be in \[0, 1\]"):
            lda_predict(x, y, xt, num_classes=2, balanced=False, shrinkages=grid)
