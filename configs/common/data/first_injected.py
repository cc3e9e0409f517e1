"""Real FIRST noise with injected sources of known shape (``astrodet.sky.truth_set``): the
same fields, split, ``snr`` stretch and 192 px model input as ``first_pybdsf``, but the
labels are the injected sources themselves, over the fields times -1 (their own sources
become holes, so none stays in the image unlabelled).

``first_injected_dataloader(tile)`` cuts the fields into ``tile`` px tiles (training tiles
overlapping by half), each enlarged to 192 px for the model; ``dataloader`` is the 48 px one
(4x, as ``first_pybdsf``). Left at their defaults, ``dataloader.{train,test}.dataset.json_file``
point at :func:`~astrodet.sky.truth_set.first_injected_root` of the tile (``first_injected``
for 48 px, ``first_injected_t<tile>`` otherwise), built there on first use from
``$ASTRODET_REAL_DATA`` in a few seconds. Another background or density is another folder:
``astrodet.sky.truth_set.build_first_injected(root, background="noise")``, then
``dataloader.train.dataset.json_file=ROOT/train/annotations.json`` and
``dataloader.train.dataset.image_root=ROOT/train/images``.
"""

from astrodet.sky.labels import FIRST_BEAM, FIRST_PIXEL_SCALE, FIRST_TILE
from astrodet.sky.truth_set import first_injected_root, load_first_injected_coco

from ._coco import coco_dataloader

#: the model's input side: a 48 px FIRST tile enlarged 4x (a beam of 3 px becomes 12)
IMAGE_SIZE = 4 * FIRST_TILE


def first_injected_dataloader(tile: int = FIRST_TILE) -> dict:
    """The injected FIRST set in ``tile`` px tiles, shown to the model at ``IMAGE_SIZE``."""
    dataloader = coco_dataloader(
        folder=first_injected_root(tile),
        name="first_injected",
        image_size=IMAGE_SIZE,
        stretch="snr",
        loader=load_first_injected_coco,
    )
    for split in ("train", "test"):
        dataloader[split].dataset.tile = tile
    dataloader["train"].total_batch_size = 8
    # the labels are the injected pixels: turning the sky keeps them true, a blur or a
    # contrast change would not (the S/N a label was drawn at is a property of these pixels)
    dataloader["train"].augment = "geometric"
    dataloader["train"].num_workers = 0
    dataloader["test"].num_workers = 0
    dataloader["beam_pixels"] = FIRST_BEAM[0] / FIRST_PIXEL_SCALE
    dataloader["tile_size"] = tile
    # the finder's tiles overlap by 16 px whatever their size: a source up to 16 px (5 beams)
    # is held whole by one tile; the overlap is a property of the sources, not of the tiles
    dataloader["tile_overlap"] = FIRST_TILE // 3
    return dataloader


dataloader = first_injected_dataloader(FIRST_TILE)
