"""Read astronomical images into float32 HWC arrays.

Formats, chosen by the file's extension:

* PNG / JPEG / TIFF / BMP (OpenCV): 8-bit values are divided by 255 and 16-bit values by
  65535, so they land in ``[0, 1]``; colour is returned as RGB (OpenCV's BGR is undone), an
  alpha channel is dropped.
* ``.npy``: raw values (float and signed-integer arrays); ``uint8`` / ``uint16`` arrays are
  display-encoded images and are scaled like 8/16-bit PNGs.
* FITS (``.fits``, ``.fit``, ``.fts``, optionally ``.gz``/``.fz``): raw values (Jy/beam...)
  of the first HDU that holds an image, or the HDU asked for by number or name. Degenerate
  axes of size 1 (radio images carry Stokes and frequency axes, e.g. ``(1, 1, H, W)``) are
  dropped; a cube with several planes needs ``plane=``.

NaN policy (one for every reader): NaN and +-inf pixels (blanked edges of radio mosaics)
are replaced by ``fill_value`` (default 0.0) and reported by a logged warning with the
count and the file; ``read_image(..., return_nan_count=True)`` also returns the count. An
image with no finite pixel at all is a ``ValueError`` naming the file.

:func:`check_image_file` tells a readable file from a corrupt one without decoding it
(PNG chunk checksums and JPEG headers through Pillow, the ``.npy`` header against the file
size, each FITS HDU's data extent against the file size), cheaply enough to run over a whole
data set when it is loaded.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

__all__ = [
    "FITS_SUFFIXES",
    "IMAGE_SUFFIXES",
    "check_image_file",
    "fill_non_finite",
    "load_dict_image",
    "read_image",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fits.fz", ".fz")
NPY_SUFFIXES = (".npy",)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in FITS_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def _to_hwc(array: np.ndarray, source: str) -> np.ndarray:
    """HW -> HW1; HWC with C in (1, 3) kept; anything else is an error naming ``source``."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise ValueError(
            f"{source}: expected an HW or HWC image with 1 or 3 channels, got shape {array.shape}"
        )
    return array


def _scale_integer(array: np.ndarray) -> np.ndarray:
    # 8/16-bit pixel values are display encodings: map them onto [0, 1].
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    if array.dtype == np.uint16:
        return array.astype(np.float32) / np.float32(65535.0)
    return array.astype(np.float32, copy=False)


def fill_non_finite(
    image: np.ndarray, *, fill_value: float = 0.0, source: str = "image"
) -> tuple[np.ndarray, int]:
    """Apply the NaN policy: replace NaN/inf by ``fill_value`` and report how many.

    Args:
        image: float array (not modified).
        fill_value: value written over NaN/inf pixels.
        source: file or item named in the warning and in the error.

    Returns:
        ``(image, count)`` with ``count`` the number of replaced values.

    Raises:
        ValueError: no pixel is finite.
    """
    image = np.asarray(image, dtype=np.float32)
    bad = ~np.isfinite(image)
    count = int(bad.sum())
    if count == 0:
        return image, 0
    if count == image.size:
        raise ValueError(f"{source}: every pixel is NaN or infinite ({image.shape}); no data")
    # a new array: the caller's (possibly cached) input is never modified
    image = np.where(bad, np.float32(fill_value), image).astype(np.float32, copy=False)
    logger.warning(
        "%s: replaced %d NaN/inf values (of %d) by %s", source, count, image.size, fill_value
    )
    return image, count


def _read_cv2(path: Path) -> np.ndarray:
    import cv2

    # np.fromfile + imdecode also reads paths OpenCV cannot open (non-ASCII names).
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ValueError(f"cannot decode image file {path} (corrupt or not an image)")
    if image.ndim == 3:
        channels = image.shape[2]
        if channels == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
        elif channels == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        elif channels == 2:  # grey + alpha
            image = image[:, :, :1]
    return _scale_integer(image)


