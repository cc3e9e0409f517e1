"""Classifiers on frozen features: a closed-form shrinkage LDA (the fast protocol), an
L-BFGS logistic regression, the paper's Adam-trained linear layer, and a weighted kNN.

All take train features/labels and test features and return predicted test labels.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math

import numpy as np
import scipy.linalg
import threadpoolctl
import torch
import torch.nn.functional as F

from .datasets import AUTO

logger = logging.getLogger(__name__)

__all__ = [
    "C_GRID",
    "PROTOCOLS",
    "HEADS",
    "class_weights",
    "fit_predict",
    "knn_predict",
    "lbfgs_logistic_predict",
    "lda_predict",
    "paper_epochs",
    "paper_linear_predict",
]

PROTOCOLS = ("fast", "logistic", "paper")
HEADS = ("linear", "knn")
# Inverse regularisation strengths tried by the logistic protocol (sklearn's C convention:
# loss = mean cross-entropy + ||W||^2 / (2 C n)), strongest first for warm starts.
C_GRID = (0.001, 0.01, 0.1, 1.0)
VAL_FRACTION = 0.2
# The choice of C only needs the ranking of the grid points: loose fits. The refit starts
# from the chosen grid fit, so a few dozen L-BFGS steps reach the same test F1 as 200
# (8000 x 768 features, 4 fractions x 3 seeds: identical macro F1, 3.7x less time).
GRID_MAX_ITER = 15
FINAL_MAX_ITER = 40


def paper_epochs(dataset: str) -> int:
    """Epochs of the paper's linear probe: 200 for RGZ sets, 100 otherwise (GMNIST)."""
    return 200 if dataset.startswith("rgz") else 100


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Weights inversely proportional to class counts, normalised so that they average to 1
    over the samples (sklearn's ``class_weight="balanced"``); absent classes get 0."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    w = np.zeros(num_classes)
    w[present] = len(labels) / (present.sum() * counts[present])
    return w


def _device(device) -> torch.device:
    if str(device) == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@functools.cache
def _blas_controller() -> threadpoolctl.ThreadpoolController:
    # finding the BLAS libraries takes milliseconds: do it once
    return threadpoolctl.ThreadpoolController()


@contextlib.contextmanager
def _cpu_threads(device: torch.device, n: int | None):
    """Run with ``n`` CPU threads (torch intra-op and numpy/scipy BLAS): tiny matrices are
    slower when split, and much slower on a busy machine, where threads wait for each other."""
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    with _blas_controller().limit(limits=n):
        if device.type == "cpu":
            torch.set_num_threads(min(n, previous))
        try:
            yield
        finally:
            torch.set_num_threads(previous)


# Below this many feature values (train x dim) a fit runs on one CPU thread.
SMALL_PROBLEM = 1_000_000
# Below this many multiply-adds in its Gram matrix (train x dim^2) an LDA fit runs on one
# thread: 8000 x 768 features take 0.1 s on one core.
SMALL_GRAM = 20_000_000_000


def _standardise(train: np.ndarray, *others: np.ndarray):
    mean = train.mean(0, keepdims=True)
    std = train.std(0, keepdims=True)
    std[std < 1e-6] = 1.0  # constant features stay constant instead of blowing up
    return [(x - mean) / std for x in (train, *others)]


def _fit_lbfgs(x, y, w, *, C, num_classes, init=None, max_iter=200):
    """Multinomial logistic regression by full-batch L-BFGS; returns (W, b)."""
    n, d = x.shape
    weight = torch.zeros(d, num_classes, dtype=x.dtype, device=x.device)
    bias = torch.zeros(num_classes, dtype=x.dtype, device=x.device)
    if init is not None:
        weight.copy_(init[0])
        bias.copy_(init[1])
    weight.requires_grad_(True)
    bias.requires_grad_(True)
    sample_w = w[y]
    norm = sample_w.sum()
    l2 = 1.0 / (2.0 * C * n)
    opt = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        history_size=10,
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        loss = (F.cross_entropy(x @ weight + bias, y, reduction="none") * sample_w).sum() / norm
        loss = loss + l2 * (weight * weight).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return weight.detach(), bias.detach()


def _stratified_holdout(labels: np.ndarray, fraction: float, seed: int):
    """A stratified train/validation split; None when a class has fewer than two examples."""
    counts = np.bincount(labels)
    present = np.flatnonzero(counts)
    if counts[present].min() < 2:
        return None
    rng = np.random.default_rng(seed)
    val = []
    for c in present:
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = min(len(idx) - 1, max(1, int(round(fraction * len(idx)))))
        val.append(idx[:k])
    val = np.sort(np.concatenate(val))
    train = np.setdiff1d(np.arange(len(labels)), val)
    return train, val


def _macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    f1 = []
    for c in range(num_classes):
        tp = np.sum((y_pred == c) & (y_true == c))
        denom = np.sum(y_pred == c) + np.sum(y_true == c)
        if np.sum(y_true == c):
            f1.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1))


