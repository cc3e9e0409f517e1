"""Box conventions, named as in Detectron2 so its users feel at home."""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class BoxMode(IntEnum):
    """How a box's four numbers are meant. Inside the package boxes are XYXY_ABS;
    COCO json is XYWH_ABS."""

    XYXY_ABS = 0
    XYWH_ABS = 1

    @staticmethod
    def convert(box, from_mode: BoxMode, to_mode: BoxMode):
        """Convert one box (sequence of 4) or an (N, 4) array between modes.

        Args:
            box: a list/tuple of 4 numbers or an array of shape (N, 4).
            from_mode: the mode of ``box``.
            to_mode: the wanted mode.
        """
        from_mode, to_mode = BoxMode(from_mode), BoxMode(to_mode)
        if from_mode == to_mode:
            return box
        single = not isinstance(box, np.ndarray)
        arr = np.asarray(box, dtype=np.float64).reshape(-1, 4).copy()
        if from_mode == BoxMode.XYWH_ABS and to_mode == BoxMode.XYXY_ABS:
            arr[:, 2:] += arr[:, :2]
        elif from_mode == BoxMode.XYXY_ABS and to_mode == BoxMode.XYWH_ABS:
            arr[:, 2:] -= arr[:, :2]
        if single:
            return type(box)(arr[0].tolist()) if isinstance(box, tuple | list) else arr[0]
        return arr.astype(box.dtype, copy=False)
