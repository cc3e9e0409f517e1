"""Radio Galaxy Zoo consensus on real FIRST pixels (``astrodet.data.rgz_first``): 100 px
(3') float tiles at FIRST's 1.8"/px with one box per RGZ source around all its components,
the six RGZ classes, shown to the model in units of their noise (``snr`` stretch) and
enlarged 4x to 400 px, so that a 16 px ViT patch covers 1.3 beams, as for ``first_pybdsf``.

Left at their defaults, ``dataloader.{train,test}.dataset.json_file`` point at
``datasets_root()/rgz_first_det/{train,test}/annotations.json``, built there on first use
from ``$ASTRODET_REAL_DATA``; pointed at another COCO set (with ``.image_root``) the same
config trains on that.

``dataloader.train.dataset.training`` picks the training images: ``"real"`` (default),
``"sim"`` (simulated radio galaxies in real FIRST noise with exact component grouping,
``rgz_first_sim_train``, :mod:`astrodet.data.rgz_sim`, built on first use) or ``"both"``.

The set is registered as ``rgz_first_det``: ``rgz_first`` is the classification set's name.

``dataloader.beam_pixels`` is the beam FWHM in pixels of the training images: the source
finder resamples other fields to it. ``dataloader.tile_size`` is the side of the tiles the
finder cuts a field into (the training images' size), ``dataloader.tile_overlap`` their
overlap (half a tile, 90": a radio galaxy up to that size is whole in one of them).
"""

from astrodet.config import LazyCall as L
from astrodet.data.rgz_first import DATASET, RGZ_FIRST_TILE, load_rgz_first_coco, rgz_first_root
from astrodet.data.rgz_sim import load_rgz_first_training

from ._coco import coco_dataloader

dataloader = coco_dataloader(
    folder=rgz_first_root(),
    name=DATASET,
    image_size=4 * RGZ_FIRST_TILE,
    stretch="snr",
    loader=load_rgz_first_coco,
)
# the training images: the real consensus split, the simulated radio galaxies
# (astrodet.data.rgz_sim, rgz_first_sim_train) or both: dataloader.train.dataset.training
dataloader["train"].dataset = L(load_rgz_first_training)(
    json_file=dataloader["train"].dataset.json_file,
    image_root=dataloader["train"].dataset.image_root,
    dataset_name=dataloader["train"].dataset.dataset_name,
    training="real",
)
dataloader["train"].total_batch_size = 8
# the boxes follow these very pixels' emission: turning the sky keeps them true, blurring
# or a contrast change would move the emission the boxes were drawn from
dataloader["train"].augment = "geometric"
# a 100 px tile loads in well under a millisecond: workers would only take CPU from the model
dataloader["train"].num_workers = 0
dataloader["test"].num_workers = 0
dataloader["beam_pixels"] = 5.4 / 1.8
dataloader["tile_size"] = RGZ_FIRST_TILE
dataloader["tile_overlap"] = RGZ_FIRST_TILE // 2