def _best_on_validation(candidates, fit_and_score):
    """The candidate whose fit scores highest on the validation split; ties keep the
    earlier one. ``fit_and_score(candidate)`` returns ``(score, fit)``, or None to skip it.

    Returns:
        ``(candidate, fit)``, or None when every candidate was skipped.
    """
    best = None
    for candidate in candidates:
        scored = fit_and_score(candidate)
        if scored is not None and (best is None or scored[0] > best[0] + 1e-9):
            best = (scored[0], candidate, scored[1])
    return None if best is None else best[1:]


def lbfgs_logistic_predict(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    *,
    num_classes: int,
    balanced: bool,
    seed: int = 0,
    c_grid: tuple[float, ...] = C_GRID,
    device: str = AUTO,
) -> tuple[np.ndarray, dict]:
    """The logistic protocol: standardised features, multinomial logistic regression by
    L-BFGS, the usual linear probe of self-supervised evaluation.

    ``C`` is chosen by macro F1 on a stratified validation split (20 %) of the training
    subset over ``c_grid`` (warm-started from strong to weak regularisation), then the model
    is refit on the whole subset. A subset with a class of one example skips the choice
    and uses ``C = 1``.

    Returns:
        (predicted test labels, info with the chosen ``C``).
    """
    dev = _device(device)
    train_x, test_x = _standardise(train_x.astype(np.float32), test_x.astype(np.float32))
    x = torch.from_numpy(train_x).to(dev)
    y = torch.from_numpy(train_y.astype(np.int64)).to(dev)
    w_np = class_weights(train_y, num_classes) if balanced else np.ones(num_classes)
    w = torch.from_numpy(w_np.astype(np.float32)).to(dev)
    split = _stratified_holdout(train_y, VAL_FRACTION, seed) if len(c_grid) > 1 else None
    best_c, init = (c_grid[0] if len(c_grid) == 1 else 1.0), None
    if split is not None:
        tr, va = (torch.from_numpy(i).to(dev) for i in split)
        previous = None

        def fit_and_score(C):
            nonlocal previous  # each grid fit starts from the one before
            previous = _fit_lbfgs(
                x[tr], y[tr], w, C=C, num_classes=num_classes, init=previous, max_iter=GRID_MAX_ITER
            )
            pred = (x[va] @ previous[0] + previous[1]).argmax(1).cpu().numpy()
            # macro F1 weighs classes equally, whatever the class counts
            return _macro_f1(train_y[split[1]], pred, num_classes), previous

        best_c, init = _best_on_validation(c_grid, fit_and_score)
    weight, bias = _fit_lbfgs(
        x, y, w, C=best_c, num_classes=num_classes, init=init, max_iter=FINAL_MAX_ITER
    )
    logits = torch.from_numpy(test_x).to(dev) @ weight + bias
    return logits.argmax(1).cpu().numpy(), {"C": best_c}


# ----------------------------------------------------------------------------- fast: LDA

