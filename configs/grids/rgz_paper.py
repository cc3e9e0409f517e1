"""The paper's Radio Galaxy Zoo detection study (Figure 4, RGZ panel): the six backbones
(MAE, DINO, DINOv2, MSN ViT-B + ViTDet pyramid; ResNet-50/18 + FPN), each frozen and
fine-tuned, at 10/30/50/100 % of the training labels, three seeds (run order and label
subset): 144 runs.

    tools/sweep.py --grid configs/grids/rgz_paper.py --output output/sweeps/rgz --dry-run
    tools/sweep.py --grid configs/grids/rgz_paper.py --output output/sweeps/rgz \\
        --executor slurm --partition gpu --gpus-per-node 1
    tools/report.py output/sweeps/rgz --output output/reports/rgz

The backbones are the config files themselves (the ResNets have their own model), so the
axis is ``config``; paths are relative to this file.
"""

config_files = [
    "../rgz_mae_vitdet.py",
    "../rgz_dino_vitdet.py",
    "../rgz_dinov2_vitdet.py",
    "../rgz_msn_vitdet.py",
    "../rgz_r50_fpn.py",
    "../rgz_r18_fpn.py",
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
