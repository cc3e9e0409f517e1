"""A CPU-sized grid on the simulated sky: the small from-scratch ViT of
``configs/synthetic_vit_small.py``, frozen and fine-tuned, two seeds: 4 points of 80
iterations, a few minutes in all on 2 cores.

    tools/sweep.py --grid configs/grids/synthetic_small.py --output output/sweeps/small
    tools/report.py output/sweeps/small --output output/reports/small

A smoke grid only: the trunk is randomly initialised, so its "frozen" points train a
detector on random features. That exercises the sweep, the resume and the report, but the
frozen-against-fine-tuned comparison means something only with pretrained trunks.
"""

config = "../synthetic_vit_small.py"

axes = {
    "model.backbone.freeze": ["backbone", "none"],
    "train.seed": [0, 1],
}

overrides = [
    "train.max_iter=80",
    "train.eval_period=0",  # evaluated once, at the end
    "train.checkpoint_period=40",
]
