"""A toy classification set registered in the catalog, and a tiny random ViT trunk."""

import numpy as np
import pytest

TINY_VIT = {"embed_dim": 32, "depth": 1, "num_heads": 2}
TOY = "probe_toy"
TOY_CLASSES = ["blob", "hbar", "vbar"]


def toy_dicts(split: str) -> list[dict]:
    """16x16 grey images in [0, 1]: a centred blob, a horizontal bar or a vertical bar,
    with noise. Unbalanced train split (12/8/6), balanced test split (6 each)."""
    rng = np.random.default_rng(0 if split == "train" else 1)
    counts = (12, 8, 6) if split == "train" else (6, 6, 6)
    yy, xx = np.mgrid[:16, :16]
    out = []
    for label, n in enumerate(counts):
        for _ in range(n):
            cy, cx = rng.integers(6, 10, 2)
            if label == 0:
                img = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 6.0)
            elif label == 1:
                img = np.exp(-((yy - cy) ** 2) / 2.0) * (np.abs(xx - cx) < 6)
            else:
                img = np.exp(-((xx - cx) ** 2) / 2.0) * (np.abs(yy - cy) < 6)
            img = np.clip(img + 0.05 * rng.random((16, 16)), 0, 1).astype(np.float32)
            out.append({"image_id": len(out), "label": label, "image": img[..., None]})
    return out


@pytest.fixture(scope="session")
def toy_dataset():
    from astrodet.data import DatasetCatalog, MetadataCatalog

    for split in ("train", "test"):
        name = f"{TOY}_{split}"
        if name not in DatasetCatalog.list():
            DatasetCatalog.register(name, lambda split=split: toy_dicts(split))
            MetadataCatalog.get(name).set(
                thing_classes=TOY_CLASSES, task="classification", stretch=None
            )
    return TOY