def _select_hdu(hdul, hdu, path: Path):
    if hdu is None:
        for h in hdul:
            if h.data is not None and getattr(h.data, "ndim", 0) >= 2 and h.is_image:
                return h
        raise ValueError(f"FITS file {path} has no HDU with image data")
    try:
        selected = hdul[hdu]
    except (KeyError, IndexError) as e:
        names = [f"{i}:{h.name}" for i, h in enumerate(hdul)]
        raise ValueError(f"FITS file {path} has no HDU {hdu!r}; HDUs are {', '.join(names)}") from e
    if selected.data is None or not selected.is_image:
        raise ValueError(f"HDU {hdu!r} of FITS file {path} holds no image data")
    return selected


def _squeeze_fits(data: np.ndarray, path: Path, plane: int | None) -> np.ndarray:
    """Drop size-1 Stokes/frequency axes; pick ``plane`` of a genuine cube."""
    if data.ndim < 2:
        raise ValueError(f"FITS file {path}: data of shape {data.shape} is not an image")
    lead = [n for n in data.shape[:-2] if n != 1]
    data = data.reshape((*lead, *data.shape[-2:]))
    if data.ndim == 2:
        if plane not in (None, 0):
            raise ValueError(f"FITS file {path} is a single image; plane={plane} does not exist")
        return data
    data = data.reshape((-1, *data.shape[-2:]))
    if plane is None:
        raise ValueError(
            f"FITS file {path} is a cube of {data.shape[0]} planes (shape {data.shape}); "
            "select one with plane=<index>"
        )
    if not -data.shape[0] <= plane < data.shape[0]:
        raise ValueError(f"FITS file {path}: plane {plane} out of range for {data.shape[0]} planes")
    return data[plane]


def _read_fits(path: Path, hdu, plane: int | None) -> np.ndarray:
    from astropy.io import fits

    try:
        hdul = fits.open(path, memmap=False)
    except OSError as e:
        raise ValueError(f"cannot read FITS file {path}: {e}") from e
    with hdul:
        try:
            data = np.asarray(_select_hdu(hdul, hdu, path).data)
        except (TypeError, OSError) as e:
            raise ValueError(f"cannot read FITS file {path}: {e}") from e
        except ValueError as e:
            if str(path) in str(e):
                raise
            # astropy's own, e.g. a truncated data section that cannot be reshaped
            raise ValueError(f"cannot read FITS file {path}: {e}") from e
        # FITS is big-endian; astype gives native float32.
        return _squeeze_fits(data, path, plane).astype(np.float32)


def _read_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"cannot read .npy file {path}: {e}") from e
    if array.dtype.kind not in "uif" and array.dtype != np.bool_:
        raise ValueError(f".npy file {path} holds {array.dtype} values, not pixels")
    return _scale_integer(array)