# Shrinkage of the pooled within-class covariance towards a multiple of the identity tried
# by the fast protocol, strongest first (ties keep the stronger); chosen by validation
# macro F1. 0 would be plain LDA, 1 a nearest-class-mean rule on standardised features.
SHRINKAGES = (0.9, 0.6, 0.3, 0.1, 0.01, 0.001)
# Used when the training subset is too small for a validation split.
DEFAULT_SHRINKAGE = 0.1


def _class_moments(xc: np.ndarray, y: np.ndarray, num_classes: int):
    """Sufficient statistics of LDA: the Gram matrix, per-class sums and counts."""
    onehot = np.zeros((len(y), num_classes), np.float32)
    onehot[np.arange(len(y)), y] = 1.0
    # x.T @ x on a C-ordered array runs as one symmetric rank-k update (half a GEMM)
    return xc.T @ xc, onehot.T @ xc, onehot.sum(0).astype(np.float64)


def _standardised_lda_moments(gram, sums, counts, scale):
    """Pooled within-class covariance and class means of the standardised features
    (``scale`` x centred features), computed from the moments instead of a copy."""
    present = counts > 0
    sums = sums[present].astype(np.float64)
    within = gram.astype(np.float64) - (sums.T / counts[present]) @ sums
    within *= np.outer(scale, scale) / counts.sum()
    means = sums / counts[present, None] * scale
    return within, means, present


def _lda_solve(moments, *, scale, shrinkage, log_prior, dtype=np.float64):
    """Shrinkage-LDA weights (D, K) and biases (K,) on the centred, unscaled features;
    ``dtype`` is the precision of the factorisation. None if it fails (not positive
    definite in that precision)."""
    within, means, present = moments
    d = within.shape[0]
    a = within.astype(dtype) * (1.0 - shrinkage)
    a[np.diag_indices(d)] += shrinkage * max(np.trace(within) / d, 1e-12)
    (posv,) = scipy.linalg.get_lapack_funcs(("posv",), (a,))
    _, w, status = posv(a, means.T.astype(dtype), lower=1, overwrite_a=1, overwrite_b=1)
    if status != 0:
        return None
    weight = np.zeros((d, len(present)), np.float32)
    bias = np.full(len(present), -np.inf)
    weight[:, present] = w * scale[:, None]
    bias[present] = -0.5 * np.einsum("kd,dk->k", means, w) + log_prior[present]
    return weight, bias


