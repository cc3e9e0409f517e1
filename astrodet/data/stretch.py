"""Stretches: raw astronomical pixel values -> float32 in ``[0, 1]``, by name.

Every stretch is a function ``fn(image, **kwargs) -> array`` kept in a registry, so users
add their own by name (``register_stretch("mine", fn)`` or ``@register_stretch("mine")``)
and select it wherever a ``stretch=`` argument is taken. Built in:

==========  =================================================================================
linear      clip at percentiles ``lower``/``upper`` (default 0.5 / 99.5; 0 / 100 is min/max,
            or give ``vmin``/``vmax``) and scale to [0, 1]
zscale      IRAF's zscale limits (``astropy.visualization.ZScaleInterval``), then linear:
            the faint emission near the noise
sqrt        square root of the [0, 1]-normalised image
log         ``log10(a x + 1) / log10(a + 1)`` (``a=1000``)
asinh       ``asinh(x / a) / asinh(1 / a)`` (``a=0.1``)
power       ``x ** a`` (``a=2``, emphasises the bright cores)
snr         the image in units of its local noise, ``(x - bkg) / rms``, asinh-stretched
            between fixed S/N limits (independent of the flux scale)
multi       three stretches of one single-channel image in three channels (HxWx3), see
            :func:`multi_stretch`
==========  =================================================================================

``sqrt``, ``log``, ``asinh`` and ``power`` first normalise with ``lower=0.5, upper=100``: the
noise floor is clipped but the brightest pixel is kept, so their point, high dynamic range,
survives. Limits are computed jointly over all channels (colour ratios of RGB images are
kept); ``apply_stretch(..., per_channel=True)`` stretches each channel on its own. Limits
come from the finite pixels; NaN/inf map to 0. A constant image (no range) maps to zeros,
never NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "DEFAULT_MULTI_STRETCH",
    "apply_stretch",
    "get_stretch",
    "list_stretches",
    "multi_stretch",
    "register_stretch",
    "to_rgb",
]

StretchFn = Callable[..., np.ndarray]

_STRETCHES: dict[str, StretchFn] = {}

#: Channels of the ``multi`` stretch: zscale shows the faint emission near the noise, sqrt
#: the extended structure, log the full dynamic range up to the brightest core, so the
#: relative flux a single normalisation flattens stays visible to the model.
DEFAULT_MULTI_STRETCH: tuple[str, str, str] = ("zscale", "sqrt", "log")


def register_stretch(name: str, fn: StretchFn | None = None, *, overwrite: bool = False):
    """Register a stretch by name; usable directly or as a decorator.

    Args:
        name: the name users pass as ``stretch=``.
        fn: ``fn(image, **kwargs) -> array`` with values in [0, 1] (clipped afterwards anyway).
            Omit it to use ``register_stretch(name)`` as a decorator.
        overwrite: allow replacing an existing stretch of that name.

    Raises:
        ValueError: the name is taken and ``overwrite`` is false.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"stretch name must be a non-empty string, got {name!r}")

    def _register(f: StretchFn) -> StretchFn:
        if not callable(f):
            raise TypeError(f"stretch {name!r} must be callable, got {type(f).__name__}")
        if name in _STRETCHES and not overwrite and _STRETCHES[name] is not f:
            raise ValueError(f"stretch {name!r} is already registered; pass overwrite=True")
        _STRETCHES[name] = f
        return f

    return _register if fn is None else _register(fn)


def list_stretches() -> list[str]:
    """Names of the registered stretches, sorted."""
    return sorted(_STRETCHES)


