"""A tiny detection project for the command-line tests: 64 px simulated fields saved as COCO,
and a from-scratch ViTDet config file beside a link to the real ``configs/common``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]

TINY_CONFIG = '''
"""A tiny from-scratch ViTDet on 64 px simulated fields, built from the common pieces."""
from pathlib import Path

from .common.data._coco import coco_dataloader
from .common.models.vitdet import model
from .common.optim import AdamW as optimizer
from .common.schedule import lr_multiplier
from .common.train import train

dataloader = coco_dataloader(folder=Path({data!r}), name="tinysky", image_size=64, stretch="zscale")
dataloader["train"].total_batch_size = 2
dataloader["train"].num_workers = 0
dataloader["test"].num_workers = 0

model.image_size = 64
model.backbone.weights = "none"
model.backbone.out_channels = 16
model.backbone.trunk_kwargs = dict(embed_dim=32, depth=1, num_heads=2)
model.anchor_sizes = ((4,), (8,), (16,), (32,), (64,))
model.aspect_ratios = (1.0,)
model.rpn_pre_nms_top_n_test = 100
model.rpn_post_nms_top_n_test = 50
model.representation_size = 32

train.log_period = 1
train.device = "cpu"
train.output_dir = "unused"
'''


def write_split(folder: Path, n: int, seed: int) -> None:
    """``n`` simulated fields as ``folder/images/*.npy`` and ``folder/annotations.json``."""
    from astrodet.data.coco import save_coco_json
    from astrodet.data.synthetic import SKY_CLASSES, generate_sky

    images, dicts = generate_sky(n, seed=seed, size=64, mean_compact=4.0, mean_extended=0.0)
    (folder / "images").mkdir(parents=True)
    out = []
    for img, d in zip(images, dicts):
        name = f"{d['image_id']:04d}.npy"
        np.save(folder / "images" / name, img)
        out.append({k: v for k, v in d.items() if k != "info"} | {"file_name": name})
    save_coco_json(folder / "annotations.json", out, SKY_CLASSES)


def make_tiny_project(root: Path, *, n_train: int, n_test: int, settings: str = "") -> Path:
    """Write ``root/data/{train,test}`` and ``root/configs/tiny.py``; return the config's path.

    Args:
        root: an empty folder.
        n_train, n_test: simulated fields per split.
        settings: config lines appended to :data:`TINY_CONFIG` (the test's own settings).
    """
    write_split(root / "data" / "train", n_train, seed=1)
    write_split(root / "data" / "test", n_test, seed=2)
    (root / "configs").mkdir()
    (root / "configs" / "common").symlink_to(REPO / "configs" / "common")
    path = root / "configs" / "tiny.py"
    path.write_text(TINY_CONFIG.format(data=str(root / "data")) + settings)
    return path
