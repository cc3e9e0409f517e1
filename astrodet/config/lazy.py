"""LazyConfig: python config files of ``LazyCall`` objects, as in Detectron2, on omegaconf.

A config file is plain python. ``L(fn)(**kwargs)`` records a call without making it; the
file's top-level dicts and ``DictConfig`` objects become the config::

    from astrodet.config import LazyCall as L
    from .common.models.vitdet import model      # relative to this file; re-executed per load
    model.backbone.freeze = "none"
    train = dict(max_iter=100)

``LazyConfig.load`` runs such a file (or reads a YAML file written by ``LazyConfig.save``),
``LazyConfig.apply_overrides`` applies ``key=value`` strings from the command line, and
``astrodet.config.instantiate`` builds the objects.
"""

from __future__ import annotations

import builtins
import difflib
import logging
import os
import types
import uuid
from collections import abc
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from astrodet.utils import atomic_write_text

from .instantiate import target_to_string

__all__ = ["L", "LazyCall", "LazyConfig"]

logger = logging.getLogger(__name__)

# Config files are executed as modules of this (non-existent) package, so that relative
# imports inside them can be recognised and resolved against the file's own folder.
_CFG_PACKAGE = "astrodet._config_files"


class LazyCall:
    """Record a call for later: ``LazyCall(fn)(**kwargs)`` returns a ``DictConfig`` with
    ``_target_=fn`` and the keyword arguments, which ``instantiate`` turns into ``fn(**kwargs)``.

    Args:
        target: a callable (function or class) or its dotted import path.
    """

    def __init__(self, target: Any):
        if not (callable(target) or isinstance(target, str)):
            raise TypeError(f"LazyCall target must be callable or a dotted path, got {target!r}")
        self._target = target

    def __call__(self, **kwargs: Any) -> DictConfig:
        return DictConfig(
            content={"_target_": self._target, **kwargs}, flags={"allow_objects": True}
        )


L = LazyCall


def _cast_to_config(obj: Any) -> Any:
    # Plain dicts in config files become DictConfig so that attribute access and
    # overrides work on them like on LazyCall objects.
    if isinstance(obj, dict):
        return DictConfig(obj, flags={"allow_objects": True})
    return obj


def _find_relative(original_file: str, name: str, level: int) -> Path:
    base = Path(original_file).parent
    for _ in range(level - 1):
        base = base.parent
    for part in [p for p in name.split(".") if p]:
        base = base / part
    return base


def _exec_config_file(path: Path) -> types.ModuleType:
    module = types.ModuleType(f"{_CFG_PACKAGE}.m{uuid.uuid4().hex[:12]}")
    module.__file__ = str(path)
    module.__package__ = module.__name__
    try:
        source = path.read_text()
    except OSError as e:
        raise FileNotFoundError(f"Cannot read config file {path}: {e}") from e
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as e:
        raise SyntaxError(f"Config file {path} has invalid syntax: {e}") from e
    exec(code, module.__dict__)
    return module


@contextmanager
def _patch_import():
    """Resolve relative imports made by config files against their own folder."""
    old_import = builtins.__import__

    def new_import(name, globals=None, locals=None, fromlist=(), level=0):
        package = (globals or {}).get("__package__") or ""
        if level == 0 or not package.startswith(_CFG_PACKAGE):
            return old_import(name, globals, locals, fromlist=fromlist, level=level)
        target = _find_relative(globals["__file__"], name, level)
        if target.is_dir():
            # ``from .common.models import vitdet``: each name is a file in that folder.
            module = types.ModuleType(f"{_CFG_PACKAGE}.d{uuid.uuid4().hex[:12]}")
            module.__file__ = str(target / "__init__.py")
            for item in fromlist or ():
                sub = target / f"{item}.py"
                if not sub.is_file():
                    raise ImportError(
                        f"Cannot import {item!r} from {target} (imported by {globals['__file__']})"
                    )
                setattr(module, item, _exec_config_file(sub))
            return module
        file = target.with_name(target.name + ".py")
        if not file.is_file():
            raise ImportError(
                f"Config file {globals['__file__']} imports {'.' * level}{name}, "
                f"but {file} does not exist"
            )
        module = _exec_config_file(file)
        for item in fromlist or ():
            if item == "*":
                continue
            if not hasattr(module, item):
                raise ImportError(f"Cannot import name {item!r} from config file {file}")
            setattr(module, item, _cast_to_config(getattr(module, item)))
        return module

    builtins.__import__ = new_import
    try:
        yield
    finally:
        builtins.__import__ = old_import


def _flatten_keys(node: Any, prefix: str = "") -> list[str]:
    keys: list[str] = []
    if isinstance(node, DictConfig):
        items = [(str(k), node._get_node(k)) for k in node.keys()]
    elif isinstance(node, ListConfig):
        items = [(str(i), node._get_node(i)) for i in range(len(node))]
    else:
        return keys
    for k, child in items:
        full = f"{prefix}{k}"
        keys.append(full)
        if isinstance(child, (DictConfig, ListConfig)):
            keys.extend(_flatten_keys(child, full + "."))
    return keys


def _suggest(key: str, cfg: DictConfig) -> str:
    keys = [k for k in _flatten_keys(cfg) if not k.endswith("_target_")]
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    last = key.rsplit(".", 1)[-1]
    close += [k for k in keys if k.rsplit(".", 1)[-1] == last and k not in close][:3]
    return f" Did you mean: {', '.join(close)}?" if close else ""


