"""MGCLS compact sources: 256 px cutouts (zscale) shown to the model at 512 px, so that a
compact source covers about one 16x16 ViT patch."""

from astrodet.utils import datasets_root

from ._coco import coco_dataloader

dataloader = coco_dataloader(
    folder=datasets_root() / "mgcls", name="mgcls", image_size=512, stretch="zscale"
)

# Training cutouts in the MGCLS set: 100 epochs at batch 16 = ceil(100 * N / 16) iterations.
# The experiment configs derive train.max_iter from it; with another set size override
# train.max_iter (and eval/checkpoint periods) on the command line.
NUM_TRAIN_IMAGES = 1000
