"""Astronomical data: reading, stretches, the dataset catalog, COCO, and the built-in sets.

Importing the package registers every built-in data set (see :mod:`astrodet.data.builtin`);
nothing is read or generated until ``DatasetCatalog.get(name)``.
"""

# importing registers the built-in sets, and rgz_first_det (built on first use)
from . import builtin, rgz_first  # noqa: E402,F401
from .catalog import DatasetCatalog, MetadataCatalog, register_coco_instances
from .coco import label_fraction_indices, load_coco_json, save_coco_json, subset_dicts
from .io import load_dict_image, read_image
from .stretch import apply_stretch, list_stretches, register_stretch, to_rgb

__all__ = [
    "DatasetCatalog",
    "MetadataCatalog",
    "apply_stretch",
    "label_fraction_indices",
    "list_stretches",
    "load_coco_json",
    "load_dict_image",
    "read_image",
    "register_coco_instances",
    "register_stretch",
    "save_coco_json",
    "subset_dicts",
    "to_rgb",
]
