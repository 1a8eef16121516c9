"""Building blocks: bottlenecks, straight-through estimators, sparse code operations."""

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
