"""The finder interface (a field in, a catalogue out) and the registry of finders by name."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["FINDERS", "Finder", "build_finder", "register_finder"]


@runtime_checkable
class Finder(Protocol):
    """Anything that turns a :class:`~astrodet.sky.field.Field` into a catalogue."""

    name: str

    def find(self, field):  # -> astropy.table.Table in astrodet.sky.catalogue columns
        ...


#: name -> finder class (or factory); filled by :func:`register_finder` as modules import.
FINDERS: dict[str, Callable[..., Finder]] = {}
# Where each built-in finder lives: imported on first use, so e.g. bdsf or torch load only
# when their finder is asked for.
_MODULES = {
    "classical": "astrodet.sky.finders.classical",
    "pybdsf": "astrodet.sky.finders.pybdsf",
    "detector": "astrodet.sky.finders.detector",
}


def register_finder(name: str):
    """Class decorator: make a finder buildable by ``name``."""

    def wrap(cls):
        FINDERS[name] = cls
        return cls

    return wrap


def build_finder(name: str, **kwargs) -> Finder:
    """Build a registered finder by name (``classical``, ``pybdsf``, ``detector``).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if name not in FINDERS and name in _MODULES:
        importlib.import_module(_MODULES[name])
    if name not in FINDERS:
        known = sorted(set(FINDERS) | set(_MODULES))
        raise ValueError(f"unknown finder {name!r}; known finders: {', '.join(known)}")
    return FINDERS[name](**kwargs)
