"""One seed per run."""

from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and torch (all devices) from one integer; returns it."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed
