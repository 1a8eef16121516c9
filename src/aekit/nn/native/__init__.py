"""Native CPU kernels for the SAE training step, compiled on first use; PyTorch fallbacks everywhere else.

`kernels.c` holds the few loops PyTorch cannot express in one pass: a top-k that adds the encoder bias while
it reads each row once (instead of a bias copy, a partial sort and a gather), the three products with a
k-sparse code matrix, and the row-wise constraints of a unit-norm decoder. On first use the file is
compiled with the system C compiler (`cc -O3 -march=native -fopenmp`, about a second) into a cache
directory, keyed by the source, the flags and this CPU, and loaded with ctypes. Without a compiler, or with
`AEKIT_NATIVE=0`, `library()` returns None and callers use their PyTorch formulas: the native kernels are an
accelerator, never a requirement. Tests check both paths against float64 references.
"""

from .build import cache_dir, library, load, usable
from .ops import *  # noqa: F403  (the kernels' typed wrappers are the package's face)
from .ops import __all__ as _ops

__all__ = ["cache_dir", "library", "load", "usable", *_ops]
