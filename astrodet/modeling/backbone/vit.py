"""A plain ViT trunk with ViTDet's simple feature pyramid (Li et al. 2022).

The trunk's stride-16 patch tokens, computed at the training size, are turned into a
pyramid of strides 4, 8, 16, 32 by transposed convolutions and max pooling, plus a
max-pooled stride-64 level, named ``p2`` ... ``p6`` as in Detectron2.

* Patch size: trunks with another patch size (DINOv2's 14) get their patch-embedding
  kernel resampled to 16 (``timm.layers.resample_patch_embed``) and a stride-16 conv, so
  every trunk gives the same pyramid strides.
* Position embedding: :func:`build_vit_backbone` builds a zoo trunk with its grid already at
  ``image_size / 16`` (``img_size = grid * native patch``), so a checkpoint's embedding is
  resampled once, on loading (DINOv2: 37x37 straight to 32x32 at 512 px). Other grids
  (inputs padded to a multiple of 32, non-square images) are resampled on the fly.

Two token layouts, chosen by ``window_size``:

* ``window_size > 0``, ViTDet's (Detectron2's ``ViT``): no class or register token in the
  blocks (the embedding's class position is dropped, the tokens removed from the trunk);
  the tokens form a B x H x W x C map; blocks listed in ``window_block_indexes`` attend
  within non-overlapping ``window_size`` windows (the map zero-padded to a multiple of the
  window and cropped back after), the others globally; with ``use_rel_pos`` every block adds
  decomposed relative position biases (tables of new parameters ``blocks.N.attn.rel_pos_h``
  / ``rel_pos_w``, starting at zero: no pretrained checkpoint has them). There is no final
  norm: Detectron2's detection ViT has none, its pyramid normalises every level with its
  own LayerNorms, and the pretrained ``norm`` is removed from the trunk (an unused parameter
  would also stall DistributedDataParallel).
* ``window_size=0``, the pretraining layout: every block global, the class (and register)
  tokens go through the blocks as in pretraining and are dropped from the output, and the
  trunk's final norm is applied to the patch tokens.

The blocks stay timm's (their weights, LayerScale and MLP); only their attention is replaced
by :class:`~astrodet.modeling.backbone.attention.WindowedAttention`, which takes over the
original projections. ``drop_path_rate`` (stochastic depth rising linearly to that rate in
the last block) is installed only when the trunk is fine-tuned (``freeze="none"``): a frozen
trunk stays a fixed function, in training as in evaluation. With ``freeze="backbone"`` the
relative position tables are frozen too, at zero.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import OrderedDict
from typing import Any

import torch
from timm.layers import DropPath, LayerNorm2d, resample_abs_pos_embed, resample_patch_embed
from torch import nn

from .attention import WindowedAttention
from .common import TrunkBackbone, check_freeze

logger = logging.getLogger(__name__)

__all__ = ["SimpleFeaturePyramid", "ViTBackbone", "build_vit_backbone"]

PATCH = 16


class SimpleFeaturePyramid(nn.Module):
    """ViTDet's pyramid from one stride-16 map.

    Args:
        in_channels: channels of the input map (the ViT width).
        out_channels: channels of every output level.
        scale_factors: one level per factor; 4 (two 2x transposed convs with LayerNorm and
            GELU between), 2 (one transposed conv), 1 (identity), 0.5 (2x2 max pool). Each
            level then has a 1x1 and a 3x3 conv, each followed by a channels-first LayerNorm.
        in_stride: stride of the input map.
        top_block: add a level at twice the coarsest stride (1x1 max pool with stride 2).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int = 256,
        scale_factors: tuple[float, ...] = (4.0, 2.0, 1.0, 0.5),
        in_stride: int = PATCH,
        top_block: bool = True,
    ) -> None:
        super().__init__()
        dim = in_channels
        self.stages = nn.ModuleList()
        strides = []
        for scale in scale_factors:
            scale = float(scale)
            if scale == 4.0:
                layers = [
                    nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2),
                    LayerNorm2d(dim // 2),
                    nn.GELU(),
                    nn.ConvTranspose2d(dim // 2, dim // 4, kernel_size=2, stride=2),
                ]
                level_dim = dim // 4
            elif scale == 2.0:
                layers = [nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2)]
                level_dim = dim // 2
            elif scale == 1.0:
                layers = []
                level_dim = dim
            elif scale == 0.5:
                layers = [nn.MaxPool2d(kernel_size=2, stride=2)]
                level_dim = dim
            else:
                raise ValueError(
                    f"scale factor {scale} is not supported; use some of 4.0, 2.0, 1.0, 0.5"
                )
            layers += [
                nn.Conv2d(level_dim, out_channels, kernel_size=1, bias=False),
                LayerNorm2d(out_channels),
                nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
                LayerNorm2d(out_channels),
            ]
            self.stages.append(nn.Sequential(*layers))
            strides.append(int(in_stride / scale))
        order = sorted(range(len(strides)), key=lambda i: strides[i])
        if order != list(range(len(strides))):
            raise ValueError(f"scale_factors must be decreasing, got {tuple(scale_factors)}")
        self.top_block = top_block
        if top_block:
            strides.append(strides[-1] * 2)
        self.strides = strides
        self.names = [f"p{int(math.log2(s))}" for s in strides]
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        outs = [stage(x) for stage in self.stages]
        if self.top_block:
            outs.append(nn.functional.max_pool2d(outs[-1], kernel_size=1, stride=2))
        return OrderedDict(zip(self.names, outs))


