"""Small helpers shared by every part of the toolkit: paths, atomic output, seeding."""

from .env import datasets_root, real_data_root, weights_root
from .fileio import (
    atomic_save_figure,
    atomic_save_torch,
    atomic_write_bytes,
    atomic_write_fits,
    atomic_write_json,
    atomic_write_text,
    prepare_output_dir,
)
from .plots import error_bars
from .seed import seed_everything

__all__ = [
    "atomic_save_figure",
    "atomic_save_torch",
    "atomic_write_bytes",
    "atomic_write_fits",
    "atomic_write_json",
    "atomic_write_text",
    "datasets_root",
    "error_bars",
    "prepare_output_dir",
    "real_data_root",
    "seed_everything",
    "weights_root",
]
