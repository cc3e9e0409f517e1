"""Recursive instantiation of ``_target_`` configs (Detectron2's ``instantiate``, on omegaconf)."""

from __future__ import annotations

import importlib
from collections import abc
from typing import Any

from omegaconf import DictConfig, ListConfig

__all__ = ["instantiate", "locate", "target_to_string"]


def locate(name: str) -> Any:
    """Import the object named by a dotted path such as ``"torch.optim.AdamW"``.

    Args:
        name: ``module.sub.attr`` (the longest importable module prefix is imported, the
            rest is looked up as attributes).

    Raises:
        ImportError: naming ``name`` when no prefix imports or an attribute is missing.
    """
    if not isinstance(name, str) or not name:
        raise ImportError(f"Cannot locate {name!r}: expected a dotted path string")
    parts = name.split(".")
    module = None
    for i in range(len(parts), 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        obj = module
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError as e:
            raise ImportError(f"Cannot locate {name!r}: {e}") from None
        return obj
    raise ImportError(f"Cannot locate {name!r}: no importable module prefix")


def target_to_string(target: Any) -> str:
    """The importable dotted path of a callable, checked by importing it back.

    Raises:
        ValueError: for lambdas, local functions and other objects that cannot be imported.
    """
    if isinstance(target, str):
        return target
    module = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", None)
    if module is None or qualname is None or "<" in qualname:
        raise ValueError(f"{target!r} has no importable name; use a module-level function or class")
    # The shortest public path that imports back to the same object, e.g.
    # "torch.nn.Linear" rather than "torch.nn.modules.linear.Linear".
    parts = module.split(".")
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i] + [qualname])
        try:
            if locate(name) is target:
                return name
        except ImportError:
            continue
    raise ValueError(f"{target!r} cannot be imported back as '{module}.{qualname}'")


def _is_mapping(cfg: Any) -> bool:
    return isinstance(cfg, (abc.Mapping, DictConfig))


def instantiate(cfg: Any) -> Any:
    """Build the objects a config describes, depth first.

    A mapping with ``_target_`` (a callable or its dotted path) is called with its other
    keys as keyword arguments, after those have been instantiated themselves. Mappings
    without ``_target_`` become plain dicts and lists (``ListConfig`` or list) plain lists,
    with their items instantiated; tuples stay tuples. Anything else (numbers, strings,
    objects that are already built) is returned unchanged.

    Args:
        cfg: a ``DictConfig``/``ListConfig`` (interpolations are resolved on access), or plain
            Python containers.

    Raises:
        TypeError: naming the target when the call fails on its arguments.
    """
    if isinstance(cfg, (ListConfig, list)):
        return [instantiate(cfg[i]) for i in range(len(cfg))]
    if isinstance(cfg, tuple):
        return tuple(instantiate(x) for x in cfg)
    if _is_mapping(cfg):
        keys = list(cfg.keys())
        if "_target_" not in keys:
            return {k: instantiate(cfg[k]) for k in keys}
        target = cfg["_target_"]
        if isinstance(target, str):
            target = locate(target)
        if not callable(target):
            raise TypeError(f"_target_ {target!r} is not callable")
        kwargs = {k: instantiate(cfg[k]) for k in keys if k != "_target_"}
        try:
            return target(**kwargs)
        except TypeError as e:
            name = getattr(target, "__qualname__", repr(target))
            raise TypeError(f"Error instantiating {name} with keys {sorted(kwargs)}: {e}") from e
    return cfg
