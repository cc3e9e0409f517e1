"""Same experiment as ``mgcls_dino_vitdet.py`` (alternative spelling of the file name)."""

from .mgcls_dino_vitdet import dataloader, lr_multiplier, model, optimizer, train
