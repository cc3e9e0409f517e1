"""Radio Galaxy Zoo: 132 px PNG cutouts (already stretched) resized to 224 px."""

from astrodet.utils import datasets_root

from ._coco import coco_dataloader

dataloader = coco_dataloader(
    folder=datasets_root() / "rgz", name="rgz", image_size=224, stretch=None
)

# Training images of the RGZ DR1 split used by the paper (ClaRAN's trainD1: 6141 images);
# 100 epochs at batch 16 = ceil(100 * 6141 / 16) = 38382 iterations.
NUM_TRAIN_IMAGES = 6141
