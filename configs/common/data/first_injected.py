"""Real FIRST noise with injected sources of known shape (``astrodet.sky.truth_set``): the
same fields, split, 48 px tiles, ``snr`` stretch and 4x enlargement as ``first_pybdsf``, but
the labels are the injected sources themselves, over the fields times -1 (their own sources
become holes, so none stays in the image unlabelled).

Left at their defaults, ``dataloader.{train,test}.dataset.json_file`` point at
``datasets_root()/first_injected/{train,test}/annotations.json``, built there on first use
from ``$ASTRODET_REAL_DATA`` in a few seconds. Another background or density is another
folder: ``astrodet.sky.truth_set.build_first_injected(root, background="noise")``, then
``dataloader.train.dataset.json_file=ROOT/train/annotations.json`` and
``dataloader.train.dataset.image_root=ROOT/train/images``.
"""

from astrodet.sky.labels import FIRST_BEAM, FIRST_PIXEL_SCALE, FIRST_TILE
from astrodet.sky.truth_set import first_injected_root, load_first_injected_coco

from ._coco import coco_dataloader

dataloader = coco_dataloader(
    folder=first_injected_root(),
    name="first_injected",
    image_size=4 * FIRST_TILE,
    stretch="snr",
    loader=load_first_injected_coco,
)
dataloader["train"].total_batch_size = 8
# the labels are the injected pixels: turning the sky keeps them true, a blur or a contrast
# change would not (the S/N a label was drawn at is a property of these pixels)
dataloader["train"].augment = "geometric"
dataloader["train"].num_workers = 0
dataloader["test"].num_workers = 0
dataloader["beam_pixels"] = FIRST_BEAM[0] / FIRST_PIXEL_SCALE
dataloader["tile_size"] = FIRST_TILE
dataloader["tile_overlap"] = FIRST_TILE // 3
