"""What the weights were trained at travels with them: ``meta`` in every checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from astrodet.config import LazyConfig
from astrodet.engine.checkpoint import Checkpointer
from astrodet.engine.defaults import training_meta

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_meta_saved_in_every_checkpoint_and_returned_on_load(tmp_path):
    model = nn.Linear(3, 2)
    ckpt = Checkpointer(model, tmp_path, meta={"beam_pixels": 3.0, "tile_size": 96})
    path = ckpt.save("model_final", iteration=5)
    assert torch.load(path, weights_only=True)["meta"] == {"beam_pixels": 3.0, "tile_size": 96}
    rest = Checkpointer(nn.Linear(3, 2)).load(path, checkpointables=False)
    assert rest["meta"] == {"beam_pixels": 3.0, "tile_size": 96} and rest["iteration"] == 5
    # no meta, no entry
    plain = Checkpointer(model, tmp_path / "plain").save("model_final", iteration=1)
    assert "meta" not in torch.load(plain, weights_only=True)


def test_training_meta_from_configs():
    first = LazyConfig.load(str(CONFIGS / "first_pybdsf_vit_small.py"))
    assert training_meta(first) == {"beam_pixels": 3.0, "tile_size": 48, "tile_overlap": 16}
    # a config that says nothing of beams records nothing
    assert training_meta(LazyConfig.load(str(CONFIGS / "synthetic_vit_small.py"))) == {}
