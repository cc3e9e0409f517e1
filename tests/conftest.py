"""Shared fixtures: the real data folder, skipped with a reason where absent."""

from __future__ import annotations

import pytest

from astrodet.utils import real_data_root


@pytest.fixture(scope="session")
def real_data():
    """Path of the shared real data (``$ASTRODET_REAL_DATA``); skips where absent."""
    root = real_data_root()
    if not root.is_dir():
        pytest.skip(f"real data folder {root} not found; set ASTRODET_REAL_DATA")
    return root
