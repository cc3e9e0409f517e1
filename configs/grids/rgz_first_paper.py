"""The paper's Radio Galaxy Zoo detection study (Figure 4, RGZ panel) on real FIRST pixels
with Radio Galaxy Zoo consensus as truth (``rgz_first_det``): the six backbones (MAE, DINO,
DINOv2, MSN ViT-B + ViTDet pyramid; ResNet-50/18 + FPN), each frozen and fine-tuned, at
10/30/50/100 % of the training labels, three seeds (run order and label subset): 144 runs.

    tools/sweep.py --grid configs/grids/rgz_first_paper.py --output output/sweeps/rgz_first --dry-run
    tools/sweep.py --grid configs/grids/rgz_first_paper.py --output output/sweeps/rgz_first \\
        --executor slurm --partition gpu --gpus-per-node 1
    tools/report.py output/sweeps/rgz_first --output output/reports/rgz_first

As ``rgz_paper.py`` but with the ``rgz_first_*`` configs; paths are relative to this file.
"""

config_files = [
    "../rgz_first_mae_vitdet.py",
    "../rgz_first_dino_vitdet.py",
    "../rgz_first_dinov2_vitdet.py",
    "../rgz_first_msn_vitdet.py",
    "../rgz_first_r50_fpn.py",
    "../rgz_first_r18_fpn.py",
]

axes = {
    "config": config_files,
    "model.backbone.freeze": ["backbone", "none"],
    "dataloader.train.fraction": [0.1, 0.3, 0.5, 1.0],
    # the seed of the run and of the label subset, moved together
    ("train.seed", "dataloader.train.seed"): [(0, 0), (1, 1), (2, 2)],
}
names = {"dataloader.train.seed": "subset"}

# one GPU per run; --gpus-per-node 4 trains each point with DDP over four
slurm = dict(nodes=1, gpus_per_node=1, cpus_per_task=8, timeout_min=12 * 60)
