"""The FIRST source finder trained on truth: ``configs/first_pybdsf_vit_small.py``'s model and
schedule, trained on sources of known shape injected into real FIRST noise (the fields times
-1) instead of PyBDSF's catalogues, so that faint sources PyBDSF misses are labelled and noise
bumps never are.

    tools/train_net.py --config-file configs/first_injected_vit_small.py train.output_dir=DIR
    tools/inject_recover.py --image FIELD.fits --finder pybdsf classical detector \\
        --config-file configs/first_injected_vit_small.py --weights DIR/model_final.pth \\
        --output DIR/truth

Same architecture, tiles, stretch and schedule as the PyBDSF-labelled config (the two differ
only in their labels, so the README's truth table compares labels, not models).
"""

from .common.data.first_injected import dataloader
from .first_pybdsf_vit_small import lr_multiplier, model, optimizer, train

train.output_dir = "output/first_injected_vit_small"
