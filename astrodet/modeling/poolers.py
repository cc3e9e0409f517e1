"""RoIAlign over pyramid levels with Detectron2's ``ROIAlignV2`` sampling.

torchvision's ``MultiScaleRoIAlign`` pools with ``aligned=False``: box corners are taken
as feature-cell centres, so the pooled window is shifted by half a cell (2 px at stride 4,
a quarter of an 8 px source). ``aligned=True`` shifts boxes by -0.5 cell so that cell ``i``
covers ``[i, i + 1)``, as Detectron2's ``ROIAlignV2``; ``sampling_ratio=0`` samples each bin
adaptively (``ceil(bin size)`` points per side), also Detectron2's default.
"""

from __future__ import annotations

import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align
from torchvision.ops.poolers import _convert_to_roi_format, _filter_input, _setup_scales

__all__ = ["AlignedMultiScaleRoIAlign"]


class AlignedMultiScaleRoIAlign(MultiScaleRoIAlign):
    """``MultiScaleRoIAlign`` with a choice of ``aligned``; boxes are assigned to levels by
    torchvision's ``LevelMapper`` (Detectron2's rule: canonical box 224 px at level 4).

    Args:
        featmap_names: the levels to pool from, finest first.
        output_size: pooled size.
        sampling_ratio: sampling points per bin side; 0 for adaptive.
        aligned: half-pixel-corrected box coordinates (Detectron2's ``ROIAlignV2``).
        canonical_scale, canonical_level: the level-assignment rule.
    """

    def __init__(
        self,
        featmap_names: list[str],
        output_size: int | tuple[int, int],
        sampling_ratio: int,
        *,
        aligned: bool = True,
        canonical_scale: int = 224,
        canonical_level: int = 4,
    ) -> None:
        super().__init__(
            featmap_names,
            output_size,
            sampling_ratio,
            canonical_scale=canonical_scale,
            canonical_level=canonical_level,
        )
        self.aligned = bool(aligned)

    def forward(
        self,
        x: dict[str, torch.Tensor],
        boxes: list[torch.Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> torch.Tensor:
        """Args:
            x: the feature maps by name.
            boxes: per image, N x 4 XYXY boxes in input pixels.
            image_shapes: per image, the (height, width) the boxes refer to.

        Returns:
            sum(N) x C x output_size, in the order of the boxes.
        """
        features = _filter_input(x, self.featmap_names)
        if self.scales is None or self.map_levels is None:
            self.scales, self.map_levels = _setup_scales(
                features, image_shapes, self.canonical_scale, self.canonical_level
            )
        rois = _convert_to_roi_format(boxes)

        def pool(feature: torch.Tensor, level_rois: torch.Tensor, scale: float) -> torch.Tensor:
            return roi_align(
                feature,
                level_rois,
                output_size=self.output_size,
                spatial_scale=scale,
                sampling_ratio=self.sampling_ratio,
                aligned=self.aligned,
            )

        if len(features) == 1:
            return pool(features[0], rois, self.scales[0])
        levels = self.map_levels(boxes)
        result = features[0].new_zeros((len(rois), features[0].shape[1], *self.output_size))
        for level, (feature, scale) in enumerate(zip(features, self.scales)):
            index = torch.where(levels == level)[0]
            result[index] = pool(feature, rois[index], scale).to(result.dtype)
        return result

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, aligned={self.aligned})"
