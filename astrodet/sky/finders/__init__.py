"""Source finders: a FITS field in, a catalogue out (``build_finder("classical" | "pybdsf" |
"detector", ...)``)."""

from .base import FINDERS, Finder, build_finder, register_finder

__all__ = ["FINDERS", "Finder", "build_finder", "register_finder"]
