"""astrodet: which vision foundation model for astronomical images, and how far it gets you.

Subpackages follow Detectron2's split: ``zoo`` (pretrained trunks), ``data``, ``modeling``,
``config``, ``engine``, ``evaluation``; ``visualize`` draws images, boxes and predictions.
"""

__version__ = "0.1.0"
