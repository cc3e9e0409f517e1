"""Where data, weights and the real test data live, from the environment."""

from __future__ import annotations

import os
from pathlib import Path


def datasets_root() -> Path:
    """The data root: ``$ASTRODET_DATASETS``, default ``./datasets``."""
    return Path(os.environ.get("ASTRODET_DATASETS", "datasets")).expanduser()


def weights_root() -> Path | None:
    """The checkpoint folder ``$ASTRODET_WEIGHTS``, or None when unset."""
    value = os.environ.get("ASTRODET_WEIGHTS")
    return Path(value).expanduser() if value else None


def real_data_root() -> Path:
    """The shared real data: ``$ASTRODET_REAL_DATA``, default ``../shared/data/real``
    next to the checkout."""
    value = os.environ.get("ASTRODET_REAL_DATA")
    if value:
        return Path(value).expanduser()
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
