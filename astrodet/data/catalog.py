"""Dataset and metadata catalogs, with Detectron2's names, signatures and behaviour.

``DatasetCatalog`` maps a name to a function returning the dataset dicts (called on every
``get``, so a registration is cheap); ``MetadataCatalog`` maps a name to a :class:`Metadata`
attribute bag (``thing_classes``, ``json_file``, ``image_root``, ``task``, ``stretch``,
``evaluator_type``, ``thing_dataset_id_to_contiguous_id``...). A metadata attribute, once
set, can only be set again to an equal value, as in Detectron2: two parts of a program that
disagree about a set's classes are an error, not a silent overwrite.
"""

from __future__ import annotations

import logging
import os
from collections import UserDict
from collections.abc import Callable
from typing import Any

__all__ = [
    "DatasetCatalog",
    "Metadata",
    "MetadataCatalog",
    "register_coco_instances",
]

logger = logging.getLogger(__name__)


class _DatasetCatalog(UserDict):
    """name -> function returning ``list[dict]``."""

    def register(self, name: str, func: Callable[[], list[dict]]) -> None:
        """Register ``func`` (no arguments, returns the dataset dicts) as ``name``.

        Raises:
            AssertionError: ``func`` is not callable or ``name`` is already registered.
        """
        assert callable(func), f"DatasetCatalog.register({name!r}, ...) needs a callable"
        assert name not in self, f"dataset {name!r} is already registered"
        self[name] = func

    def get(self, name: str) -> list[dict]:
        """Call the registered function of ``name`` and return its dicts.

        Raises:
            KeyError: ``name`` is not registered; the message lists the registered names.
        """
        try:
            func = self[name]
        except KeyError as e:
            raise KeyError(
                f"dataset {name!r} is not registered; registered datasets: "
                f"{', '.join(sorted(self)) or '(none)'}"
            ) from e
        return func()

    def list(self) -> list[str]:
        """Registered names."""
        return list(self.keys())

    def remove(self, name: str) -> None:
        """Forget ``name``."""
        self.pop(name)

    def __str__(self) -> str:
        return f"DatasetCatalog(registered datasets: {', '.join(self.keys())})"

    __repr__ = __str__


DatasetCatalog = _DatasetCatalog()


class Metadata:
    """Attribute bag of one dataset; attributes are set once (or again to an equal value).

    Example::

        MetadataCatalog.get("mgcls_train").set(thing_classes=["source"], stretch="zscale")
        MetadataCatalog.get("mgcls_train").thing_classes  # ["source"]
    """

    name: str = "N/A"

    def __init__(self, **kwargs: Any):
        self.set(**kwargs)

    def __getattr__(self, key: str) -> Any:
        # only called when normal lookup fails
        if key.startswith("__"):
            raise AttributeError(key)
        fields = ", ".join(sorted(self.__dict__))
        raise AttributeError(
            f"attribute {key!r} does not exist in the metadata of dataset "
            f"{self.__dict__.get('name', 'N/A')!r}; available: {fields}"
        )

    def __setattr__(self, key: str, value: Any) -> None:
        if key in self.__dict__:
            old = self.__dict__[key]
            if not _equal(old, value):
                raise AssertionError(
                    f"attribute {key!r} of the metadata of {self.__dict__.get('name', 'N/A')!r} "
                    f"cannot be set to a different value: {old!r} != {value!r}"
                )
            return
        self.__dict__[key] = value

    def set(self, **kwargs: Any) -> Metadata:
        """Set several attributes at once; returns self."""
        for k, v in kwargs.items():
            setattr(self, k, v)
        return self

    def get(self, key: str, default: Any = None) -> Any:
        """The attribute ``key``, or ``default`` when it is not set."""
        return self.__dict__.get(key, default)

    def as_dict(self) -> dict[str, Any]:
        """A copy of all attributes."""
        return dict(self.__dict__)

    def __contains__(self, key: str) -> bool:
        return key in self.__dict__

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"Metadata({fields})"


def _equal(a: Any, b: Any) -> bool:
    # tuples and lists of the same classes are the same classes
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except (ValueError, TypeError):  # e.g. numpy arrays
        return a is b


class _MetadataCatalog(UserDict):
    """name -> :class:`Metadata`, created empty on first ``get``."""

    def get(self, name: str) -> Metadata:
        """The metadata of ``name`` (created if it does not exist yet)."""
        if name not in self:
            self[name] = Metadata(name=name)
        return self[name]

    def list(self) -> list[str]:
        """Names with metadata."""
        return list(self.keys())

    def remove(self, name: str) -> None:
        """Forget the metadata of ``name``."""
        self.pop(name)

    def __str__(self) -> str:
        return f"MetadataCatalog(registered metadata: {', '.join(self.keys())})"

    __repr__ = __str__


MetadataCatalog = _MetadataCatalog()


def register_coco_instances(
    name: str, metadata: dict, json_file: str | os.PathLike, image_root: str | os.PathLike
) -> None:
    """Register a COCO-json detection set under ``name``, as Detectron2 does.

    Args:
        name: dataset name, e.g. ``"mgcls_train"``.
        metadata: extra metadata (may be empty), e.g. ``{"stretch": "zscale"}``.
        json_file: the COCO annotation file.
        image_root: folder the json's ``file_name`` entries are relative to.
    """
    from astrodet.data.coco import load_coco_json

    assert isinstance(name, str), name
    assert isinstance(json_file, str | os.PathLike), json_file
    assert isinstance(image_root, str | os.PathLike), image_root
    json_file, image_root = os.fspath(json_file), os.fspath(image_root)
    DatasetCatalog.register(name, lambda: load_coco_json(json_file, image_root, name))
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type="coco", **metadata
    )
