"""Radio Galaxy Zoo: 132 px PNG cutouts (already stretched) resized to 224 px."""

from astrodet.utils import datasets_root

from ._coco import coco_dataloader

dataloader = coco_dataloader(
    folder=datasets_root() / "rgz", name="rgz", image_size=224, stretch=None
)

# The paper's RGZ DR1 training split (ClaRAN's trainD1) holds 6141 images: 100 epochs at
# batch 16 are 38382 iterations, which train.epochs derives from the set as loaded.
