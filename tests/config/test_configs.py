"""Every experiment config loads; one is built with a tiny random trunk."""

from pathlib import Path

import pytest
import torch

from astrodet.config import LazyConfig, instantiate

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
EXPERIMENTS = sorted(p.name for p in CONFIGS.glob("*.py"))
CONTRACT_KEYS = [
    "dataloader.train.dataset.json_file",
    "dataloader.train.dataset.image_root",
    "dataloader.test.dataset.json_file",
    "dataloader.test.dataset.image_root",
    "dataloader.train.total_batch_size",
    "dataloader.train.fraction",
    "model.backbone.freeze",
    "train.max_iter",
    "train.eval_period",
    "train.checkpoint_period",
    "train.output_dir",
    "train.seed",
]
TINY = "{embed_dim:32,depth:2,num_heads:2,img_size:32}"


def _get(cfg, key):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def test_all_paper_experiments_present():
    for ds in ("mgcls", "rgz"):
        for m in ("mae", "dino", "dinov2", "msn"):
            assert f"{ds}_{m}_vitdet.py" in EXPERIMENTS
        for r in ("r50", "r18"):
            assert f"{ds}_{r}_fpn.py" in EXPERIMENTS
    assert "mgclss_dino_vitdet.py" in EXPERIMENTS
    assert "synthetic_vit_small.py" in EXPERIMENTS and "synthetic_r18_fpn.py" in EXPERIMENTS


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_loads(name):
    cfg = LazyConfig.load(CONFIGS / name)
    assert {"model", "dataloader", "optimizer", "lr_multiplier", "train"} <= set(cfg)
    for key in CONTRACT_KEYS:
        _get(cfg, key)
    for split in ("train", "test"):
        dataset = _get(cfg, f"dataloader.{split}.dataset")
        assert dataset.json_file.endswith(f"{split}/annotations.json")
        assert dataset.image_root.endswith(f"{split}/images")
    if name.startswith(("mgcls", "rgz")) and "vit_small" not in name:  # the paper's
        size = 224 if name.startswith("rgz") else 512
        assert cfg.model.image_size == size
        if "vitdet" in name:
            assert cfg.model.backbone.image_size == size  # follows model.image_size
        assert cfg.dataloader.train.image_size == cfg.dataloader.test.image_size == size
        assert cfg.dataloader.train.total_batch_size == 16
        # on real FIRST pixels the boxes follow the emission: turns and mirrors only
        augment = "geometric" if name.startswith("rgz_first") else True
        assert cfg.dataloader.train.augment == augment
    LazyConfig.apply_overrides(cfg, ["model.backbone.freeze=none", "dataloader.train.fraction=0.1"])
    assert cfg.model.backbone.freeze == "none" and cfg.dataloader.train.fraction == 0.1


def test_paper_epochs_follow_the_loaded_training_set():
    from types import SimpleNamespace

    from astrodet.engine.defaults import resolve_schedule

    for name in (
        "rgz_first_dino_vitdet",
        "rgz_first_r50_fpn",
        "rgz_dino_vitdet",
        "rgz_r50_fpn",
        "mgcls_dino_vitdet",
        "mgcls_r50_fpn",
    ):
        cfg = LazyConfig.load(CONFIGS / f"{name}.py")
        assert cfg.train.max_iter is None and cfg.train.epochs == 100, name
    # the paper's RGZ training split: 6141 images, batch 16
    loader = SimpleNamespace(dataset=[None] * 6141, total_batch_size=16)
    assert resolve_schedule(cfg.train, loader) == (38382, 3838, 3838)
    # a 10 % label fraction trains 100 epochs of its own images
    loader.dataset = [None] * 614
    assert resolve_schedule(cfg.train, loader)[0] == 3838
    LazyConfig.apply_overrides(cfg, ["train.max_iter=500", "train.eval_period=100"])
    assert resolve_schedule(cfg.train, loader) == (500, 100, 50)
    LazyConfig.apply_overrides(cfg, ["train.max_iter=None", "train.epochs=None"])
    with pytest.raises(ValueError, match="set one of them"):
        resolve_schedule(cfg.train, loader)


