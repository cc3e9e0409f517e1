"""The classical source finder: moved to :mod:`astrodet.sky.finders.classical`; this module
keeps the old imports working."""

from astrodet.sky.finders.classical import (  # noqa: F401
    ClassicalFinder,
    calibrate,
    estimate_background,
    find_sources,
    run_classical_baseline,
)

__all__ = [
    "ClassicalFinder",
    "calibrate",
    "estimate_background",
    "find_sources",
    "run_classical_baseline",
]
