"""Whole survey images as radio astronomers use them: FITS fields in, source catalogues out.

Fields are read tile by tile (:mod:`.field`), searched by a finder (:mod:`.finders`),
measured (:mod:`.measure`), written as catalogues (:mod:`.catalogue`) and compared with a
reference catalogue (:mod:`.crossmatch`).
"""

from .catalogue import (
    COLUMNS,
    UNITS,
    CatalogueError,
    catalogue_to_coco,
    coco_to_catalogue,
    new_catalogue,
    read_catalogue,
    write_catalogue,
)
from .field import Beam, Field, FieldError, Tile, open_field

__all__ = [
    "COLUMNS",
    "UNITS",
    "Beam",
    "CatalogueError",
    "Field",
    "FieldError",
    "Tile",
    "catalogue_to_coco",
    "coco_to_catalogue",
    "new_catalogue",
    "open_field",
    "read_catalogue",
    "write_catalogue",
]