def lda_predict(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    *,
    num_classes: int,
    balanced: bool,
    seed: int = 0,
    shrinkages: tuple[float, ...] = SHRINKAGES,
) -> tuple[np.ndarray, dict]:
    """The fast protocol: shrinkage linear discriminant analysis on standardised features.

    A linear classifier in closed form: class means and the pooled within-class
    covariance, shrunk towards a multiple of the identity. The shrinkage is chosen from
    ``shrinkages`` by macro F1 on a stratified validation split (20 %) of the training
    subset, then the classifier is refit on the whole subset. All grid points share one
    pass over the features (the moments of the two parts add up), so a fit costs one
    Gram matrix and a Cholesky factorisation per grid point. Runs on the CPU.

    Args:
        train_x, train_y, test_x: features (N, D) and labels (N,).
        num_classes: number of classes.
        balanced: equal class priors (unbalanced sets) instead of the subset's frequencies.
        seed: seed of the validation split.
        shrinkages: candidate shrinkages in [0, 1], tried in order.

    Returns:
        (predicted test labels, info with the chosen ``shrinkage``).
    """
    bad = [g for g in shrinkages if not 0.0 <= g <= 1.0]
    if not shrinkages or bad:
        raise ValueError(f"shrinkages must be in [0, 1], got {tuple(shrinkages)}")
    x = np.asarray(train_x, dtype=np.float32)
    y = np.asarray(train_y, dtype=np.int64)
    mean = x.mean(0)
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    present = counts > 0
    log_prior = np.zeros(num_classes)
    if not balanced:
        log_prior[present] = np.log(counts[present] / counts.sum())
    split = _stratified_holdout(y, VAL_FRACTION, seed) if len(shrinkages) > 1 else None
    order = np.concatenate(split) if split is not None else np.arange(len(y))
    # one centred copy, validation rows last, so both parts are contiguous views
    xc = x[order]
    xc -= mean
    yo = y[order]
    n_train = len(order) - (len(split[1]) if split is not None else 0)
    parts = [_class_moments(xc[:n_train], yo[:n_train], num_classes)]
    if split is not None:
        parts.append(_class_moments(xc[n_train:], yo[n_train:], num_classes))
    gram, sums, n = (sum(p[i] for p in parts) for i in range(3))
    std = np.sqrt(np.clip(np.diag(gram).astype(np.float64) / len(y), 0.0, None))
    # a constant feature is dropped (scale 0): what is left of it after centring is the
    # rounding error of its float32 mean, which scaling to unit variance would blow up
    constant = std <= 1e-6 + 1e-5 * np.abs(mean.astype(np.float64))
    scale = np.where(constant, 0.0, 1.0 / np.maximum(std, 1e-30))
    best = shrinkages[0] if len(shrinkages) == 1 else DEFAULT_SHRINKAGE
    if split is not None:
        moments = _standardised_lda_moments(*parts[0], scale)

        def fit_and_score(shrinkage):
            # single precision ranks the grid points as well, in half the time
            fit = _lda_solve(
                moments, scale=scale, shrinkage=shrinkage, log_prior=log_prior, dtype=np.float32
            )
            if fit is None:
                return None
            pred = (xc[n_train:] @ fit[0] + fit[1]).argmax(1)
            return _macro_f1(yo[n_train:], pred, num_classes), None

        chosen = _best_on_validation(shrinkages, fit_and_score)
        if chosen is None:
            raise ValueError(
                f"no shrinkage in {tuple(shrinkages)} gives a positive definite within-class "
                "covariance; include a larger one"
            )
        best = chosen[0]
    moments = _standardised_lda_moments(gram, sums, n, scale)
    fit = _lda_solve(moments, scale=scale, shrinkage=best, log_prior=log_prior)
    if fit is None:
        raise ValueError(
            f"the shrunk within-class covariance (shrinkage {best}) is not positive "
            "definite; try --protocol logistic"
        )
    weight, bias = fit
    # centre first: large offsets times the weights would cancel only up to rounding
    logits = (np.asarray(test_x, dtype=np.float32) - mean) @ weight + bias
    return logits.argmax(1), {"shrinkage": best}