def _has_key(node: Any, part: str) -> bool:
    if isinstance(node, DictConfig):
        return part in node
    if isinstance(node, ListConfig):
        return part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node)
    return False


def _child(node: Any, part: str) -> Any:
    return node[int(part)] if isinstance(node, ListConfig) else node[part]


def _to_yaml_safe(obj: Any, path: str) -> Any:
    if isinstance(obj, abc.Mapping):
        out = {}
        for k, v in obj.items():
            sub = f"{path}.{k}" if path else str(k)
            out[k] = target_to_string(v) if k == "_target_" else _to_yaml_safe(v, sub)
        return out
    if isinstance(obj, (list, tuple)):
        return [_to_yaml_safe(v, f"{path}.{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise ValueError(
        f"Config key {path!r} holds {type(obj).__name__} {obj!r:.80}, which cannot be saved "
        "to YAML; store a LazyCall or a plain value there instead"
    )


class LazyConfig:
    """Load, override and save lazy configs (python or YAML files)."""

    @staticmethod
    def load(path: str | os.PathLike, keys: None | str | tuple[str, ...] = None) -> Any:
        """Load a config file.

        Args:
            path: a ``.py`` config file (executed; it may import other config files relative
                to itself, e.g. ``from .common.train import train``) or a ``.yaml``/``.yml``
                file written by :meth:`save`.
            keys: optionally one top-level name (returns that node) or a tuple of names.

        Returns:
            A ``DictConfig`` of the file's public top-level dicts and ``DictConfig`` objects.

        Raises:
            FileNotFoundError: naming the file when it does not exist.
            ValueError: for another file extension.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Config file {path} does not exist")
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml"):
            cfg = OmegaConf.load(path)
            cfg = DictConfig(OmegaConf.to_container(cfg), flags={"allow_objects": True})
        elif suffix == ".py":
            with _patch_import():
                module = _exec_config_file(path.resolve())
            content = {
                name: _cast_to_config(value)
                for name, value in vars(module).items()
                if not name.startswith("_") and isinstance(value, (DictConfig, ListConfig, dict))
            }
            cfg = DictConfig(content, flags={"allow_objects": True})
        else:
            raise ValueError(f"Config file {path} must end in .py or .yaml, not {suffix!r}")
        if keys is None:
            return cfg
        if isinstance(keys, str):
            return cfg[keys]
        return tuple(cfg[k] for k in keys)

    @staticmethod
    def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
        """Apply command-line style ``key=value`` overrides in place.

        Values are parsed as Hydra does: ``100`` (int), ``1e-4`` (float), ``true``/``false``,
        ``null`` or ``None``, ``[1,2]`` (list); anything else is a string (``freeze=none``
        stays the string ``"none"``). Keys must exist unless written ``+new.key=value``.

        Args:
            cfg: the config from :meth:`load`.
            overrides: strings such as ``["train.max_iter=100", "model.backbone.freeze=none"]``.

        Raises:
            KeyError: naming a key that does not exist, with close matches.
            ValueError: for a string that is not ``key=value``.
        """
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from hydra.errors import OverrideParseException

        parser = OverridesParser.create()
        for text in overrides:
            try:
                (override,) = parser.parse_overrides([text])
            except OverrideParseException as e:
                raise ValueError(
                    f"Cannot parse override {text!r}: expected key=value ({e})"
                ) from None
            key = override.key_or_group
            if override.is_delete():
                raise ValueError(f"Override {text!r}: deleting keys is not supported")
            value = override.value()
            if value == "None" and "'" not in text and '"' not in text:
                value = None
            add = override.is_add() or override.is_force_add()
            parts = key.split(".")
            node: Any = cfg
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                if not _has_key(node, part):
                    if last and add:
                        break
                    raise KeyError(
                        f"Config key {'.'.join(parts[: i + 1])!r} does not exist "
                        f"(override {text!r}).{_suggest(key, cfg)} "
                        f"To add a new key write '+{key}=...'."
                    )
                if not last:
                    node = _child(node, part)
                    if not isinstance(node, (DictConfig, ListConfig)):
                        raise KeyError(
                            f"Config key {'.'.join(parts[: i + 1])!r} holds a value, not a "
                            f"group, so {key!r} does not exist (override {text!r})"
                        )
            OmegaConf.update(cfg, key, value, merge=False, force_add=add)
            logger.debug("override %s = %r", key, value)
        return cfg

    @staticmethod
    def save(cfg: DictConfig, path: str | os.PathLike, *, resolve: bool = False) -> Path:
        """Write a config to YAML atomically; ``LazyConfig.load`` reads it back.

        Callables in ``_target_`` are written as their import paths.

        Args:
            cfg: the config.
            path: the ``.yaml`` file to write.
            resolve: resolve ``${...}`` interpolations before writing (default: keep them).

        Raises:
            ValueError: naming the key of a value that YAML cannot hold (e.g. a built model).
        """
        container = OmegaConf.to_container(cfg, resolve=resolve, enum_to_str=True)
        text = OmegaConf.to_yaml(OmegaConf.create(_to_yaml_safe(container, "")))
        return atomic_write_text(path, text)

    @staticmethod
    def to_yaml(cfg: DictConfig) -> str:
        """The YAML text :meth:`save` would write (interpolations kept)."""
        container = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
        return OmegaConf.to_yaml(OmegaConf.create(_to_yaml_safe(container, "")))
