"""MGCLS compact sources: 256 px cutouts (zscale) shown to the model at 512 px, so that a
compact source covers about one 16x16 ViT patch."""

from astrodet.utils import datasets_root

from ._coco import coco_dataloader

dataloader = coco_dataloader(
    folder=datasets_root() / "mgcls", name="mgcls", image_size=512, stretch="zscale"
)