def paper_linear_predict(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    *,
    num_classes: int,
    balanced: bool,
    seed: int = 0,
    epochs: int = 100,
    lr: float = 5e-4,
    batch_size: int = 16,
    device: str = AUTO,
) -> tuple[np.ndarray, dict]:
    """The paper's protocol: one linear layer on the raw frozen features, Adam (lr 5e-4),
    batch 16, ``epochs`` epochs, cross-entropy weighted by inverse class counts when
    ``balanced``. Returns (predicted test labels, info)."""
    dev = _device(device)
    g = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(train_x.astype(np.float32)).to(dev)
    y = torch.from_numpy(train_y.astype(np.int64)).to(dev)
    layer = torch.nn.Linear(x.shape[1], num_classes).to(dev)
    with torch.no_grad():
        bound = 1.0 / math.sqrt(x.shape[1])
        layer.weight.copy_(torch.empty_like(layer.weight).uniform_(-bound, bound, generator=g))
        layer.bias.copy_(torch.empty_like(layer.bias).uniform_(-bound, bound, generator=g))
    weight = None
    if balanced:
        weight = torch.from_numpy(class_weights(train_y, num_classes).astype(np.float32)).to(dev)
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    n = len(y)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g).to(dev)
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            loss = F.cross_entropy(layer(x[idx]), y[idx], weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = layer(torch.from_numpy(test_x.astype(np.float32)).to(dev)).argmax(1)
    return pred.cpu().numpy(), {"epochs": epochs}


def knn_predict(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    *,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    device: str = AUTO,
) -> tuple[np.ndarray, dict]:
    """Weighted kNN on cosine similarity (DINO's evaluation): the ``k`` nearest training
    features vote with weight ``exp(similarity / temperature)``."""
    dev = _device(device)
    tr = F.normalize(torch.from_numpy(train_x.astype(np.float32)).to(dev), dim=1)
    te = F.normalize(torch.from_numpy(test_x.astype(np.float32)).to(dev), dim=1)
    y = torch.from_numpy(train_y.astype(np.int64)).to(dev)
    k = min(k, len(y))
    preds = []
    for i in range(0, len(te), 1024):
        sim, idx = (te[i : i + 1024] @ tr.T).topk(k, dim=1)
        votes = torch.zeros(len(sim), num_classes, device=dev)
        votes.scatter_add_(1, y[idx], (sim / temperature).exp())
        preds.append(votes.argmax(1))
    return torch.cat(preds).cpu().numpy(), {"k": k, "temperature": temperature}


def fit_predict(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    *,
    num_classes: int,
    head: str = "linear",
    protocol: str = "fast",
    balanced: bool = False,
    seed: int = 0,
    epochs: int = 100,
    device: str = AUTO,
) -> tuple[np.ndarray, dict]:
    """Train a head on frozen train features and predict the test features.

    Args:
        train_x, train_y, test_x: features (N, D) and labels (N,).
        num_classes: number of classes.
        head: ``"linear"`` or ``"knn"``.
        protocol: for the linear head, ``"fast"`` (closed-form shrinkage LDA, shrinkage
            chosen on a validation split; CPU), ``"logistic"`` (L-BFGS logistic regression,
            C chosen on a validation split) or ``"paper"`` (Adam, batch 16, ``epochs``
            epochs).
        balanced: weight classes by inverse counts (unbalanced sets).
        seed: seed of the validation split and of the paper protocol's shuffling.
        epochs: epochs of the paper protocol.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``.

    Returns:
        (predicted test labels int64 (M,), info dict).
    """
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; valid: {', '.join(HEADS)}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    if train_x.shape[0] != train_y.shape[0]:
        raise ValueError(f"{train_x.shape[0]} train features but {train_y.shape[0]} labels")
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train features are {train_x.shape[1]}-d, test {test_x.shape[1]}-d")
    for name, x in (("train", train_x), ("test", test_x)):
        # one sum is cheaper than an elementwise test and non-finite whenever a value is
        if not np.isfinite(np.sum(x)) and not np.isfinite(x).all():
            bad = int(np.count_nonzero(~np.isfinite(x).all(axis=1)))
            raise ValueError(f"{bad} {name} feature vectors hold NaN or infinite values")
    torch.manual_seed(seed)
    dev = _device(device)
    # the paper protocol's batches of 16 are always small; the fast protocol's cost is
    # its Gram matrix, worth splitting over threads only when large
    if head == "linear" and protocol == "paper":
        small = True
    elif head == "linear" and protocol == "fast":
        small = train_x.shape[0] * train_x.shape[1] ** 2 < SMALL_GRAM
    else:
        small = train_x.size < SMALL_PROBLEM
    with _cpu_threads(dev, 1 if small else None):
        return _fit_predict(
            train_x, train_y, test_x, num_classes, head, protocol, balanced, seed, epochs, dev
        )


def _fit_predict(
    train_x, train_y, test_x, num_classes, head, protocol, balanced, seed, epochs, device
):
    if head == "knn":
        pred, info = knn_predict(train_x, train_y, test_x, num_classes=num_classes, device=device)
    elif protocol == "fast":
        pred, info = lda_predict(
            train_x, train_y, test_x, num_classes=num_classes, balanced=balanced, seed=seed
        )
    elif protocol == "logistic":
        pred, info = lbfgs_logistic_predict(
            train_x,
            train_y,
            test_x,
            num_classes=num_classes,
            balanced=balanced,
            seed=seed,
            device=device,
        )
    else:
        pred, info = paper_linear_predict(
            train_x,
            train_y,
            test_x,
            num_classes=num_classes,
            balanced=balanced,
            seed=seed,
            epochs=epochs,
            device=device,
        )
    return pred.astype(np.int64), info
