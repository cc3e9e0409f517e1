"""Register every built-in data set on ``import astrodet.data``.

Registration is lazy: nothing is read or generated until ``DatasetCatalog.get(name)``.
Paths are resolved at that moment, so ``$ASTRODET_DATASETS`` and ``$ASTRODET_REAL_DATA``
may be set after import.

================== ============== =============================================================
name               task           data
================== ============== =============================================================
gmnist             classification ``datasets_root()/gmnist/GalaxyMNIST/raw/*.hdf5``
rgz                detection      ``datasets_root()/rgz/{train,test}/annotations.json`` + images/
rgz_cls            classification single-galaxy images of ``rgz``, labelled by the largest box
mgcls              detection      ``datasets_root()/mgcls/{train,test}/annotations.json`` + images/
first_radio_galaxy classification real data (also ``first_radio_galaxy_valid``)
mirabest           classification real data
frdeep_first/nvss  classification real data
decals_rings       classification real data
rgz_first          classification real data
synthetic_sky      detection      generated into ``datasets_root()/synthetic/sky``
synthetic_rgz      detection      generated into ``datasets_root()/synthetic/rgz``
synthetic_galaxies classification generated into ``datasets_root()/synthetic/galaxies``
================== ============== =============================================================

Each is registered as ``<name>_train`` and ``<name>_test``.
"""

from __future__ import annotations

import functools

from astrodet.data import gmnist, real_sets, rgz, synthetic
from astrodet.data.catalog import DatasetCatalog, MetadataCatalog
from astrodet.data.mgcls import MGCLS_CLASSES
from astrodet.utils import datasets_root

__all__ = ["BUILTIN_DATASETS", "register_all"]

SPLITS = ("train", "test")
_PREPARE_HINT = {
    "rgz": "python datasets/prepare_rgz.py --annotations JSON_OR_VOC_DIR --images DIR --out {folder}",
    "mgcls": "python datasets/prepare_mgcls.py --image FITS --catalog CATALOGUE --out {folder}",
}


def _user_coco(name: str, split: str, dataset_name: str) -> list[dict]:
    """A prepared COCO set under ``datasets_root()/<name>/<split>``."""
    from astrodet.data.coco import load_coco_json

    folder = datasets_root() / name / split
    json_file = folder / "annotations.json"
    if not json_file.is_file():
        hint = _PREPARE_HINT[name].format(folder=folder)
        raise FileNotFoundError(
            f"{dataset_name}: {json_file} not found. Prepare it with `{hint}`; "
            "see datasets/README.md for how to obtain the data"
        )
    return load_coco_json(str(json_file), str(folder / "images"), dataset_name=dataset_name)


def _rgz_cls(split: str) -> list[dict]:
    dicts = _user_coco("rgz", split, f"rgz_{split}")
    return rgz.rgz_classification_dicts(dicts, scheme="morphology")[0]


def _synthetic(kind: str, split: str, dataset_name: str) -> list[dict]:
    if kind == "galaxies":
        return synthetic.load_synthetic(kind, split)
    from astrodet.data.coco import load_coco_json

    folder = synthetic.ensure_synthetic(kind) / split
    return load_coco_json(
        str(folder / "annotations.json"), str(folder / "images"), dataset_name=dataset_name
    )


def _classification(classes, stretch, **extra):
    return {"thing_classes": list(classes), "task": "classification", "stretch": stretch, **extra}


def _detection(classes, stretch, **extra):
    return {
        "thing_classes": list(classes),
        "task": "detection",
        "stretch": stretch,
        "evaluator_type": "coco",
        **extra,
    }


def _builtin() -> dict[str, tuple]:
    """name -> (loader(split, dataset_name) -> dicts, metadata, splits)."""
    table = {
        "gmnist": (
            lambda s, n: gmnist.load_gmnist(s),
            _classification(gmnist.GMNIST_CLASSES, None),
            SPLITS,
        ),
        "rgz": (
            lambda s, n: _user_coco("rgz", s, n),
            _detection(rgz.RGZ_CLASSES, None),
            SPLITS,
        ),
        "rgz_cls": (
            lambda s, n: _rgz_cls(s),
            _classification(rgz.RGZ_CLASSES, None),
            SPLITS,
        ),
        "mgcls": (
            lambda s, n: _user_coco("mgcls", s, n),
            _detection(MGCLS_CLASSES, "zscale"),
            SPLITS,
        ),
        "synthetic_sky": (
            lambda s, n: _synthetic("sky", s, n),
            _detection(synthetic.SKY_CLASSES, "zscale"),
            SPLITS,
        ),
        "synthetic_rgz": (
            lambda s, n: _synthetic("rgz", s, n),
            _detection(synthetic.RGZ_CLASSES, "zscale"),
            SPLITS,
        ),
        "synthetic_galaxies": (
            lambda s, n: _synthetic("galaxies", s, n),
            _classification(synthetic.GALAXY_CLASSES, None),
            SPLITS,
        ),
    }
    loaders = {
        "first_radio_galaxy": lambda s, n: real_sets.load_first_radio_galaxy(s),
        "mirabest": lambda s, n: real_sets.load_mirabest(s),
        "frdeep_first": lambda s, n: real_sets.load_frdeep(s, survey="FIRST"),
        "frdeep_nvss": lambda s, n: real_sets.load_frdeep(s, survey="NVSS"),
        "decals_rings": lambda s, n: real_sets.load_decals_rings(s),
        "rgz_first": lambda s, n: real_sets.load_rgz_first(s),
    }
    for name, (classes, stretch, splits) in real_sets.REAL_SETS.items():
        table[name] = (loaders[name], _classification(classes, stretch), splits)
    return table


BUILTIN_DATASETS: dict[str, tuple] = _builtin()


def _call(loader, split, dataset_name):
    return loader(split, dataset_name)


def register_all() -> list[str]:
    """Register every built-in set (idempotent); returns the registered names."""
    names = []
    registered = set(DatasetCatalog.list())
    for base, (loader, meta, splits) in BUILTIN_DATASETS.items():
        for split in splits:
            name = f"{base}_{split}"
            names.append(name)
            if name in registered:
                continue
            DatasetCatalog.register(name, functools.partial(_call, loader, split, name))
            MetadataCatalog.get(name).set(**meta)
    return names


register_all()
