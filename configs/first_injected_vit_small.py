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

# The operating point the finder reads (tools/find_sources.py, tools/inject_recover.py; their
# flags override it): the labels go down to injected peak S/N 3, so detections are kept down
# to a measured S/N of 3 and tiles are looked at from a 3-sigma pixel up; the score threshold
# stays at the classifier's own 0.5.
finder = dict(score_thresh=0.5, min_snr=3.0, min_peak_snr=3.0)