class ViTBackbone(TrunkBackbone):
    """A zoo ViT trunk plus :class:`SimpleFeaturePyramid`; see :func:`build_vit_backbone`.

    Attributes:
        out_channels: channels of every level.
        out_feature_names: ``["p2", ..., "p6"]`` (finest first, the last one max-pooled).
        out_feature_strides: ``{"p2": 4, ..., "p6": 64}``.
        window_size: the attention window (0: the pretraining layout, global attention).
        window_block_indexes: the blocks attending within windows.
        use_rel_pos: whether the blocks add decomposed relative position biases.
        new_parameters: names (relative to this module) of the trunk parameters the
            adaptation created and no pretrained checkpoint holds (the relative position
            tables).
    """

    def __init__(
        self,
        trunk: nn.Module,
        *,
        freeze: str = "backbone",
        image_size: int = 512,
        out_channels: int = 256,
        scale_factors: tuple[float, ...] = (4.0, 2.0, 1.0, 0.5),
        window_size: int = 0,
        window_block_indexes: tuple[int, ...] | None = None,
        use_rel_pos: bool = False,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__(trunk, freeze)
        vit = trunk.model
        if not hasattr(vit, "blocks") or not hasattr(vit, "patch_embed"):
            raise ValueError(
                f"trunk {trunk.info.name!r} is not a ViT (family {trunk.info.family!r}); "
                "use build_resnet_fpn_backbone for ResNets"
            )
        if image_size % PATCH:
            raise ValueError(f"image_size={image_size} must be a multiple of {PATCH}")
        depth = len(vit.blocks)
        self.window_size, self.window_block_indexes = _check_windows(
            window_size, window_block_indexes, depth
        )
        if use_rel_pos and not self.window_size:
            raise ValueError(
                "use_rel_pos=True needs ViTDet's token layout (window_size > 0); "
                "window_size=0 keeps the pretraining layout with its class token"
            )
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
        self.use_rel_pos = bool(use_rel_pos)
        self._adapt_trunk(vit, image_size)
        if self.window_size:
            self._to_vitdet_layout(vit, image_size)
        self._set_drop_path(vit, float(drop_path_rate))
        self.new_parameters = [
            f"trunk.model.{name}"
            for name, _ in vit.named_parameters()
            if name.endswith((".attn.rel_pos_h", ".attn.rel_pos_w"))
        ]
        if self.new_parameters:
            logger.info(
                "relative position tables start at zero (no pretrained checkpoint has them), "
                "%d new parameters: %s",
                len(self.new_parameters),
                ", ".join(self.new_parameters),
            )
        # What the trunk now is: a stride-16 network for image_size inputs.
        trunk.info = dataclasses.replace(trunk.info, input_size=image_size, patch_size=PATCH)
        self.trunk_info = trunk.info
        self.image_size = image_size
        self.pyramid = SimpleFeaturePyramid(
            in_channels=vit.embed_dim,
            out_channels=out_channels,
            scale_factors=tuple(scale_factors),
            in_stride=PATCH,
        )
        self.out_channels = out_channels
        self.out_feature_names = list(self.pyramid.names)
        self.out_feature_strides = dict(zip(self.pyramid.names, self.pyramid.strides))
        self.num_layers = depth
        self._apply_freeze()

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, window_size={self.window_size}, "
            f"window_block_indexes={self.window_block_indexes}, use_rel_pos={self.use_rel_pos}"
        )

    @staticmethod
    def _adapt_trunk(vit: nn.Module, image_size: int) -> None:
        proj = vit.patch_embed.proj
        if tuple(proj.kernel_size) != (PATCH, PATCH):
            # DINOv2 (patch 14): resample the kernel so the pyramid strides are 4..64.
            logger.info("resampling patch embedding %s -> %d", tuple(proj.kernel_size), PATCH)
            new = nn.Conv2d(
                proj.in_channels,
                proj.out_channels,
                kernel_size=PATCH,
                stride=PATCH,
                bias=proj.bias is not None,
            )
            with torch.no_grad():
                new.weight.copy_(resample_patch_embed(proj.weight, [PATCH, PATCH]))
                if proj.bias is not None:
                    new.bias.copy_(proj.bias)
            vit.patch_embed.proj = new
            vit.patch_embed.patch_size = (PATCH, PATCH)
        grid = image_size // PATCH
        old_grid = tuple(int(g) for g in vit.patch_embed.grid_size)
        if vit.pos_embed is not None and old_grid != (grid, grid):
            # Only for a trunk built elsewhere: build_vit_backbone builds it at this grid.
            logger.info("resampling pos_embed from a %dx%d grid to %dx%d", *old_grid, grid, grid)
            with torch.no_grad():
                pos = resample_abs_pos_embed(
                    vit.pos_embed.data,
                    new_size=[grid, grid],
                    old_size=list(old_grid),
                    num_prefix_tokens=0 if vit.no_embed_class else vit.num_prefix_tokens,
                )
            vit.pos_embed = nn.Parameter(pos, requires_grad=vit.pos_embed.requires_grad)
        vit.patch_embed.img_size = (image_size, image_size)
        vit.patch_embed.grid_size = (grid, grid)
        vit.patch_embed.num_patches = grid * grid
        # Classifier parts are never used for detection; dropping them keeps every
        # remaining parameter in the loss (DDP needs that).
        for name in ("head", "fc_norm"):
            if sum(p.numel() for p in getattr(vit, name, nn.Identity()).parameters()):
                setattr(vit, name, nn.Identity())
        if getattr(vit, "attn_pool", None) is not None:
            vit.attn_pool = None

    def _to_vitdet_layout(self, vit: nn.Module, image_size: int) -> None:
        """Drop the prefix tokens and the final norm; window (and rel-pos) attention."""
        if vit.pos_embed is not None and not vit.no_embed_class and vit.num_prefix_tokens:
            pos = vit.pos_embed.data[:, vit.num_prefix_tokens :].clone()
            vit.pos_embed = nn.Parameter(pos, requires_grad=vit.pos_embed.requires_grad)
        for name in ("cls_token", "reg_token"):
            if getattr(vit, name, None) is not None:
                setattr(vit, name, None)
        vit.num_prefix_tokens = 0
        vit.num_reg_tokens = 0
        vit.has_class_token = False
        vit.no_embed_class = True
        vit.norm = nn.Identity()
        grid = image_size // PATCH
        for i, block in enumerate(vit.blocks):
            block.attn = WindowedAttention(
                block.attn,
                window_size=self.window_size if i in self.window_block_indexes else 0,
                use_rel_pos=self.use_rel_pos,
                rel_pos_size=(grid, grid),
            )

    def _set_drop_path(self, vit: nn.Module, rate: float) -> None:
        if rate <= 0.0:
            return
        if self.freeze != "none":
            logger.info("drop_path_rate=%s not used: the trunk is frozen", rate)
            return
        depth = len(vit.blocks)
        for i, block in enumerate(vit.blocks):
            # Stochastic depth rising linearly from 0 in the first block, as in timm/ViTDet.
            p = rate * i / max(depth - 1, 1)
            for name in ("drop_path1", "drop_path2"):
                if hasattr(block, name):
                    setattr(block, name, DropPath(p) if p > 0 else nn.Identity())

    def _tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        vit = self.trunk.model
        x = vit.patch_embed.proj(x)
        n, _, h, w = x.shape
        x = vit.patch_embed.norm(x.flatten(2).transpose(1, 2))
        prefix = []
        if getattr(vit, "cls_token", None) is not None:
            prefix.append(vit.cls_token.expand(n, -1, -1))
        if getattr(vit, "reg_token", None) is not None:
            prefix.append(vit.reg_token.expand(n, -1, -1))
        pos = vit.pos_embed
        if pos is not None:
            grid = vit.patch_embed.grid_size
            n_prefix = 0 if vit.no_embed_class else vit.num_prefix_tokens
            if (h, w) != tuple(grid):
                pos = resample_abs_pos_embed(
                    pos, new_size=[h, w], old_size=list(grid), num_prefix_tokens=n_prefix
                )
            if vit.no_embed_class:
                x = torch.cat([*prefix, x + pos], dim=1)
            else:
                x = torch.cat([*prefix, x], dim=1) + pos
        else:
            x = torch.cat([*prefix, x], dim=1)
        return x, h, w

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """Args:
            images: N x 3 x H x W, normalised with the trunk's mean/std; H, W multiples of 16.

        Returns:
            ``OrderedDict`` p2..p6 of N x out_channels x H/stride x W/stride maps.
        """
        if images.shape[-2] % PATCH or images.shape[-1] % PATCH:
            raise ValueError(
                f"ViT backbone input {tuple(images.shape[-2:])} is not a multiple of {PATCH}"
            )
        vit = self.trunk.model
        x, h, w = self._tokens(images)
        x = vit.pos_drop(x)
        x = vit.norm_pre(x)
        if self.window_size:
            # ViTDet: the blocks see the B x H x W x C map; no final norm.
            x = vit.blocks(x.reshape(x.shape[0], h, w, -1))
            x = x.permute(0, 3, 1, 2)
        else:
            x = vit.blocks(x)
            x = vit.norm(x)
            x = x[:, vit.num_prefix_tokens :]
            x = x.transpose(1, 2).reshape(x.shape[0], -1, h, w)
        return self.pyramid(x.contiguous())

    def layer_id(self, name: str) -> int | None:
        """Depth of a trunk parameter for layer-wise lr decay: 0 for the embeddings,
        ``i + 1`` for block ``i``, ``num_layers + 1`` for the rest; None outside the trunk.

        Args:
            name: a parameter name relative to this module (``"trunk.model.blocks.3.mlp..."``).
        """
        if not name.startswith("trunk."):
            return None
        local = name[len("trunk.model.") :]
        if local.startswith(("patch_embed.", "pos_embed", "cls_token", "reg_token")):
            return 0
        if local.startswith("blocks."):
            return int(local.split(".")[1]) + 1
        return self.num_layers + 1


