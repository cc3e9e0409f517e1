"""Fixtures for the engine tests."""

from __future__ import annotations

import pytest
from _tiny import tiny_sky_dicts


@pytest.fixture(scope="session")
def tiny_sky():
    """(train dicts, test dicts) of a tiny simulated sky, images in memory."""
    return tiny_sky_dicts(8, seed=1), tiny_sky_dicts(4, seed=2)


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: tiny models on shared CPUs run many times faster than with
    oversubscribed threads."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
