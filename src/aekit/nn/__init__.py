"""Building blocks: bottlenecks, sparse code operations."""

from .bottlenecks import BOTTLENECKS, Bottleneck, ReLUL1, TopK, make_bottleneck
from .codes import Codes
from .sparse_ops import sparse_decode, sparse_encode

__all__ = [
    "BOTTLENECKS",
    "Bottleneck",
    "Codes",
    "ReLUL1",
    "TopK",
    "make_bottleneck",
    "sparse_decode",
    "sparse_encode",
]
