"""Atomic writes and output folders: nothing is lost when a job dies mid-write."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place.

    Args:
        path: destination file; its folder is created.
        data: the bytes to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write a UTF-8 text file."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_figure(fig: Any, path: str | os.PathLike, **savefig_kwargs: Any) -> Path:
    """Render a matplotlib figure to PNG in memory, write it atomically and close the figure.

    Args:
        fig: the ``matplotlib.figure.Figure``.
        path: destination file; its folder is created.
        savefig_kwargs: passed to ``fig.savefig`` (``dpi``, ``bbox_inches``, ...).
    """
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", **savefig_kwargs)
    finally:
        plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Atomically write ``obj`` as strict JSON: NaN and infinities become ``null``, so
    every JSON reader accepts the file (an undefined AP is NaN in Python)."""
    text = json.dumps(_finite(obj), indent=indent, default=_json_default, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, str):
        return _finite(obj.tolist())
    return obj


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays, Paths: the usual things results contain.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def atomic_write_fits(
    path: str | os.PathLike,
    data: Any,
    header: Any = None,
    *,
    output_verify: str = "silentfix+ignore",
) -> Path:
    """Write an image as a one-HDU FITS file under a temporary name beside ``path`` and rename
    it: a file cut short is never taken for a finished image.

    Args:
        path: destination file; its folder is created.
        data: the image array.
        header: an ``astropy.io.fits.Header`` (e.g. the original image's).
        output_verify: astropy's header verification; the default fixes what it can and lets
            through what it cannot (survey headers carry tabs in COMMENT cards that every
            reader accepts but astropy refuses to write).
    """
    from astropy.io import fits

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        fits.PrimaryHDU(data, header).writeto(tmp, overwrite=True, output_verify=output_verify)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_save_torch(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file, then rename: a killed job never leaves a
    half-written checkpoint under the real name."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def prepare_output_dir(
    path: str | os.PathLike, overwrite: bool = False, resume: bool = False
) -> Path:
    """Create an output folder, refusing to clobber an existing non-empty one.

    Args:
        path: the folder.
        overwrite: delete an existing folder first.
        resume: keep an existing folder and its contents.

    Raises:
        FileExistsError: the folder exists, is not empty, and neither flag was given.
    """
    path = Path(path)
    if overwrite and resume:
        raise ValueError("--overwrite and --resume exclude each other")
    if path.exists() and any(path.iterdir()):
        if overwrite:
            shutil.rmtree(path)
        elif not resume:
            raise FileExistsError(
                f"output folder {path} exists and is not empty; "
                "pass --resume to continue it or --overwrite to replace it"
            )
    path.mkdir(parents=True, exist_ok=True)
    return path