def _check_pil(path: Path) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                # verify() reads only the headers of a JPEG; a decode at 1/8 scale reads the
                # whole entropy-coded stream (truncation shows) for a fraction of the cost
                im.draft(im.mode, (max(im.width // 8, 1), max(im.height // 8, 1)))
                im.load()
            else:
                im.verify()  # PNG: every chunk's CRC up to IEND
    except Exception as e:  # Pillow raises many kinds (SyntaxError, OSError, struct.error...)
        return f"{type(e).__name__}: {e}"
    return None


def _check_npy(path: Path) -> str | None:
    try:
        # a memory map reads the header only, and fails where the data would run past the end
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        return f"{type(e).__name__}: {e}"
    if array.dtype.kind not in "uifb":
        return f"holds {array.dtype} values, not pixels"
    return None


def _check_fits(path: Path) -> str | None:
    import warnings

    from astropy.io import fits

    compressed = path.name.lower().endswith((".gz", ".fz"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy warns about truncation; we report it
            with fits.open(path, memmap=False, lazy_load_hdus=False) as hdul:
                if compressed:
                    return None  # sizes of a gzip stream: not checked without decompressing
                size = path.stat().st_size
                for i, hdu in enumerate(hdul):
                    end = hdul.fileinfo(i)["datLoc"] + hdu.size
                    if end > size:
                        return (
                            f"truncated: HDU {i} ({hdu.name}) needs {end} bytes, the file has "
                            f"{size}"
                        )
    except Exception as e:  # astropy raises OSError, ValueError, TypeError, VerifyError...
        return f"{type(e).__name__}: {e}"
    return None


def check_image_file(path: str | os.PathLike) -> str | None:
    """Why the image file ``path`` cannot be read, or None when it looks whole.

    A cheap check, no decoding: Pillow's ``verify`` for PNG/JPEG/TIFF/BMP, the header of an
    ``.npy`` against its size, the headers of a FITS file against its size (gzip-compressed
    FITS: headers only). A file with an unknown extension is reported too.
    """
    path = Path(path)
    if not path.is_file():
        return "not found"
    suffix = _suffix(path)
    if suffix in FITS_SUFFIXES:
        return _check_fits(path)
    if suffix in NPY_SUFFIXES:
        return _check_npy(path)
    if suffix in IMAGE_SUFFIXES:
        return _check_pil(path)
    return f"unsupported extension {suffix!r}"


def read_image(
    path: str | os.PathLike,
    *,
    hdu: int | str | None = None,
    plane: int | None = None,
    fill_value: float = 0.0,
    return_nan_count: bool = False,
) -> np.ndarray | tuple[np.ndarray, int]:
    """Read one image file into a float32 HWC array (C = 1 or 3).

    Args:
        path: PNG/JPEG/TIFF, ``.npy`` or FITS file (see the module doc for the scaling).
        hdu: FITS only: HDU number or name (EXTNAME); default the first HDU with image data.
        plane: FITS only: index of the plane of a cube (after size-1 axes are dropped).
        fill_value: replaces NaN/inf pixels (reported in a logged warning).
        return_nan_count: also return the number of replaced NaN/inf values.

    Returns:
        The image, or ``(image, nan_count)`` when ``return_nan_count`` is true.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unsupported extension, unreadable file, a cube without ``plane``, or no
            finite pixel; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file {path} not found")
    suffix = _suffix(path)
    if suffix in FITS_SUFFIXES:
        image = _read_fits(path, hdu, plane)
    elif hdu is not None or plane is not None:
        raise ValueError(f"hdu= and plane= apply to FITS files only, not {path}")
    elif suffix in NPY_SUFFIXES:
        image = _read_npy(path)
    elif suffix in IMAGE_SUFFIXES:
        image = _read_cv2(path)
    else:
        supported = ", ".join(IMAGE_SUFFIXES + NPY_SUFFIXES + FITS_SUFFIXES)
        raise ValueError(f"unsupported image file {path}; supported extensions: {supported}")
    image = _to_hwc(image, str(path))
    image, count = fill_non_finite(image, fill_value=fill_value, source=str(path))
    image = np.ascontiguousarray(image, dtype=np.float32)
    return (image, count) if return_nan_count else image


def load_dict_image(d: dict, *, fill_value: float = 0.0) -> np.ndarray:
    """The image of a dataset dict as float32 HWC.

    ``d["image"]`` when present (an in-memory array, HW or HWC; ``uint8``/``uint16`` scaled
    like PNGs, floats kept), else :func:`read_image` of ``d["file_name"]``. The NaN policy
    applies to both.

    Args:
        d: a dataset dict with ``"image"`` or ``"file_name"``.
        fill_value: replaces NaN/inf pixels.
    """
    if "image" in d and d["image"] is not None:
        source = f"image of item {d.get('image_id', '?')}"
        image = _to_hwc(_scale_integer(np.asarray(d["image"])), source)
        image, _ = fill_non_finite(image, fill_value=fill_value, source=source)
        return np.ascontiguousarray(image, dtype=np.float32)
    if "file_name" not in d:
        raise KeyError(
            f"dataset dict {d.get('image_id', '?')} has neither 'image' nor 'file_name' "
            f"(keys: {sorted(d)})"
        )
    return read_image(d["file_name"], fill_value=fill_value)
