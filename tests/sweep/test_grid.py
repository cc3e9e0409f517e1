"""Grid files: expansion, folder names, override texts, job parameters and clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from astrodet.sweep import check_points, expand_grid, job_parameters, load_grid, run_finished
from astrodet.sweep.grid import quote

REPO = Path(__file__).resolve().parents[2]
GRIDS = REPO / "configs" / "grids"


@pytest.fixture
def configs(tmp_path) -> Path:
    """Two plain config files beside each other."""
    folder = tmp_path / "configs"
    folder.mkdir()
    body = "train = dict(seed=0, max_iter=10, output_dir='x')\nmodel = dict(freeze='backbone', trunk='dino', sizes=[1])\n"
    (folder / "a_vitdet.py").write_text(body)
    (folder / "b_fpn.py").write_text(body)
    return folder


def _grid(folder: Path, text: str) -> Path:
    path = folder / "grid.py"
    path.write_text(text)
    return path


def test_expansion_order_names_and_overrides(configs):
    grid = load_grid(_grid(configs, """
axes = {
    "config": ["a_vitdet.py", "b_fpn.py"],
    "model.freeze": ["backbone", "none"],
    "train.seed": [0, 1, 2],
    "model.trunk": ["dino"],
}
overrides = ["train.max_iter=5"]
"""))  # fmt: skip
    points = expand_grid(grid, ["model.sizes=[2,3]"])
    assert len(points) == 2 * 2 * 3
    first = points[0]
    # only the axes that vary name the folder; the last axis changes fastest
    assert first.name == "config=a_vitdet,freeze=backbone,seed=0"
    assert [p.name for p in points[:3]] == [
        f"config=a_vitdet,freeze=backbone,seed={s}" for s in range(3)
    ]
    assert points[-1].name == "config=b_fpn,freeze=none,seed=2"
    assert first.config == configs / "a_vitdet.py"
    # grid overrides, then the axes in order, then the extra ones
    assert first.overrides == ["train.max_iter=5", "model.freeze=backbone", "train.seed=0",
                               "model.trunk=dino", "model.sizes=[2,3]"]  # fmt: skip
    assert len({p.name for p in points}) == len(points)
    check_points(points)


def test_zipped_axes_labels_and_values(configs):
    grid = load_grid(_grid(configs, """
config = "a_vitdet.py"
axes = {
    ("train.seed", "model.seed"): [(0, 10), (1, 11)],
    "model.flag": [True, False, None],
    "model.ratio": [0.1, 1.0],
    "model.name": ["x y", "a=b"],
}
names = {"model.seed": "subset"}
"""))  # fmt: skip
    points = expand_grid(grid)
    assert len(points) == 2 * 3 * 2 * 2
    p = points[0]
    assert p.name == "seed=0,subset=10,flag=true,ratio=0.1,name=x_y"
    assert p.overrides == ["train.seed=0", "model.seed=10", "model.flag=true", "model.ratio=0.1",
                           "model.name='x y'"]  # fmt: skip
    assert points[1].overrides[-1] == "model.name='a=b'" and points[1].name.endswith("name=a_b")
    assert points[4].overrides[2] == "model.flag=false" and "flag=null" in points[8].name
    for p in points:  # filesystem-safe
        assert "/" not in p.name and " " not in p.name and not p.name.startswith(".")


def test_same_last_key_part_gets_longer_labels(configs):
    grid = load_grid(_grid(configs, """