def vitdet_window_blocks(depth: int) -> tuple[int, ...]:
    """ViTDet's windowed blocks: all but the last of each quarter of the depth (ViT-B, depth
    12: all but 2, 5, 8, 11; ViT-L, 24: all but 5, 11, 17, 23)."""
    step = max(depth // 4, 1)
    return tuple(i for i in range(depth) if (i + 1) % step)


def _check_windows(
    window_size: int, window_block_indexes: tuple[int, ...] | None, depth: int
) -> tuple[int, tuple[int, ...]]:
    window_size = int(window_size)
    if window_size < 0:
        raise ValueError(f"window_size must be >= 0 (0: global attention), got {window_size}")
    if not window_size:
        if window_block_indexes:
            logger.info(
                "window_block_indexes=%s not used: window_size=0 (global attention in every block)",
                tuple(window_block_indexes),
            )
        return 0, ()
    if window_block_indexes is None:
        return window_size, vitdet_window_blocks(depth)
    indexes = tuple(sorted({int(i) for i in window_block_indexes}))
    bad = [i for i in indexes if not 0 <= i < depth]
    if bad:
        raise ValueError(
            f"window_block_indexes {bad} out of range for a trunk of depth {depth} "
            f"(blocks 0..{depth - 1})"
        )
    return window_size, indexes


def build_vit_backbone(
    *,
    trunk: str | nn.Module = "dino",
    weights: str = "auto",
    freeze: str = "backbone",
    image_size: int = 512,
    out_channels: int = 256,
    scale_factors: tuple[float, ...] = (4.0, 2.0, 1.0, 0.5),
    window_size: int = 0,
    window_block_indexes: tuple[int, ...] | None = None,
    use_rel_pos: bool = False,
    drop_path_rate: float = 0.0,
    trunk_kwargs: dict[str, Any] | None = None,
) -> ViTBackbone:
    """A ViTDet backbone on a zoo ViT.

    Args:
        trunk: a zoo name (``"mae"``, ``"dino"``, ``"dinov2"``, ``"msn"``, ``"timm:<name>"``)
            or an already built :class:`astrodet.zoo.Trunk`.
        weights: ``"auto"``, ``"hub"``, ``"none"`` (random) or a checkpoint path (see
            :func:`astrodet.zoo.build_trunk`); loaded strictly. The relative position tables
            are the only parameters no checkpoint has: they start at zero and are named in
            the log.
        freeze: ``"backbone"`` (trunk fixed, in eval mode; only the pyramid and heads
            train) or ``"none"`` (fine-tune everything).
        image_size: the training input size (a multiple of 16); a named trunk is built with
            its position-embedding grid at ``image_size / 16`` (any ``img_size`` in
            ``trunk_kwargs`` is replaced), so checkpoints are resampled once.
        out_channels: channels of every pyramid level.
        scale_factors: pyramid levels relative to stride 16.
        window_size: attention window in tokens (ViTDet: 14); 0 keeps the pretraining
            layout (class token, global attention everywhere, final norm; the window blocks
            are then not used, and ``use_rel_pos`` must be False).
        window_block_indexes: the blocks that attend within windows, the others attend
            globally (Detectron2's meaning; ViTDet-B: all but 2, 5, 8, 11). None: ViTDet's
            pattern, all but the last block of each quarter of the depth.
        use_rel_pos: decomposed relative position biases in every block (ViTDet: True);
            needs ``window_size > 0``.
        drop_path_rate: stochastic depth of the last block, rising linearly from 0 (ViTDet:
            0.1); only when fine-tuning (``freeze="none"``), only in training.
        trunk_kwargs: architecture arguments for the trunk (e.g. ``embed_dim``, ``depth``,
            ``num_heads`` for small models trained from scratch).
    """
    check_freeze(freeze)
    if image_size % PATCH:
        raise ValueError(f"image_size={image_size} must be a multiple of {PATCH}")
    if isinstance(trunk, str):
        from astrodet.zoo import build_trunk, get_model_info

        kwargs = dict(trunk_kwargs or {})
        info = get_model_info(trunk)
        if info.family == "vit":
            # Build the grid the detector runs at: the checkpoint's position embedding is
            # resampled once (to grid x grid at the native patch), not twice.
            native = int(kwargs.get("patch_size") or info.patch_size or PATCH)
            img_size = image_size // PATCH * native
            if "img_size" in kwargs and kwargs["img_size"] != img_size:
                logger.info(
                    "trunk img_size %s replaced by %d (the %dx%d grid of image_size=%d)",
                    kwargs["img_size"],
                    img_size,
                    image_size // PATCH,
                    image_size // PATCH,
                    image_size,
                )
            kwargs["img_size"] = img_size
        trunk = build_trunk(trunk, weights=weights, **kwargs)
    return ViTBackbone(
        trunk,
        freeze=freeze,
        image_size=image_size,
        out_channels=out_channels,
        scale_factors=tuple(scale_factors),
        window_size=window_size,
        window_block_indexes=None if window_block_indexes is None else tuple(window_block_indexes),
        use_rel_pos=use_rel_pos,
        drop_path_rate=drop_path_rate,
    )
