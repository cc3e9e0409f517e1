"""The simulated MGCLS-like sky (``astrodet.data.synthetic``, kind ``sky``): 256 px
float fields shown at their native size, read as COCO like every other data set.

Left at their defaults, ``dataloader.{train,test}.dataset.json_file`` point at
``datasets_root()/synthetic/sky/{train,test}/annotations.json``, generated there on first
use; pointed at another COCO set (with ``.image_root``), the same config trains on that.
"""

from astrodet.data.synthetic import load_synthetic_coco
from astrodet.utils import datasets_root

from ._coco import coco_dataloader

dataloader = coco_dataloader(
    folder=datasets_root() / "synthetic" / "sky",
    name=None,  # classes from the json: any COCO set can take the simulated sky's place
    image_size=256,
    stretch="zscale",
    loader=load_synthetic_coco,
)
dataloader["train"].total_batch_size = 4
# loading and stretching a 256 px field takes milliseconds: worker processes would only take
# CPU time from the model step on a small machine
dataloader["train"].num_workers = 0
dataloader["test"].num_workers = 0