config = "a_vitdet.py"
axes = {"train.seed": [0, 1], "model.seed": [2, 3]}
"""))  # fmt: skip
    assert expand_grid(grid)[0].name == "train.seed=0,model.seed=2"


def test_single_point_names_every_axis(configs):
    grid = load_grid(_grid(configs, 'config = "a_vitdet.py"\naxes = {"train.seed": [3]}\n'))
    (point,) = expand_grid(grid)
    assert point.name == "seed=3" and point.overrides == ["train.seed=3"]


def test_colliding_names(configs):
    grid = load_grid(
        _grid(configs, 'config = "a_vitdet.py"\naxes = {"model.trunk": ["a b", "a_b"]}\n')
    )
    with pytest.raises(ValueError, match="both get the folder name 'trunk=a_b'"):
        expand_grid(grid)


def test_unknown_key_close_match(configs):
    grid = load_grid(_grid(configs, 'config = "a_vitdet.py"\naxes = {"model.frezee": ["none"]}\n'))
    with pytest.raises(KeyError) as e:
        check_points(expand_grid(grid))
    message = e.value.args[0]
    assert "a_vitdet.py" in message and "'model.frezee' does not exist" in message
    assert "Did you mean: model.freeze" in message


@pytest.mark.parametrize(
    "text, match",
    [
        ('axes = {"train.seed": [0]}\n', "name a config file"),
        ('config = "missing.py"\naxes = {}\n', "does not exist"),
        ('config = "a_vitdet.py"\naxes = {"train.seed": []}\n', "non-empty list"),
        ('config = "a_vitdet.py"\naxes = {("train.seed", "model.seed"): [(0,)]}\n', "zips 2 keys"),
        ('config = "a_vitdet.py"\naxes = {"config": ["b_fpn.py"]}\n', "both a top-level"),
        ('config = "a_vitdet.py"\naxes = {"train.seed": [0], ("train.seed", "model.x"): [(1, 2)]}\n',
         "more than one axis"),
    ],
)  # fmt: skip
def test_malformed_grids(configs, text, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        load_grid(_grid(configs, text))


@pytest.mark.parametrize("study", ["mgcls", "rgz", "rgz_first"])
def test_paper_grids(study):
    grid = load_grid(GRIDS / f"{study}_paper.py")
    points = expand_grid(grid)
    # six backbones x frozen/fine-tuned x four fractions x three seeds
    assert len(points) == 6 * 2 * 4 * 3 and len({p.name for p in points}) == len(points)
    assert {p.config.name for p in points} == {
        f"{study}_{b}.py" for b in ("mae_vitdet", "dino_vitdet", "dinov2_vitdet", "msn_vitdet",
                                    "r50_fpn", "r18_fpn")}  # fmt: skip
    assert all(p.config.is_file() for p in points)
    assert {p.values["freeze"] for p in points} == {"backbone", "none"}
    assert {p.values["fraction"] for p in points} == {"0.1", "0.3", "0.5", "1.0"}


def test_synthetic_small_grid_keys_exist():
    points = expand_grid(load_grid(GRIDS / "synthetic_small.py"))
    assert [p.name for p in points] == ["freeze=backbone,seed=0", "freeze=backbone,seed=1",
                                        "freeze=none,seed=0", "freeze=none,seed=1"]  # fmt: skip
    check_points(points)


def test_job_parameters_precedence():
    params = job_parameters(grid_defaults={"gpus_per_node": 2, "partition": "a"}, partition="b",
                            qos=None, mem_gb=64)  # fmt: skip
    assert params["gpus_per_node"] == 2 and params["tasks_per_node"] == 2
    assert (
        params["slurm_partition"] == "b" and params["slurm_qos"] is None and params["mem_gb"] == 64
    )
    with pytest.raises(ValueError, match="unknown job parameter 'gpus'"):
        job_parameters(grid_defaults={"gpus": 2})


def test_quote_round_trips_through_overrides():
    from omegaconf import OmegaConf

    from astrodet.config import LazyConfig

    cfg = OmegaConf.create({"a": 1})
    for text in ["/runs/freeze=none,seed=0", "it's [x]", "plain", "none", "timm:vit_small"]:
        LazyConfig.apply_overrides(cfg, [f"a={quote(text)}"])
        assert cfg.a == text


def test_run_finished(tmp_path):
    import json

    assert not run_finished(tmp_path)
    (tmp_path / "metrics.json").write_text("{}")
    assert not run_finished(tmp_path)  # killed after an evaluation, before the final checkpoint
    (tmp_path / "model_final.pth").write_bytes(b"x")
    os.utime(tmp_path / "metrics.json", (1e9, 1e9))  # a periodic evaluation, before the end
    log = tmp_path / "metrics.jsonl"
    records = [{"iteration": 2, "total_loss": 1.0}, {"iteration": 2, "bbox/AP50": 0.1},
               {"iteration": 4, "total_loss": 0.9}]  # fmt: skip
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert not run_finished(tmp_path)  # the last evaluation is not the final one
    log.write_text(log.read_text() + json.dumps({"iteration": 4, "bbox/AP50": 0.2}) + "\n")
    assert run_finished(tmp_path)  # evaluated at the last iteration, then saved
    log.unlink()
    assert not run_finished(tmp_path)
    os.utime(tmp_path / "metrics.json", None)  # an evaluation of the final checkpoint
    assert run_finished(tmp_path)
