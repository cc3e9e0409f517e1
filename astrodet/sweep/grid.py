"""Experiment grids: a python file naming a config and the axes to sweep, expanded to points.

A grid file is plain python with these top-level names::

    config = "../mgcls_dino_vitdet.py"        # relative to the grid file (or an axis "config")
    axes = {
        "config": ["../mgcls_mae_vitdet.py", "../mgcls_r50_fpn.py"],   # the config file itself
        "model.backbone.freeze": ["backbone", "none"],
        "dataloader.train.fraction": [0.1, 0.3, 0.5, 1.0],
        ("train.seed", "dataloader.train.seed"): [(0, 0), (1, 1)],   # zipped keys
    }
    overrides = ["train.amp=true"]             # applied to every point (optional)
    names = {"dataloader.train.seed": "subset"}  # folder-name labels (optional)
    slurm = dict(gpus_per_node=1, timeout_min=720)  # default job parameters (optional)

Every combination of the axes is a point: a config file and ``KEY=VALUE`` overrides for
``tools/train_net.py``, run in a folder named by the axes that vary, e.g.
``config=mgcls_dino_vitdet,freeze=none,fraction=0.3,seed=1``.
"""

from __future__ import annotations

import itertools
import os
import re
import runpy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CONFIG_AXIS", "Grid", "Point", "check_points", "expand_grid", "load_grid", "quote"]

