"""Whole survey images as radio astronomers use them: FITS fields in, source catalogues out.

Fields are read tile by tile (:mod:`.field`), searched by a finder (:mod:`.finders`),
measured (:mod:`.measure`), written as catalogues (:mod:`.catalogue`) and compared with a
reference catalogue (:mod:`.crossmatch`); sources of known flux are injected into them
(:mod:`.inject`) to score finders on truth (:mod:`.recovery`).
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
from .inject import inject_field, inject_sources, invert_field

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
    "inject_field",
    "inject_sources",
    "invert_field",
    "new_catalogue",
    "open_field",
    "read_catalogue",
    "write_catalogue",
]
