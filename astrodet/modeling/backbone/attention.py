"""ViTDet's attention on a 2-D token map: non-overlapping windows (the map zero-padded to a
multiple of the window) or the whole map, with optional decomposed relative position biases
(Li et al. 2022, after MViTv2).

:class:`WindowedAttention` takes over the projections of an existing timm ``Attention``
(``qkv``, ``q_norm``/``k_norm``, ``norm``, ``proj``, dropouts) by reference, so pretrained
weights keep their names (``blocks.N.attn.qkv.weight``) and only the relative position tables
(``blocks.N.attn.rel_pos_h`` / ``rel_pos_w``) are new. Its input and output are
``B x H x W x C`` maps, which timm's ``Block`` passes through its norms, LayerScale, drop path
and MLP unchanged (they act on the last dimension).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "WindowedAttention",
    "decomposed_rel_pos_bias",
    "rel_pos_lookup",
    "window_partition",
    "window_unpartition",
]


def window_partition(x: torch.Tensor, window_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Cut a map into non-overlapping square windows, zero-padding its bottom and right.

    Args:
        x: B x H x W x C.
        window_size: window side in tokens.

    Returns:
        ``(windows, (Hp, Wp))``: ``B * (Hp / ws) * (Wp / ws)`` x ws x ws x C windows, in
        row-major order per image, and the padded map size.
    """
    b, h, w, c = x.shape
    pad_h, pad_w = (-h) % window_size, (-w) % window_size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window_size, window_size, wp // window_size, window_size, c)
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, c)
    return windows, (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window_size: int, padded: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Inverse of :func:`window_partition`: reassemble the map and drop the padding.

    Args:
        windows: ``B * nWindows`` x ws x ws x C.
        window_size: window side in tokens.
        padded: ``(Hp, Wp)`` returned by :func:`window_partition`.
        size: ``(H, W)`` of the map before padding.

    Returns:
        B x H x W x C.
    """
    hp, wp = padded
    h, w = size
    rows, cols = hp // window_size, wp // window_size
    b = windows.shape[0] // (rows * cols)
    x = windows.reshape(b, rows, cols, window_size, window_size, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    if hp != h or wp != w:
        x = x[:, :h, :w].contiguous()
    return x


def rel_pos_lookup(table: torch.Tensor, size: int) -> torch.Tensor:
    """Relative position embeddings for every (query, key) pair along one axis of ``size``.

    Args:
        table: ``(2 * L - 1) x head_dim`` embeddings of the offsets ``-(L-1) .. L-1``; a table
            trained for another length ``L`` is linearly resampled to ``2 * size - 1`` rows
            (a global block run on a grid other than the one it was built for).
        size: tokens along the axis.

    Returns:
        size x size x head_dim; entry ``[i, j]`` is the embedding of offset ``i - j``.
    """
    length = 2 * size - 1
    if table.shape[0] != length:
        table = F.interpolate(table.T[None], size=length, mode="linear", align_corners=False)
        table = table[0].T
    coords = torch.arange(size, device=table.device)
    offsets = coords[:, None] - coords[None, :] + (size - 1)
    return table[offsets]


def decomposed_rel_pos_bias(
    q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """The attention bias of decomposed relative positions: for query ``(i, j)`` and key
    ``(k, l)``, ``q . Rh[i - k] + q . Rw[j - l]`` (with the unscaled query).

    Args:
        q: B x heads x (H * W) x head_dim queries, row-major over the H x W map.
        rel_pos_h, rel_pos_w: the tables of the vertical and horizontal offsets.
        size: ``(H, W)``.

    Returns:
        B x heads x (H * W) x (H * W), to add to the attention logits.
    """
    h, w = size
    b, heads, n, dim = q.shape
    rh = rel_pos_lookup(rel_pos_h, h).to(q.dtype)
    rw = rel_pos_lookup(rel_pos_w, w).to(q.dtype)
    grid_q = q.reshape(b, heads, h, w, dim)
    bias_h = torch.einsum("bnhwc,hkc->bnhwk", grid_q, rh)
    bias_w = torch.einsum("bnhwc,wlc->bnhwl", grid_q, rw)
    bias = bias_h[..., :, None] + bias_w[..., None, :]
    return bias.reshape(b, heads, n, n)


class WindowedAttention(nn.Module):
    """Multi-head self-attention over a ``B x H x W x C`` map, reusing a timm ``Attention``.

    Args:
        attn: the timm ``Attention`` whose modules (and so weights) are taken over.
        window_size: window side in tokens; 0 for global attention over the whole map.
        use_rel_pos: add decomposed relative position biases; the tables start at zero, so
            a freshly adapted block computes exactly what it did before.
        rel_pos_size: ``(H, W)`` the tables of a global block are sized for (the token grid
            at the training size); windowed blocks size them for the window.
    """

    def __init__(
        self,
        attn: nn.Module,
        *,
        window_size: int = 0,
        use_rel_pos: bool = False,
        rel_pos_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        missing = [n for n in ("qkv", "proj", "num_heads", "head_dim") if not hasattr(attn, n)]
        if missing or getattr(attn, "gate", None) is not None:
            raise ValueError(
                f"windowed attention needs a timm Attention with a fused qkv projection; "
                f"{type(attn).__name__} is not one"
                + (f" (it has no {', '.join(missing)})" if missing else " (it is gated)")
            )
        if window_size < 0:
            raise ValueError(f"window_size must be >= 0, got {window_size}")
        self.num_heads = int(attn.num_heads)
        self.head_dim = int(attn.head_dim)
        self.qkv = attn.qkv
        self.q_norm = getattr(attn, "q_norm", nn.Identity())
        self.k_norm = getattr(attn, "k_norm", nn.Identity())
        self.attn_drop = getattr(attn, "attn_drop", nn.Dropout(0.0))
        self.norm = getattr(attn, "norm", nn.Identity())
        self.proj = attn.proj
        self.proj_drop = getattr(attn, "proj_drop", nn.Dropout(0.0))
        self.window_size = int(window_size)
        self.use_rel_pos = bool(use_rel_pos)
        if self.use_rel_pos:
            if self.window_size:
                rows = cols = self.window_size
            elif rel_pos_size is not None:
                rows, cols = rel_pos_size
            else:
                raise ValueError("a global block with use_rel_pos needs rel_pos_size (H, W)")
            like = dict(device=self.qkv.weight.device, dtype=self.qkv.weight.dtype)
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * rows - 1, self.head_dim, **like))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * cols - 1, self.head_dim, **like))

    def extra_repr(self) -> str:
        return f"window_size={self.window_size}, use_rel_pos={self.use_rel_pos}"

    def forward(
        self,
        x: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        """Args:
            x: B x H x W x C.
            attn_mask, is_causal: accepted for timm's ``Block.forward``; must be unset.

        Returns:
            B x H x W x C_out.
        """
        if attn_mask is not None or is_causal:
            raise ValueError("windowed attention takes no attention mask")
        if x.ndim != 4:
            raise ValueError(f"windowed attention expects B x H x W x C, got {tuple(x.shape)}")
        h, w = x.shape[1:3]
        if self.window_size:
            x, padded = window_partition(x, self.window_size)
        x = self._attend(x)
        if self.window_size:
            x = window_unpartition(x, self.window_size, padded, (h, w))
        return x

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        n = h * w
        qkv = self.qkv(x.reshape(b, n, c))
        qkv = qkv.reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        bias = None
        if self.use_rel_pos:
            bias = decomposed_rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, (h, w))
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.attn_drop.p if self.training else 0.0
        )
        x = x.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim)
        x = self.proj_drop(self.proj(self.norm(x)))
        return x.reshape(b, h, w, -1)
