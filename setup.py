"""Shim for tools and users that still call ``python setup.py`` or ``pip install -e .``
with an old pip; all metadata lives in pyproject.toml."""

from setuptools import setup

setup()
