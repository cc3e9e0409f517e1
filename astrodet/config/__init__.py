"""Lazy python configs (Detectron2's LazyConfig) on omegaconf: ``LazyCall``/``L``,
``LazyConfig.load/save/apply_overrides`` and recursive ``instantiate``."""

from .instantiate import instantiate, locate, target_to_string
from .lazy import L, LazyCall, LazyConfig

__all__ = ["L", "LazyCall", "LazyConfig", "instantiate", "locate", "target_to_string"]
