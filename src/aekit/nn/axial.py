"""Axial attention (Ho et al. 2019, "Axial Attention in Multidimensional Transformers").

`AxialAttention` is multi-head self-attention along one spatial axis of a (batch, *spatial, dim) tensor: each
position attends only to the positions that share all its other coordinates (its column, its row, ...). The
attended axis is moved next to the feature axis and every other axis is folded into the batch, so one call of
`scaled_dot_product_attention` does the work on sequences of that axis's length. For an H×W image of N = H·W
positions that costs O(N·(H+W)) per pair of axes instead of the O(N²) of full attention, and the attention
matrices hold N·H (or N·W) entries per head instead of N².

`AxialBlock` applies one `AxialAttention` per spatial axis in turn, then an MLP, each pre-norm with a residual.
After one block every output position depends on every input position (an image: the column pass then the row
pass), which is what makes stacking axial layers a replacement for full attention.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, ShapeError


class AxialAttention(nn.Module):
    """Multi-head self-attention along spatial axis `axis` (0 = the first axis after batch) of (batch, *spatial,
    dim) inputs; the output has the input's shape.

    `causal=True` lets position i along the axis attend only to positions ≤ i along it (the other coordinates
    are equal anyway). Any number of spatial axes greater than `axis` is accepted: images have two, volumes three.
    """

    def __init__(self, dim: int, heads: int, axis: int, *, causal: bool = False, bias: bool = True):
        super().__init__()
        if dim < 1 or heads < 1 or dim % heads:
            raise ConfigError(f"axial attention dim={dim}, heads={heads}: dim must be a positive multiple of heads")
        if axis < 0:
            raise ConfigError(f"axial attention axis={axis}: count spatial axes from 0 (the first after batch)")
        self.dim, self.heads, self.axis, self.causal = dim, heads, axis, causal
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.k_proj = nn.Linear(dim, dim, bias=bias)
        self.v_proj = nn.Linear(dim, dim, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, heads={self.heads}, axis={self.axis}, causal={self.causal}"

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < self.axis + 3 or x.shape[-1] != self.dim:
            raise ShapeError(f"axial attention along spatial axis {self.axis} got shape {tuple(x.shape)}; expected "
                             f"(batch, at least {self.axis + 1} spatial axes, {self.dim})")
        # the attended axis goes next to the features and the rest fold into the batch: (B·others, L, dim)
        moved = x.movedim(self.axis + 1, -2)
        folded_shape = moved.shape
        seq = moved.reshape(-1, folded_shape[-2], self.dim)
        q, k, v = (self._split_heads(proj(seq)) for proj in (self.q_proj, self.k_proj, self.v_proj))
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        merged = attended.transpose(1, 2).reshape(seq.shape)
        return self.out_proj(merged).reshape(folded_shape).movedim(-2, self.axis + 1)

    def _split_heads(self, t: Tensor) -> Tensor:
        # (n, L, dim) → (n, heads, L, dim / heads), the layout scaled_dot_product_attention expects
        return t.unflatten(-1, (self.heads, self.dim // self.heads)).transpose(1, 2)


class AxialBlock(nn.Module):
    """One axial transformer block on (batch, *spatial, dim) inputs with `n_axes` spatial axes.

    x ← x + attention_a(LayerNorm(x)) for each axis a = 0 … n_axes-1 in turn, then x ← x + MLP(LayerNorm(x)),
    with a GELU MLP of hidden width `mlp_ratio`·dim.
    """

    def __init__(self, dim: int, heads: int, n_axes: int, *, mlp_ratio: int = 4, causal: bool = False):
        super().__init__()
        if n_axes < 1:
            raise ConfigError(f"axial block n_axes={n_axes}: need at least one spatial axis")
        if mlp_ratio < 1:
            raise ConfigError(f"axial block mlp_ratio={mlp_ratio}: must be at least 1")
        self.n_axes = n_axes
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(n_axes))
        self.attentions = nn.ModuleList(AxialAttention(dim, heads, a, causal=causal) for a in range(n_axes))
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        dim = self.mlp_norm.normalized_shape[0]
        if x.ndim != self.n_axes + 2 or x.shape[-1] != dim:
            raise ShapeError(f"axial block input has shape {tuple(x.shape)}; expected (batch, "
                             f"{self.n_axes} spatial axes, {dim})")
        for norm, attention in zip(self.norms, self.attentions, strict=True):
            x = x + attention(norm(x))
        return x + self.mlp(self.mlp_norm(x))


def attention_matrix_bytes(shape: tuple[int, ...], heads: int, *, axial: bool, itemsize: int = 4) -> int:
    """Bytes of the attention weights one forward pass materialises on a (batch, *spatial, dim) input when the
    kernel does not tile them: batch·heads·N² for full attention, the sum over axes of batch·heads·N·L_a for
    axial attention (N positions, L_a the length of axis a)."""
    batch, spatial = shape[0], shape[1:-1]
    n = math.prod(spatial)
    entries = n * sum(spatial) if axial else n * n
    return batch * heads * entries * itemsize