def test_rgz_alias():
    alias = LazyConfig.load(CONFIGS / "mgclss_dino_vitdet.py")
    assert alias == LazyConfig.load(CONFIGS / "mgcls_dino_vitdet.py")


@pytest.mark.parametrize("name", ["mgcls", "rgz", "rgz_first"])
def test_paper_vitdet_configs_use_vitdet_b_attention(name):
    """ViTDet-B: 14x14 windows in every block but 2, 5, 8, 11, relative positions, drop path
    0.1, in every paper ViT experiment (they import the DINO one and change the trunk)."""
    for trunk in ("dino", "dinov2", "mae", "msn"):
        backbone = LazyConfig.load(CONFIGS / f"{name}_{trunk}_vitdet.py").model.backbone
        assert backbone.window_size == 14
        assert list(backbone.window_block_indexes) == [0, 1, 3, 4, 6, 7, 9, 10]
        assert backbone.use_rel_pos is True and backbone.drop_path_rate == 0.1


def test_build_vitdet_experiment_with_tiny_trunk(tmp_path):
    cfg = LazyConfig.load(CONFIGS / "mgcls_dinov2_vitdet.py")
    LazyConfig.apply_overrides(
        cfg,
        [
            "model.backbone.weights=none",
            f"model.backbone.trunk_kwargs={TINY}",
            # the ViT-B window list names blocks a depth-2 trunk does not have
            "model.backbone.window_block_indexes=[0]",
            "model.backbone.out_channels=16",
            "model.image_size=64",
            "model.representation_size=32",
        ],
    )
    LazyConfig.save(cfg, tmp_path / "config.yaml")
    cfg = LazyConfig.load(tmp_path / "config.yaml")  # through YAML, as train_net saves it
    model = instantiate(cfg.model)
    assert model.backbone.freeze == "backbone" and model.backbone.image_size == 64
    assert model.backbone.trunk.model.patch_embed.proj.kernel_size == (16, 16)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    assert isinstance(optimizer, torch.optim.AdamW)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == trainable
    schedule = instantiate(cfg.lr_multiplier)
    assert schedule(0.0) < schedule(0.5) == 1.0
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, 64, 64)])
    assert set(out[0]) == {"boxes", "scores", "labels"}


def test_build_fpn_and_small_configs():
    cfg = LazyConfig.load(CONFIGS / "synthetic_r18_fpn.py")
    model = instantiate(cfg.model)
    assert model.backbone.out_channels == 128 and model.backbone.freeze == "none"
    cfg = LazyConfig.load(CONFIGS / "synthetic_vit_small.py")
    model = instantiate(cfg.model)
    vit = model.backbone.trunk.model
    assert len(vit.blocks) == 4 and vit.embed_dim == 192
    assert all(p.requires_grad for p in model.parameters())


def test_cpu_configs_have_cpu_heads_and_paper_configs_vitdets():
    """The CPU demo's heads are torchvision's (a step 3x faster on 2 cores); the paper's
    configs keep ViTDet's 4conv1fc head, two-conv RPN and adaptive RoIAlign."""
    cpu_configs = ("synthetic_vit_small.py", "rgz_first_vit_small.py", "first_pybdsf_vit_small.py")
    for name in (*cpu_configs, "first_injected_vit_small.py"):
        cpu = LazyConfig.load(CONFIGS / name).model
        assert (cpu.box_head, cpu.rpn_head_convs, cpu.roi_sampling_ratio) == ("2mlp", 1, 2)
        assert cpu.backbone.out_channels <= 96
    for name in ("mgcls_dino_vitdet.py", "rgz_mae_vitdet.py", "rgz_first_msn_vitdet.py"):
        paper = LazyConfig.load(CONFIGS / name).model
        assert (paper.box_head, paper.rpn_head_convs, paper.roi_sampling_ratio) == (
            "4conv1fc",
            2,
            0,
        )
        assert paper.backbone.out_channels == 256


