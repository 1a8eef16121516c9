"""Building blocks: bottlenecks, straight-through estimators, sparse code operations."""

from .axial import AxialAttention, AxialBlock
from .bottlenecks import (
    BOTTLENECKS,
    BatchTopK,
    Bottleneck,
    Gated,
    JumpReLU,
    Matryoshka,
    ReLUL1,
    TopK,
    make_bottleneck,
)
from .codes import Codes
from .sparse_ops import sparse_decode, sparse_encode

__all__ = [
    "BOTTLENECKS",
    "AxialAttention",
    "AxialBlock",
    "BatchTopK",
    "Bottleneck",
    "Codes",
    "Gated",
    "JumpReLU",
    "Matryoshka",
    "ReLUL1",
    "TopK",
    "make_bottleneck",
    "sparse_decode",
    "sparse_encode",
]