CONFIG_AXIS = "config"
_GRID_NAMES = {"config", "axes", "overrides", "names", "slurm"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_NEEDS_QUOTES = re.compile(r"[\s,=\[\](){}'\"<>#!&;]")


@dataclass
class Grid:
    """A loaded grid file.

    Args:
        path: the grid file.
        config: the config file of every point (None when ``config`` is an axis).
        axes: ordered ``(keys, values)`` pairs; ``keys`` a tuple (zipped keys), ``values``
            a list of tuples of the same length.
        overrides: ``KEY=VALUE`` strings applied to every point before the axes.
        names: folder-name labels for keys.
        slurm: default job parameters (the ``tools/sweep.py`` option names, underscored).
    """

    path: Path
    config: Path | None
    axes: list[tuple[tuple[str, ...], list[tuple]]]
    overrides: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    slurm: dict[str, Any] = field(default_factory=dict)


@dataclass
class Point:
    """One run of a grid: ``tools/train_net.py --config-file config *overrides``."""

    name: str
    config: Path
    overrides: list[str]
    values: dict[str, str]  # folder-name label -> value as written in the name

    def to_json(self) -> dict:
        return {"config": str(self.config), "overrides": list(self.overrides)}


def _resolve_config(value: Any, grid_path: Path) -> Path:
    path = Path(os.fspath(value)).expanduser()
    if not path.is_absolute():
        path = (grid_path.parent / path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"grid {grid_path}: config file {value!r} ({path}) does not exist")
    return path


def load_grid(path: str | os.PathLike) -> Grid:
    """Read a grid file (see the module docstring).

    Raises:
        FileNotFoundError: the grid file or one of its config files is missing.
        ValueError: naming what is malformed.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"grid file {path} does not exist")
    ns = {k: v for k, v in runpy.run_path(str(path)).items() if k in _GRID_NAMES}
    raw_axes = ns.get("axes", {})
    if not isinstance(raw_axes, dict):
        raise ValueError(f"grid {path}: 'axes' must be a dict of key -> list of values")
    axes: list[tuple[tuple[str, ...], list[tuple]]] = []
    for key, values in raw_axes.items():
        keys = tuple(key) if isinstance(key, tuple) else (key,)
        if not all(isinstance(k, str) and k for k in keys):
            raise ValueError(f"grid {path}: axis {key!r} must be a config key or a tuple of keys")
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise ValueError(f"grid {path}: axis {key!r} needs a non-empty list of values")
        rows = []
        for v in values:
            row = tuple(v) if len(keys) > 1 and isinstance(v, list | tuple) else (v,)
            if len(row) != len(keys):
                raise ValueError(
                    f"grid {path}: axis {key!r} zips {len(keys)} keys; value {v!r} has {len(row)}"
                )
            rows.append(row)
        axes.append((keys, rows))
    flat_keys = [k for keys, _ in axes for k in keys]
    if len(set(flat_keys)) != len(flat_keys):
        raise ValueError(f"grid {path}: a key appears in more than one axis: {flat_keys}")
    # config files are resolved against the grid file's folder, as config imports are
    for i, (keys, rows) in enumerate(axes):
        if CONFIG_AXIS in keys:
            j = keys.index(CONFIG_AXIS)
            axes[i] = (keys, [r[:j] + (_resolve_config(r[j], path),) + r[j + 1 :] for r in rows])
    config = ns.get("config")
    if CONFIG_AXIS in flat_keys:
        if isinstance(config, str | os.PathLike):
            raise ValueError(f"grid {path}: 'config' is both a top-level name and an axis")
        config = None
    elif config is None:
        raise ValueError(f"grid {path}: name a config file ('config = ...' or an axis 'config')")
    else:
        config = _resolve_config(config, path)
    overrides = ns.get("overrides", [])
    if isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
        raise ValueError(f"grid {path}: 'overrides' must be a list of 'KEY=VALUE' strings")
    return Grid(
        path=path,
        config=config,
        axes=axes,
        overrides=list(overrides),
        names=dict(ns.get("names", {})),
        slurm=dict(ns.get("slurm", {})),
    )


def _override_value(value: Any) -> str:
    """A python value as the text ``LazyConfig.apply_overrides`` parses back to it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    return quote(value) if isinstance(value, str | os.PathLike) else str(value)


def quote(value: str | os.PathLike) -> str:
    """A string as an override value: quoted where the override grammar would read commas,
    ``=``, brackets or spaces in it as syntax."""
    text = os.fspath(value)
    if text and not _NEEDS_QUOTES.search(text):
        return text
    return "'" + text.replace("'", "\\'") + "'"


def _name_value(key: str, value: Any) -> str:
    if key == CONFIG_AXIS:
        return Path(value).stem
    text = _override_value(value)
    return _UNSAFE.sub("_", text).strip("_") or "_"


def _labels(keys: list[str], names: dict[str, str]) -> dict[str, str]:
    """Folder-name label of each key: its given name, else its shortest unique dotted suffix."""
    labels = {}
    for key in keys:
        if key in names:
            labels[key] = names[key]
            continue
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            label = ".".join(parts[-n:])
            clash = [
                k for k in keys if k != key and k not in names and k.split(".")[-n:] == parts[-n:]
            ]
            if not clash and label not in names.values():
                break
        labels[key] = label
    for label in set(labels.values()):
        same = [k for k, v in labels.items() if v == label]
        if len(same) > 1:
            raise ValueError(f"keys {same} share the folder-name label {label!r}; rename one")
    return labels


def expand_grid(grid: Grid, extra_overrides: Sequence[str] = ()) -> list[Point]:
    """Every combination of the grid's axes, in the order the axes are written.

    Folder names list ``label=value`` for the keys whose value varies across the grid
    (all keys when none varies), joined by commas.

    Args:
        grid: from :func:`load_grid`.
        extra_overrides: ``KEY=VALUE`` strings applied to every point after the axes.

    Raises:
        ValueError: two points would share a folder name.
    """
    keys = [k for ks, _ in grid.axes for k in ks]
    varying = [
        k
        for ks, rows in grid.axes
        for j, k in enumerate(ks)
        if len({_name_value(k, r[j]) for r in rows}) > 1
    ] or keys
    labels = _labels(keys, grid.names)
    points: list[Point] = []
    seen: dict[str, dict] = {}
    for combo in itertools.product(*[rows for _, rows in grid.axes]):
        assignment = {k: v for (ks, _), row in zip(grid.axes, combo) for k, v in zip(ks, row)}
        config = assignment.pop(CONFIG_AXIS, grid.config)
        overrides = list(grid.overrides)
        overrides += [f"{k}={_override_value(v)}" for k, v in assignment.items()]
        overrides += list(extra_overrides)
        values = {labels[k]: _name_value(k, config if k == CONFIG_AXIS else assignment[k])
                  for k in varying}  # fmt: skip
        name = ",".join(f"{label}={v}" for label, v in values.items()) or "run"
        if name in seen:
            raise ValueError(
                f"grid {grid.path}: points {seen[name]} and {assignment} both get the folder "
                f"name {name!r}; give the axes distinct values or labels (grid 'names')"
            )
        seen[name] = dict(assignment, **({CONFIG_AXIS: config.stem} if config else {}))
        points.append(Point(name=name, config=Path(config), overrides=overrides, values=values))
    return points


def check_points(points: Sequence[Point]) -> None:
    """Load each config once and apply every override the points give it, so that a wrong
    key fails here, before anything runs, with the config module's close-match message.

    Raises:
        KeyError: a key that does not exist (the message names it and close matches).
        ValueError: an override that is not ``KEY=VALUE``.
    """
    from astrodet.config import LazyConfig

    by_config: dict[Path, dict[str, None]] = {}
    for p in points:
        by_config.setdefault(p.config, {}).update(dict.fromkeys(p.overrides))
    for config, overrides in by_config.items():
        try:
            LazyConfig.apply_overrides(LazyConfig.load(config), list(overrides))
        except KeyError as e:
            raise KeyError(f"{config.name}: {e.args[0] if e.args else e}") from None