def get_stretch(name: str) -> StretchFn:
    """The stretch function registered as ``name``.

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    try:
        return _STRETCHES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown stretch {name!r}; valid stretches: {', '.join(list_stretches())}"
        ) from None


# ------------------------------------------------------------------------------ helpers
def _finite_values(x: np.ndarray) -> np.ndarray:
    values = x[np.isfinite(x)]
    return values


def _rescale(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``(x - lo) / (hi - lo)`` clipped to [0, 1]; zeros when the range is empty."""
    x = np.asarray(x, dtype=np.float32)
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return np.zeros(x.shape, np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        out = (x - np.float32(lo)) / np.float32(hi - lo)
    out = np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def _limits(
    x: np.ndarray,
    lower: float,
    upper: float,
    vmin: float | None = None,
    vmax: float | None = None,
) -> tuple[float, float]:
    if not 0.0 <= lower <= upper <= 100.0:
        raise ValueError(
            f"percentiles must satisfy 0 <= lower <= upper <= 100, got {lower}, {upper}"
        )
    values = _finite_values(x)
    if values.size == 0:
        return 0.0, 0.0
    lo = float(np.percentile(values, lower)) if vmin is None else float(vmin)
    hi = float(np.percentile(values, upper)) if vmax is None else float(vmax)
    return lo, hi


# ----------------------------------------------------------------------------- stretches
@register_stretch("linear")
def linear_stretch(
    image: np.ndarray,
    *,
    lower: float = 0.5,
    upper: float = 99.5,
    vmin: float | None = None,
    vmax: float | None = None,
) -> np.ndarray:
    """Clip at percentiles ``lower``/``upper`` (or at ``vmin``/``vmax``), scale to [0, 1]."""
    return _rescale(image, *_limits(image, lower, upper, vmin, vmax))


@register_stretch("zscale")
def zscale_stretch(
    image: np.ndarray, *, contrast: float = 0.25, n_samples: int = 1000
) -> np.ndarray:
    """IRAF zscale limits (astropy ``ZScaleInterval``), then linear; the full range where
    the limits collapse (a constant background)."""
    from astropy.visualization import ZScaleInterval

    values = _finite_values(np.asarray(image))
    if values.size == 0:
        return np.zeros(np.shape(image), np.float32)
    lo, hi = ZScaleInterval(n_samples=n_samples, contrast=contrast).get_limits(values)
    if hi <= lo:
        # no noise to set limits from (e.g. a background clipped to a constant): the sources
        # would vanish, so show the whole range instead
        lo, hi = values.min(), values.max()
    return _rescale(image, float(lo), float(hi))


def _normalised(image, lower, upper, vmin, vmax) -> np.ndarray:
    return _rescale(image, *_limits(image, lower, upper, vmin, vmax))


@register_stretch("sqrt")
def sqrt_stretch(image, *, lower=0.5, upper=100.0, vmin=None, vmax=None) -> np.ndarray:
    """Square root of the [0, 1]-normalised image."""
    return np.sqrt(_normalised(image, lower, upper, vmin, vmax))


@register_stretch("log")
def log_stretch(image, *, a=1000.0, lower=0.5, upper=100.0, vmin=None, vmax=None) -> np.ndarray:
    """``log10(a x + 1) / log10(a + 1)`` of the [0, 1]-normalised image."""
    if a <= 0:
        raise ValueError(f"log stretch needs a > 0, got a={a}")
    x = _normalised(image, lower, upper, vmin, vmax)
    return (np.log10(a * x + 1.0) / np.log10(a + 1.0)).astype(np.float32)


@register_stretch("asinh")
def asinh_stretch(image, *, a=0.1, lower=0.5, upper=100.0, vmin=None, vmax=None) -> np.ndarray:
    """``asinh(x / a) / asinh(1 / a)`` of the [0, 1]-normalised image."""
    if a <= 0:
        raise ValueError(f"asinh stretch needs a > 0, got a={a}")
    x = _normalised(image, lower, upper, vmin, vmax)
    return (np.arcsinh(x / a) / np.arcsinh(1.0 / a)).astype(np.float32)


@register_stretch("power")
def power_stretch(image, *, a=2.0, lower=0.5, upper=100.0, vmin=None, vmax=None) -> np.ndarray:
    """``x ** a`` of the [0, 1]-normalised image."""
    if a <= 0:
        raise ValueError(f"power stretch needs a > 0, got a={a}")
    return np.power(_normalised(image, lower, upper, vmin, vmax), a).astype(np.float32)


@register_stretch("snr")
def snr_stretch(image, *, a=3.0, low=-3.0, high=1000.0, sigma=3.0) -> np.ndarray:
    """The image in units of its noise, ``s = (x - background) / rms`` (sigma-clipped median
    and standard deviation of the finite pixels), then ``asinh(s / a)`` mapped from
    ``[low, high]`` to [0, 1]. Fixed limits in S/N do not depend on a telescope's flux
    scale or noise level, so a detector sees the same picture of a 10-sigma source on any
    survey."""
    from astropy.stats import sigma_clipped_stats

    if a <= 0 or not low < high:
        raise ValueError(f"snr stretch needs a > 0 and low < high, got a={a}, {low}, {high}")
    image = np.asarray(image, dtype=np.float32)
    values = _finite_values(image)
    if values.size == 0:
        return np.zeros(image.shape, np.float32)
    _, median, std = sigma_clipped_stats(values, sigma=sigma, maxiters=5)
    if not np.isfinite(std) or std <= 0:
        std = float(np.std(values))
        if std <= 0:  # a constant image has no noise to measure: zeros, as every stretch
            return np.zeros(image.shape, np.float32)
    s = (image - np.float32(median)) / np.float32(std)
    lo, hi = np.arcsinh(low / a), np.arcsinh(high / a)
    return _rescale(np.arcsinh(np.clip(s, low, high) / a), float(lo), float(hi))


def _single_channel(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim != 2:
        raise ValueError(f"{what} needs a single-channel HW or HWx1 image, got shape {image.shape}")
    return image


def multi_stretch(
    image: np.ndarray,
    names: Sequence[str] = DEFAULT_MULTI_STRETCH,
    *,
    kwargs: Sequence[dict] | None = None,
) -> np.ndarray:
    """Three stretches of one single-channel image, stacked as the three channels.

    Args:
        image: HW or HWx1 raw image.
        names: one stretch name per channel; default ``("zscale", "sqrt", "log")``.
        kwargs: optional per-channel keyword arguments for the stretches.

    Returns:
        HxWx3 float32 in [0, 1].
    """
    image = _single_channel(image, "multi_stretch")
    names = tuple(names)
    if len(names) != 3 or "multi" in names:
        raise ValueError(f"multi_stretch needs three single stretches, got {names}")
    kwargs = list(kwargs) if kwargs is not None else [{}] * 3
    if len(kwargs) != 3:
        raise ValueError(f"multi_stretch needs three kwargs dicts, got {len(kwargs)}")
    channels = [apply_stretch(image, n, **kw) for n, kw in zip(names, kwargs)]
    return np.stack(channels, axis=-1).astype(np.float32, copy=False)


register_stretch("multi", multi_stretch)


# ---------------------------------------------------------------------------- front doors
def apply_stretch(
    image: np.ndarray, name: str = "linear", *, per_channel: bool = False, **kwargs
) -> np.ndarray:
    """Apply the stretch ``name`` to an HW or HWC image.

    Args:
        image: raw image (any float or integer type).
        name: a registered stretch (see :func:`list_stretches`).
        per_channel: stretch each channel of an HWC image separately (default: joint limits).
        **kwargs: passed to the stretch (e.g. ``lower=1, upper=99`` or ``a=100``).

    Returns:
        float32 in [0, 1] of the same shape (``"multi"``: HxWx3).

    Raises:
        ValueError: unknown name (the valid ones are listed) or a bad shape.
    """
    fn = get_stretch(name)
    image = np.asarray(image, dtype=np.float32)
    if image.ndim not in (2, 3):
        raise ValueError(f"stretch {name!r} needs an HW or HWC image, got shape {image.shape}")
    if fn is multi_stretch:
        out = fn(image, **kwargs)
    elif per_channel and image.ndim == 3:
        out = np.stack([fn(image[:, :, c], **kwargs) for c in range(image.shape[2])], axis=-1)
    else:
        out = fn(image, **kwargs)
    out = np.nan_to_num(np.asarray(out, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    if fn is not multi_stretch and out.shape != image.shape:
        raise ValueError(
            f"stretch {name!r} returned shape {out.shape} for an image of shape {image.shape}"
        )
    return np.clip(out, 0.0, 1.0)


def to_rgb(image: np.ndarray, stretch: str | None = "zscale", **kwargs) -> np.ndarray:
    """Turn a raw image into a 3-channel model input: THE path every consumer uses.

    Args:
        image: HW or HWC (1 or 3 channels). With ``stretch=None`` it is taken to be in [0, 1]
            already (``uint8``/``uint16`` arrays are scaled by 255 / 65535).
        stretch: a registered stretch name, ``"multi"`` (three stretches of a single-channel
            image, see :func:`multi_stretch`) or None (clip to [0, 1] only).
        **kwargs: passed to :func:`apply_stretch` (e.g. ``per_channel=True``, percentiles).

    Returns:
        HxWx3 float32 in [0, 1]; a grey image is replicated into the three channels.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(f"to_rgb needs an HW or HWC image with 1 or 3 channels, got {image.shape}")
    if stretch is None:
        if image.dtype == np.uint8:
            out = image.astype(np.float32) / np.float32(255.0)
        elif image.dtype == np.uint16:
            out = image.astype(np.float32) / np.float32(65535.0)
        else:
            out = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        out = np.clip(out, 0.0, 1.0)
    else:
        out = apply_stretch(image, stretch, **kwargs)
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    return np.ascontiguousarray(out, dtype=np.float32)
