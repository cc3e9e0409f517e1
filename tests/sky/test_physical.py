"""find_sources --associate: physical sources (boxes, class, component counts) with their
components linked by source_id, from a tiny random-init detector of the RGZ/FIRST config;
the plumbing only (the model is untrained)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.table import Table

from astrodet.config import LazyConfig, instantiate
from astrodet.data.rgz import RGZ_CLASSES
from astrodet.sky import COLUMNS
from astrodet.sky.finders.detector import TileBoxes, merge_tile_boxes
from astrodet.sky.physical import BOX_COLUMNS, associates_by_default, class_names

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "sky"))
import find_sources  # noqa: E402
from test_find_sources import _fits  # noqa: E402

CONFIG = ROOT / "configs" / "rgz_first_vit_small.py"
TINY = [
    "model.backbone.trunk_kwargs.embed_dim=32",
    "model.backbone.trunk_kwargs.depth=1",
    "model.backbone.trunk_kwargs.num_heads=2",
    "model.backbone.trunk_kwargs.img_size=64",
    "model.image_size=64",
    "model.backbone.out_channels=16",
    "model.representation_size=32",
    "dataloader.tile_size=32",
    "dataloader.tile_overlap=8",
]
EVERY = ["--score-thresh", "0.0", "--min-snr", "0"]  # every box the random model gives


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    cfg = LazyConfig.apply_overrides(LazyConfig.load(str(CONFIG)), TINY)
    path = tmp_path_factory.mktemp("tiny") / "model_final.pth"
    torch.save({"model": instantiate(cfg.model).state_dict()}, path)
    return path


def _run(*args):
    return find_sources.main([str(a) for a in args])


def test_configs_say_whether_they_find_physical_sources():
    assert associates_by_default(CONFIG)
    assert associates_by_default(ROOT / "configs" / "rgz_first_r50_fpn.py")
    assert not associates_by_default(ROOT / "configs" / "first_pybdsf_vit_small.py")
    assert class_names(CONFIG) == list(RGZ_CLASSES)


def test_merged_boxes_keep_their_class():
    a = TileBoxes(0, 0, 32, 32, np.array([[20.0, 10, 24, 14]]), np.array([0.9]), np.array([4]))
    b = TileBoxes(0, 24, 32, 56, np.array([[20.5, 10, 24.5, 14], [40.0, 5, 50, 12]]),
                  np.array([0.8, 0.7]), np.array([1, 2]))  # fmt: skip
    boxes, scores, labels = merge_tile_boxes([a, b], shape=(32, 56), overlap=8, return_labels=True)
    assert len(boxes) == 2 and list(labels) == [4, 2] and list(scores) == [0.9, 0.7]
    # tiles without labels (older callers): -1
    c = TileBoxes(0, 0, 32, 32, np.array([[20.0, 10, 24, 14]]), np.array([0.9]))
    assert list(merge_tile_boxes([c], shape=(32, 32), overlap=8, return_labels=True)[2]) == [-1]
    assert len(merge_tile_boxes([c], shape=(32, 32), overlap=8)) == 2


def test_physical_sources_with_linked_components(tmp_path, tiny):
    image = _fits(tmp_path / "field.fits")
    out = tmp_path / "out"
    args = ["--config-file", CONFIG, "--weights", tiny, "--image", image, "--output", out]
    assert _run(*args, *EVERY, "--threads", "1", *TINY) == 0
    for name in ("field.fits", "field.csv", "field.reg", "field.png"):
        assert (out / name).is_file(), name
    sources = Table.read(out / "field.csv", format="ascii.csv")
    comps = Table.read(out / "field_components.csv", format="ascii.csv")
    assert set(COLUMNS) | set(BOX_COLUMNS) | {"class", "class_score", "n_components"} <= set(
        sources.colnames
    )
    assert len(sources) > 0 and set(sources["class"]) <= set(RGZ_CLASSES)
    assert list(sources["source_id"]) == list(range(len(sources)))
    np.testing.assert_allclose(sources["class_score"], sources["score"])
    # the classical finder's three Gaussians, each linked to the box holding it (or -1)
    assert comps.colnames[:2] == ["component_id", "source_id"] and len(comps) == 3
    ids = set(sources["source_id"])
    counts = np.zeros(len(sources), int)
    for row in comps:
        sid = int(row["source_id"])
        if sid < 0:
            continue
        assert sid in ids
        s = sources[sid]
        assert s["x_min"] <= row["x"] + 0.5 <= s["x_max"]
        assert s["y_min"] <= row["y"] + 0.5 <= s["y_max"]
        counts[sid] += 1
    np.testing.assert_array_equal(sources["n_components"], counts)
    # boxes in the field's frame, inside it
    assert ((sources["x_min"] < sources["x_max"]) & (sources["y_min"] < sources["y_max"])).all()
    assert (sources["x_min"] >= 0).all() and (sources["x_max"] <= 90).all()
    fits_rows = Table.read(out / "field_components.fits")
    assert list(fits_rows["source_id"]) == list(comps["source_id"])
    reg = (out / "field.reg").read_text()
    assert reg.count("box(") == len(sources) and reg.count("ellipse(") == len(comps)


def test_no_associate_gives_the_component_catalogue(tmp_path, tiny):
    image = _fits(tmp_path / "field.fits")
    out = tmp_path / "out"
    args = ["--config-file", CONFIG, "--weights", tiny, "--image", image, "--output", out]
    assert _run(*args, *EVERY, "--threads", "1", "--no-associate", "--no-picture", *TINY) == 0
    table = Table.read(out / "field.csv", format="ascii.csv")
    assert "class" not in table.colnames and not (out / "field_components.csv").exists()


def test_associate_needs_a_detector(tmp_path, capsys):
    image = _fits(tmp_path / "field.fits")
    with pytest.raises(SystemExit):
        _run("--finder", "classical", "--associate", "--image", image, "--output", tmp_path / "o")
    assert "--associate needs a detector" in capsys.readouterr().err


def test_classes_follow_the_models_one_based_labels(tmp_path):
    from astrodet.sky import new_catalogue, open_field
    from astrodet.sky.physical import find_physical_sources

    class Stub:  # a detector that boxes the first two Gaussians of _fits as one source
        name, measure, min_snr, stats = "detector", False, None, {}
        labels = np.array([6, 1])

        def detect(self, field):
            return np.array([[15.0, 10, 66, 36], [40, 45, 50, 55]]), np.array([0.9, 0.4])

    class Components:
        name = "stub"

        def find(self, field):
            return new_catalogue(x=[20.0, 60.0, 45.0, 80.0], y=[30.0, 15.0, 50.0, 60.0])

    with open_field(_fits(tmp_path / "field.fits")) as field:
        sources, comps = find_physical_sources(
            Stub(), field, classes=list(RGZ_CLASSES), component_finder=Components()
        )
    assert list(sources["class"]) == ["3C_3P", "1C_1P"]
    assert list(sources["n_components"]) == [2, 1]
    assert list(comps["source_id"]) == [0, 0, 1, -1]
    assert list(comps["component_id"]) == [0, 1, 2, 3]


def test_absorb_setting_from_flags_config_or_defaults():
    from astrodet.sky.associate import ABSORB_INSIDE, ABSORB_SCORE_RATIO
    from astrodet.sky.physical import absorb_setting, finder_settings

    assert absorb_setting() == (ABSORB_INSIDE, ABSORB_SCORE_RATIO)
    point = finder_settings(CONFIG)
    assert point["associate"] and absorb_setting(point) == (
        point.get("absorb_inside", ABSORB_INSIDE),
        point.get("absorb_score_ratio", ABSORB_SCORE_RATIO),
    )
    assert absorb_setting({"absorb_inside": 0.6}, score_ratio=0.7) == (0.6, 0.7)
    assert absorb_setting(point, inside=0) is None
    with pytest.raises(ValueError, match="absorb_inside"):
        absorb_setting(inside=2.0)


def test_absorbed_boxes_are_not_physical_sources(tmp_path):
    from astrodet.sky import new_catalogue, open_field
    from astrodet.sky.physical import find_physical_sources

    class Finder:  # a double's box with a lobe's box inside it, and a separate source
        name, measure, min_snr, labels = "fake", False, None, [5, 1, 1]
        stats = {"tiles": 1}
        operating_point = {"absorb_inside": 0.8, "absorb_score_ratio": 0.5}

        def detect(self, field):
            boxes = np.array([[10, 30, 60, 50], [12, 32, 28, 48], [70, 70, 80, 80]], float)
            return boxes, np.array([0.6, 0.9, 0.7])

    class Comps:
        name = "fake components"

        def find(self, field):
            return new_catalogue(x=np.array([19.5, 49.5, 74.5]), y=np.array([39.5, 39.5, 74.5]))

    with open_field(_fits(tmp_path / "field.fits")) as field:
        sources, comps = find_physical_sources(
            Finder(), field, classes=list(RGZ_CLASSES), component_finder=Comps()
        )
        assert list(sources["class"]) == ["2C_3P", "1C_1P"]
        assert list(comps["source_id"]) == [0, 0, 1] and list(sources["n_components"]) == [2, 1]
        assert sources.meta["ABSORB"] == "0.8 0.5"
        # off: the lobe's box takes its component and the double is split
        sources, comps = find_physical_sources(
            Finder(), field, classes=list(RGZ_CLASSES), component_finder=Comps(), absorb=None
        )
        assert len(sources) == 3 and list(comps["source_id"]) == [1, 0, 2]