def _tiny_coco(folder: Path, *, n: int, seed: int) -> None:
    """``n`` simulated 64 px fields as a COCO set (annotations.json + images/) in ``folder``."""
    import numpy as np

    from astrodet.data.coco import save_coco_json
    from astrodet.data.synthetic import generate_sky

    images, dicts = generate_sky(n, seed=seed, size=64, mean_compact=3.0, mean_extended=0.0)
    (folder / "images").mkdir(parents=True)
    out = []
    for img, d in zip(images, dicts):
        np.save(folder / "images" / f"own{d['image_id']}.npy", img)
        out.append(
            {k: v for k, v in d.items() if k != "info"} | {"file_name": f"own{d['image_id']}.npy"}
        )
    save_coco_json(folder / "annotations.json", out, ["blob"])


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n.startswith("synthetic")])
def test_synthetic_config_reads_another_coco_set(name, tmp_path, monkeypatch):
    """json_file/image_root overrides point a synthetic config at the user's COCO set; the
    simulated sky is not generated then."""
    root = tmp_path / "datasets"
    monkeypatch.setenv("ASTRODET_DATASETS", str(root))
    own = tmp_path / "own"
    _tiny_coco(own / "train", n=3, seed=1)
    _tiny_coco(own / "test", n=2, seed=2)
    cfg = LazyConfig.load(CONFIGS / name)
    LazyConfig.apply_overrides(
        cfg,
        [
            f"dataloader.{s}.dataset.{k}={own / s / v}"
            for s in ("train", "test")
            for k, v in (("json_file", "annotations.json"), ("image_root", "images"))
        ],
    )
    for split, n in (("train", 3), ("test", 2)):
        dicts = instantiate(_get(cfg, f"dataloader.{split}.dataset"))
        assert len(dicts) == n
        assert all(Path(d["file_name"]).parent == own / split / "images" for d in dicts)
    assert not root.exists()  # nothing simulated
    # the evaluator takes the class names from the test json
    from astrodet.engine.defaults import build_evaluator

    evaluator = build_evaluator(cfg, instantiate(cfg.dataloader.test.dataset), tmp_path / "ev")
    assert [c["name"] for c in evaluator._gt["categories"]] == ["blob"]


def test_synthetic_config_generates_the_sky_on_first_use(tmp_path, monkeypatch):
    monkeypatch.setenv("ASTRODET_DATASETS", str(tmp_path / "datasets"))
    cfg = LazyConfig.load(CONFIGS / "synthetic_vit_small.py")
    sky = tmp_path / "datasets" / "synthetic" / "sky"
    assert Path(cfg.dataloader.test.dataset.json_file) == sky / "test" / "annotations.json"
    assert not sky.exists()
    dicts = instantiate(cfg.dataloader.test.dataset)
    assert (sky / "train" / "annotations.json").is_file()  # both splits made together
    assert len(dicts) == 50 and all(d["width"] == 256 for d in dicts)
    assert all(Path(d["file_name"]).parent == sky / "test" / "images" for d in dicts)
    # the same files on the next load: generated once
    mtime = (sky / "test" / "annotations.json").stat().st_mtime_ns
    assert len(instantiate(cfg.dataloader.test.dataset)) == 50
    assert (sky / "test" / "annotations.json").stat().st_mtime_ns == mtime


def test_rgz_first_configs_train_on_whole_sources():
    """The RGZ/FIRST configs read the real consensus set, six classes, and mark their models
    as finders of physical sources (find_sources associates by default)."""
    names = [n for n in EXPERIMENTS if n.startswith("rgz_first")]
    assert len(names) == 7
    for name in names:
        cfg = LazyConfig.load(CONFIGS / name)
        assert "rgz_first_det" in cfg.dataloader.test.dataset.json_file
        assert cfg.dataloader.test.dataset.dataset_name == "rgz_first_det_test"
        assert cfg.model.num_classes == 6 and cfg.finder["associate"] is True
    small = LazyConfig.load(CONFIGS / "rgz_first_vit_small.py")
    vit = instantiate(small.model).backbone.trunk.model
    assert len(vit.blocks) == 4 and vit.embed_dim == 192
    assert "associate" not in LazyConfig.load(CONFIGS / "first_pybdsf_vit_small.py").get(
        "finder", {}
    )
