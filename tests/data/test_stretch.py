"""Stretches by name: range, monotonicity, robustness, registration, multi-stretch, to_rgb."""

from __future__ import annotations

import numpy as np
import pytest

from astrodet.data import stretch as st
from astrodet.data.stretch import (
    DEFAULT_MULTI_STRETCH,
    apply_stretch,
    list_stretches,
    multi_stretch,
    register_stretch,
    to_rgb,
)

SINGLE = ["linear", "log", "sqrt", "asinh", "zscale", "power"]


def _sky(seed=0, size=48):
    rng = np.random.default_rng(seed)
    img = rng.normal(0.0, 1e-4, (size, size)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    img += 0.5 * np.exp(-((yy - 20) ** 2 + (xx - 20) ** 2) / 4.0)  # bright core
    img += 0.005 * np.exp(-((yy - 35) ** 2 + (xx - 10) ** 2) / 8.0)  # faint source
    return img


def test_builtins_registered():
    assert set(SINGLE + ["multi"]) <= set(list_stretches())
    assert list_stretches() == sorted(list_stretches())


@pytest.mark.parametrize("name", SINGLE)
def test_range_shape_dtype(name):
    img = _sky()
    out = apply_stretch(img, name)
    assert out.shape == img.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert out.max() > out.min()


@pytest.mark.parametrize("name", SINGLE)
def test_monotonic(name):
    ramp = np.linspace(-1.0, 5.0, 400, dtype=np.float32).reshape(20, 20)
    out = apply_stretch(ramp, name).ravel()
    assert np.all(np.diff(out) >= -1e-7)
    assert out[-1] > out[0]


@pytest.mark.parametrize("name", SINGLE + ["multi"])
def test_constant_and_nan_images_are_safe(name):
    for img in (np.full((8, 8), 3.0, np.float32), np.zeros((8, 8), np.float32)):
        out = apply_stretch(img, name)
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    img = _sky(size=16)
    img[0, :] = np.nan
    img[1, 0] = np.inf
    out = apply_stretch(img, name)
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_linear_percentiles_and_limits():
    img = np.arange(101, dtype=np.float32).reshape(1, 101)
    full = apply_stretch(img, "linear", lower=0, upper=100)
    np.testing.assert_allclose(full.ravel(), np.arange(101) / 100, atol=1e-6)
    clipped = apply_stretch(img, "linear", lower=10, upper=90)
    assert clipped[0, 5] == 0.0 and clipped[0, 95] == 1.0 and clipped[0, 50] == pytest.approx(0.5)
    fixed = apply_stretch(img, "linear", vmin=0, vmax=50)
    assert fixed[0, 25] == pytest.approx(0.5) and fixed[0, 80] == 1.0
    with pytest.raises(ValueError, match="percentiles"):
        apply_stretch(img, "linear", lower=90, upper=10)


def test_log_keeps_faint_source_brighter_than_linear():
    img = _sky()
    faint = (35, 10)
    assert (
        apply_stretch(img, "log")[faint]
        > 5 * apply_stretch(img, "linear", lower=0, upper=100)[faint]
    )


def test_zscale_of_a_noiseless_background_keeps_the_sources():
    # a background clipped to 0 (as in FIRST cutouts) collapses the zscale limits
    img = np.clip(_sky(), 0.004, None) - 0.004
    out = apply_stretch(img, "zscale")
    assert out[20, 20] == pytest.approx(1.0) and out[0, 0] == 0.0
    assert 0.0 < out[35, 10] < 0.01
    # with noise, zscale keeps its usual limits: the faint source saturates
    assert apply_stretch(_sky(), "zscale")[35, 10] == pytest.approx(1.0)


def test_hwc_joint_versus_per_channel():
    img = np.stack([np.linspace(0, 1, 64), np.linspace(0, 10, 64)], -1).reshape(8, 8, 2)
    img = np.concatenate([img, img[..., :1]], axis=-1).astype(np.float32)
    joint = apply_stretch(img, "linear", lower=0, upper=100)
    per = apply_stretch(img, "linear", lower=0, upper=100, per_channel=True)
    assert joint.shape == per.shape == (8, 8, 3)
    assert joint[..., 0].max() == pytest.approx(0.1, abs=1e-5)  # ratios kept jointly
    assert per[..., 0].max() == pytest.approx(1.0)


def test_unknown_stretch_lists_valid():
    with pytest.raises(ValueError, match=r"unknown stretch 'nope'.*asinh.*zscale"):
        apply_stretch(np.zeros((2, 2)), "nope")
    with pytest.raises(ValueError, match="valid stretches"):
        to_rgb(np.zeros((2, 2)), stretch="nope")


def test_custom_registration_direct_and_decorator():
    try:
        register_stretch("half", lambda x: np.full(np.shape(x), 0.5, np.float32))

        @register_stretch("clip_twice")
        def _double(image, *, factor=2.0):
            return np.clip(np.asarray(image) * factor, 0, 1)

        assert {"half", "clip_twice"} <= set(list_stretches())
        assert apply_stretch(np.zeros((3, 3)), "half").mean() == 0.5
        assert apply_stretch(np.full((2, 2), 0.3), "clip_twice", factor=3.0)[0, 0] == pytest.approx(
            0.9
        )
        assert to_rgb(np.zeros((3, 3)), stretch="half").shape == (3, 3, 3)
        with pytest.raises(ValueError, match="already registered"):
            register_stretch("half", lambda x: x)
        register_stretch("half", lambda x: np.zeros_like(x), overwrite=True)
        assert apply_stretch(np.ones((2, 2)), "half").max() == 0.0
    finally:
        st._STRETCHES.pop("half", None)
        st._STRETCHES.pop("clip_twice", None)


def test_custom_stretch_wrong_shape_is_error():
    try:
        register_stretch("bad_shape", lambda x: np.zeros(3))
        with pytest.raises(ValueError, match="bad_shape.*returned shape"):
            apply_stretch(np.zeros((2, 2)), "bad_shape")
    finally:
        st._STRETCHES.pop("bad_shape", None)


def test_multi_stretch_channels_differ():
    img = _sky()
    out = multi_stretch(img)
    assert out.shape == (48, 48, 3) and out.dtype == np.float32
    for c, name in enumerate(DEFAULT_MULTI_STRETCH):
        np.testing.assert_allclose(out[..., c], apply_stretch(img, name))
    assert not np.allclose(out[..., 0], out[..., 2])
    custom = multi_stretch(img[..., None], names=("linear", "sqrt", "power"))
    np.testing.assert_allclose(custom[..., 2], apply_stretch(img, "power"))
    np.testing.assert_array_equal(apply_stretch(img, "multi"), out)
    with pytest.raises(ValueError, match="single-channel"):
        multi_stretch(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="three"):
        multi_stretch(img, names=("linear", "log"))


def test_to_rgb_paths():
    img = _sky()
    out = to_rgb(img, stretch="zscale")
    assert out.shape == (48, 48, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[..., 0], out[..., 2])  # grey replicated
    np.testing.assert_allclose(out[..., 0], apply_stretch(img, "zscale"))

    multi = to_rgb(img, stretch="multi")
    np.testing.assert_array_equal(multi, multi_stretch(img))

    unit = np.array([[-0.5, 0.25], [0.75, 2.0]], np.float32)
    passthrough = to_rgb(unit, stretch=None)
    assert passthrough.shape == (2, 2, 3)
    assert passthrough[..., 1].tolist() == [[0.0, 0.25], [0.75, 1.0]]
    np.testing.assert_allclose(to_rgb(np.full((2, 2, 3), 255, np.uint8), stretch=None), 1.0)

    rgb = np.random.default_rng(0).random((5, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(to_rgb(rgb, stretch=None), rgb)
    assert to_rgb(rgb, stretch="sqrt").shape == (5, 5, 3)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        to_rgb(np.zeros((4, 4, 2)), stretch=None)
