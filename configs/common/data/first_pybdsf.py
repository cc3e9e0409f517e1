"""Real FIRST images labelled by PyBDSF (``astrodet.sky.labels``): 48 px float tiles in
Jy/beam at FIRST's 1.8"/px (5.4" beam: 3 px; training tiles overlapping by half), shown to
the model in units of their noise (``snr`` stretch), enlarged 4x to 192 px so that a 16 px
ViT patch covers 1.3 beams and a compact source spans a few pyramid cells.

Left at their defaults, ``dataloader.{train,test}.dataset.json_file`` point at
``datasets_root()/first_pybdsf/{train,test}/annotations.json``, built there on first use
from ``$ASTRODET_REAL_DATA`` (PyBDSF runs cached under ``$ASTRODET_CACHE``); pointed at
another COCO set (with ``.image_root``), e.g. one from
``datasets/prepare_mgcls.py --catalog pybdsf``, the same config trains on that.

``dataloader.beam_pixels`` is the beam FWHM in pixels of the training images: the source
finder resamples other fields to it. ``dataloader.tile_size`` is the side of the tiles the
finder cuts a field into (the training images' size), ``dataloader.tile_overlap`` their
overlap (a third of a tile, 29": a source up to that size is whole in one of them).
"""

from astrodet.sky.labels import FIRST_BEAM, FIRST_PIXEL_SCALE, FIRST_TILE, load_first_pybdsf_coco
from astrodet.utils import datasets_root

from ._coco import coco_dataloader

dataloader = coco_dataloader(
    folder=datasets_root() / "first_pybdsf",
    name="first_pybdsf",
    image_size=4 * FIRST_TILE,
    stretch="snr",
    loader=load_first_pybdsf_coco,
)
dataloader["train"].total_batch_size = 8
# the labels are PyBDSF's reading of these very pixels: blurring (a coarser beam) or a
# contrast change (another noise level) would contradict them; turning the sky does not
dataloader["train"].augment = "geometric"
# a 48 px tile loads and stretches in well under a millisecond: worker processes would only take
# CPU time from the model step on a small machine
dataloader["train"].num_workers = 0
dataloader["test"].num_workers = 0
dataloader["beam_pixels"] = FIRST_BEAM[0] / FIRST_PIXEL_SCALE
dataloader["tile_size"] = FIRST_TILE
dataloader["tile_overlap"] = FIRST_TILE // 3
