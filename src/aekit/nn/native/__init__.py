"""Native CPU kernels for the SAE training step, compiled on first use; PyTorch fallbacks everywhere else.

`kernels.c` holds the few loops PyTorch cannot express in one pass: a top-k that adds the encoder bias while
it reads each row once (instead of a bias copy, a partial sort and a gather), the three products with a
k-sparse code matrix, and the row-wise constraints of a unit-norm decoder. On first use the file is
compiled with the system C compiler (`cc -O3 -march=native -fopenmp`, about a second) into a cache
directory, keyed by the source, the flags and this CPU, and loaded with ctypes. Without a compiler, or with
`AEKIT_NATIVE=0`, `library()` returns None and callers use their PyTorch formulas: the native kernels are an
accelerator, never a requirement. Tests check both paths against float64 references.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import torch  # noqa: F401  (loads PyTorch's libgomp first, so the kernels share its OpenMP thread pool)

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("kernels.c")  # a unity build: includes the other .c files of this directory
FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c11",
         "-Werror=implicit-function-declaration")


def _source_bytes() -> bytes:
    """Every source file the build reads, in a fixed order (the cache key)."""
    files = sorted(SOURCE.parent.glob("*.[ch]"))
    return b"".join(f.name.encode() + b"\0" + f.read_bytes() for f in files)

_P, _I64, _F32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
_SIGNATURES = {
    "aekit_bias_topk": ([_P, _P, _I64, _I64, _I64, _P, _P], ctypes.c_int),
    "aekit_weighted_row_sum": ([_P, _P, _P, _I64, _I64, _I64, _P], None),
    "aekit_gather_dot": ([_P, _P, _P, _I64, _I64, _I64, _P], None),
    "aekit_scatter_outer": ([_P, _P, _P, _P, _I64, _I64, _I64, _F32, _P, _I64, _P], None),
    "aekit_decode_residual": ([_P, _P, _P, _P, _P, _I64, _I64, _I64, _P, _P, _P, _P], None),
    "aekit_nested_decode_residual": ([_P, _P, _P, _P, _P, _P, _I64, _I64, _I64, _I64, _P, _P, _P, _P], ctypes.c_int),
    "aekit_sum_squares": ([_P, _I64], ctypes.c_double),
    "aekit_kth_largest": ([_P, _I64, _I64], ctypes.c_float),
    "aekit_batch_select": ([_P, _P, _P, _I64, _I64, _I64, _P, _P, _P], ctypes.c_int),
    "aekit_gated_forward": ([_P, _P, _P, _I64, _I64, _P], None),
    "aekit_gated_backward": ([_P, _P, _P, _P, _I64, _I64, _P, _P, _P], ctypes.c_int),
    "aekit_count_above": ([_P, _P, _I64, _I64, _P], None),
    "aekit_select_above": ([_P, _P, _I64, _I64, _I64, _P, _P, _P], None),
    "aekit_count_fired": ([_P, _P, _I64, _I64, _P], ctypes.c_int),
    "aekit_count_positive": ([_P, _I64, _I64, _P], ctypes.c_int),
    "aekit_group_by_value": ([_P, _I64, _I64, _P, _P], ctypes.c_int),
    "aekit_bf16_rows": ([_P, _I64, _I64, _P, _P, _P, _P], None),
    "aekit_screened_topk": ([_P, _P, _P, _P, _P, _P, _P, _P, _F32, _I64, _I64, _I64, _I64, _I64, _P, _P, _P],
                            ctypes.c_int),
    "aekit_screen_group_maxima": ([_P, _P, _P, _P, _P, _P, _F32, _I64, _I64, _I64, _P, _P], ctypes.c_int),
    "aekit_screened_above": ([_P, _P, _P, _P, _P, _P, _P, _P, _F32, _I64, _I64, _I64, _F32, _I64, _P, _P, _P],
                             ctypes.c_int),
    "aekit_project_rows": ([_P, _P, _I64, _I64], None),
    "aekit_normalize_rows": ([_P, _I64, _I64, _F32], None),
}


def cache_dir() -> Path:
    """Where compiled kernels live: $AEKIT_NATIVE_CACHE, else $XDG_CACHE_HOME/aekit/native (~/.cache/...)."""
    if os.environ.get("AEKIT_NATIVE_CACHE"):
        return Path(os.environ["AEKIT_NATIVE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aekit" / "native"


def _cpu_signature() -> str:
    """The CPU's identity for -march=native: a library built for another CPU's instructions must not load."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))][:2]
    except OSError:
        lines = []
    return "\n".join([platform.machine(), platform.processor(), *lines])


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _cache_dirs() -> tuple[Path, Path]:
    """cache_dir(), then a per-user temporary directory for machines where it cannot be written (read-only home)."""
    return cache_dir(), Path(tempfile.gettempdir()) / f"aekit-native-{os.getuid()}"


def _writable_cache() -> Path:
    for directory in _cache_dirs():
        try:
            directory.mkdir(parents=True, exist_ok=True)
            if os.access(directory, os.W_OK):
                return directory
        except OSError:
            continue
    raise OSError(f"no writable directory for the compiled kernels (tried {cache_dir()})")


def _build(compiler: str, flags: tuple[str, ...]) -> Path:
    fingerprint = _source_bytes() + " ".join((compiler, *flags)).encode() + _cpu_signature().encode()
    key = hashlib.sha256(fingerprint).hexdigest()
    name = f"kernels-{key[:20]}.so"
    for directory in _cache_dirs():
        if (directory / name).exists():
            return directory / name
    target = _writable_cache() / name
    # compile to a private name, then rename: a concurrent process never loads a half-written library
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        subprocess.run([compiler, *flags, "-o", tmp, str(SOURCE), "-lm"], check=True, capture_output=True,
                       text=True, timeout=120)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def load(extra_flags: tuple[str, ...] = ()) -> ctypes.CDLL:
    """Build (or reuse from the cache) and load the kernels; raises OSError / SubprocessError on failure.
    `extra_flags` select another variant, e.g. ("-mno-avx512f",) for the portable loops (tests use it), after any
    flags in $AEKIT_NATIVE_CFLAGS (e.g. sanitizers: `make sanitize`)."""
    compiler = _compiler()
    if compiler is None:
        raise OSError("no C compiler (cc or gcc) on PATH")
    flags = FLAGS + tuple(shlex.split(os.environ.get("AEKIT_NATIVE_CFLAGS", ""))) + tuple(extra_flags)
    lib = ctypes.CDLL(str(_build(compiler, flags)))
    for name, (args, result) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, result
    return lib


@cache
def library() -> ctypes.CDLL | None:
    """The compiled kernels, or None when disabled (AEKIT_NATIVE=0) or when no C compiler can build them."""
    if os.environ.get("AEKIT_NATIVE", "1") == "0" or platform.system() != "Linux":
        return None
    try:
        return load()
    except (OSError, subprocess.SubprocessError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        log.warning("aekit: native kernels unavailable (%s); using the PyTorch SAE kernels", detail.strip()[:300])
        return None


# --- typed wrappers: callers check `usable(...)` first ------------------------------------------------------
def usable(index: torch.Tensor | None, *values: torch.Tensor) -> bool:
    """True when the kernels are built, `index` (if given) is int64 and every tensor is contiguous on the CPU,
    values in float32."""
    tensors = values if index is None else (index, *values)
    return (
        library() is not None
        and (index is None or index.dtype == torch.int64)
        and all(t.dtype == torch.float32 for t in values)
        and all(t.device.type == "cpu" and t.is_contiguous() for t in tensors)
    )


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def bias_topk_(pre: torch.Tensor, bias: torch.Tensor | None, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Add `bias` to `pre` (rows, n) in place and return the (indices, values) of each row's k largest entries."""
    rows, n = pre.shape
    idx = torch.empty(rows, k, dtype=torch.int64)
    val = torch.empty(rows, k, dtype=pre.dtype)
    if library().aekit_bias_topk(_ptr(pre), _ptr(bias), rows, n, k, _ptr(idx), _ptr(val)):
        raise MemoryError("aekit native top-k could not allocate its candidate buffers")
    return idx, val


def weighted_row_sum(idx: torch.Tensor, w: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    rows, k = idx.shape
    out = torch.empty(rows, W.shape[1], dtype=W.dtype)
    library().aekit_weighted_row_sum(_ptr(idx), _ptr(w), _ptr(W), rows, k, W.shape[1], _ptr(out))
    return out


def gather_dot(idx: torch.Tensor, W: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    rows, k = idx.shape
    out = torch.empty(rows, k, dtype=W.dtype)
    library().aekit_gather_dot(_ptr(idx), _ptr(W), _ptr(y), rows, k, W.shape[1], _ptr(out))
    return out


def scatter_outer(start: torch.Tensor, entry: torch.Tensor, w: torch.Tensor, y: torch.Tensor, k: int,
                  alpha: float = 1.0, source: torch.Tensor | None = None) -> torch.Tensor:
    """α Sᵀ @ y from S's column grouping (start, entry). `y` is (rows, d), or (S, rows, d) stacked matrices with
    `source` (n_out,) naming the one each output row reads."""
    n_out, d = len(start) - 1, y.shape[-1]
    stride = y.shape[-2] * d if source is not None else 0
    out = torch.empty(n_out, d, dtype=y.dtype)
    library().aekit_scatter_outer(_ptr(start), _ptr(entry), _ptr(w), _ptr(y), n_out, k, d, alpha, _ptr(source),
                                  stride, _ptr(out))
    return out


def decode_residual(idx: torch.Tensor, w: torch.Tensor, W: torch.Tensor, bias: torch.Tensor, target: torch.Tensor,
                    with_dots: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(ŷ, r = ŷ − target, ||r||² per row, W[idx]·r or None): see aekit_decode_residual in kernels.c."""
    rows, k = idx.shape
    d = W.shape[1]
    y_hat, r = torch.empty(rows, d), torch.empty(rows, d)
    sq = torch.empty(rows)
    dots = torch.empty(rows, k) if with_dots else None
    library().aekit_decode_residual(_ptr(idx), _ptr(w), _ptr(W), _ptr(bias), _ptr(target), rows, k, d, _ptr(y_hat),
                                    _ptr(r), _ptr(sq), _ptr(dots))
    return y_hat, r, sq, dots


def nested_decode_residual(idx: torch.Tensor, w: torch.Tensor, group: torch.Tensor, W: torch.Tensor,
                           bias: torch.Tensor, target: torch.Tensor, n_groups: int, with_dots: bool):
    """(ŷ, r (P, rows, d), ||r_p||² (rows, P), dots (rows, k, P) or None): see aekit_nested_decode_residual."""
    rows, k = idx.shape
    d = W.shape[1]
    y_hat, r = torch.empty(rows, d), torch.empty(n_groups, rows, d)
    sq = torch.empty(rows, n_groups)
    dots = torch.empty(rows, k, n_groups) if with_dots else None
    if library().aekit_nested_decode_residual(_ptr(idx), _ptr(w), _ptr(group), _ptr(W), _ptr(bias), _ptr(target),
                                              rows, k, d, n_groups, _ptr(y_hat), _ptr(r), _ptr(sq), _ptr(dots)):
        raise MemoryError("aekit native nested decode could not allocate its scratch rows")
    return y_hat, r, sq, dots


def sum_squares(x: torch.Tensor) -> float:
    """Σ x² (float32 tensor, any shape) accumulated in float64 over fixed chunks: thread-count independent."""
    total = library().aekit_sum_squares(_ptr(x), x.numel())
    if total < 0:
        raise MemoryError("aekit native sum of squares could not allocate its partial sums")
    return total


def project_rows_(g: torch.Tensor, W: torch.Tensor) -> None:
    library().aekit_project_rows(_ptr(g), _ptr(W), *g.shape)


def normalize_rows_(W: torch.Tensor, eps: float = 1e-12) -> None:
    library().aekit_normalize_rows(_ptr(W), *W.shape, eps)


def bf16_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(bfloat16(x) rounded to nearest even, and per row upper bounds of ||bf16(x)||, ||bf16(x) − x||, ||x||)."""
    rows, d = x.shape
    rounded = torch.empty(rows, d, dtype=torch.bfloat16)
    norms = torch.empty(3, rows)
    library().aekit_bf16_rows(_ptr(x), rows, d, _ptr(rounded), _ptr(norms[0]), _ptr(norms[1]), _ptr(norms[2]))
    return rounded, norms[0], norms[1], norms[2]


def _run_screen(kernel: str, approx: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor, W: torch.Tensor,
                bound: tuple, *args) -> None:
    """Call a screen kernel of screen.c: its leading arguments are the bfloat16 product, the exact operands, the
    bound's norms and relative rounding `bound` = (a, c, p, q, rel), and the sizes; `args` are the rest."""
    a, c, p, q, rel = bound
    rows, n = approx.shape
    if getattr(library(), kernel)(_ptr(approx), _ptr(bias), _ptr(x), _ptr(W), _ptr(a), _ptr(c), _ptr(p), _ptr(q), rel,
                                  rows, n, x.shape[1], *args):
        raise MemoryError(f"aekit native {kernel} could not allocate its buffers")


def screened_topk(approx: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor, W: torch.Tensor, bound: tuple,
                  k: int, cap: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(indices, values, redo): see aekit_screened_topk in screen.c."""
    rows = approx.shape[0]
    idx, val, redo = torch.empty(rows, k, dtype=torch.int64), torch.empty(rows, k), torch.empty(rows, dtype=torch.bool)
    _run_screen("aekit_screened_topk", approx, bias, x, W, bound, k, cap, _ptr(idx), _ptr(val), _ptr(redo))
    return idx, val, redo


def screened_above(approx: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor, W: torch.Tensor, bound: tuple,
                   cut: float, cap: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(cols (rows, cap) int32, values (rows, cap), count (rows,)): see aekit_screened_above."""
    rows = approx.shape[0]
    cols, vals = torch.empty(rows, cap, dtype=torch.int32), torch.empty(rows, cap)
    count = torch.empty(rows, dtype=torch.int64)
    _run_screen("aekit_screened_above", approx, bias, x, W, bound, cut, cap, _ptr(cols), _ptr(vals), _ptr(count))
    return cols, vals, count


def screen_group_maxima(approx: torch.Tensor, bias: torch.Tensor | None, bound: tuple,
                        groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(group maxima (rows, groups) of each row's lower bounds, bad rows): see aekit_screen_group_maxima."""
    rows, n = approx.shape
    group_max, bad = torch.empty(rows, groups), torch.empty(rows, dtype=torch.bool)
    a, c, p, q, rel = bound
    if library().aekit_screen_group_maxima(_ptr(approx), _ptr(bias), _ptr(a), _ptr(c), _ptr(p), _ptr(q), rel, rows,
                                           n, groups, _ptr(group_max), _ptr(bad)):
        raise MemoryError("aekit native screen could not allocate its buffers")
    return group_max, bad


def group_by_value(idx: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(start (n + 1,), entry (idx.numel(),)), int64: the flat positions of idx grouped by value, stably (a counting
    sort); the positions holding value r are entry[start[r]:start[r + 1]]."""
    start = torch.empty(n + 1, dtype=torch.int64)
    entry = torch.empty(idx.numel(), dtype=torch.int64)
    status = library().aekit_group_by_value(_ptr(idx), idx.numel(), n, _ptr(start), _ptr(entry))
    if status == 1:
        raise IndexError(f"latent index out of range [0, {n})")
    if status:
        raise MemoryError("aekit native grouping could not allocate its counters")
    return start, entry


def kth_largest(v: torch.Tensor, k: int) -> float:
    """The k-th largest entry of a float32 tensor without NaN (1 ≤ k ≤ numel)."""
    value = library().aekit_kth_largest(_ptr(v), v.numel(), k)
    if value != value:
        raise MemoryError("aekit native k-th largest could not allocate its buffer")
    return value


def batch_select(cols: torch.Tensor, vals: torch.Tensor, count: torch.Tensor,
                 total: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(rows, cols, values) of the `total` largest kept entries, in row order (see aekit_batch_select in
    screen.c); None when fewer than `total` are kept."""
    rows, cap = vals.shape
    out = torch.empty(total, dtype=torch.int64), torch.empty(total, dtype=torch.int64), torch.empty(total)
    status = library().aekit_batch_select(_ptr(cols), _ptr(vals), _ptr(count), rows, cap, total, *map(_ptr, out))
    if status == 2:
        raise MemoryError("aekit native batch selection could not allocate its buffer")
    return None if status else out


def count_positive(x: torch.Tensor) -> torch.Tensor:
    """(n,) int64: how many rows of the (rows, n) float32 matrix x are > 0 in each column."""
    rows, n = x.shape
    counts = torch.empty(n, dtype=torch.int64)
    if library().aekit_count_positive(_ptr(x), rows, n, _ptr(counts)):
        raise MemoryError("aekit native count could not allocate its counters")
    return counts


def gated_forward(pre: torch.Tensor, s: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1[pre > 0] · max(s·pre + b, 0): see gated.c."""
    f = torch.empty_like(pre)
    library().aekit_gated_forward(_ptr(pre), _ptr(s), _ptr(b), *pre.shape, _ptr(f))
    return f


def gated_backward(grad: torch.Tensor, pre: torch.Tensor, s: torch.Tensor,
                   b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(∂L/∂pre, Σ_rows ∂L/∂m·pre, Σ_rows ∂L/∂m) for f = gated_forward(pre, s, b): see gated.c."""
    n = pre.shape[1]
    grad_pre, col_pre, col_one = torch.empty_like(pre), torch.empty(n), torch.empty(n)
    if library().aekit_gated_backward(_ptr(grad), _ptr(pre), _ptr(s), _ptr(b), *pre.shape, _ptr(grad_pre),
                                      _ptr(col_pre), _ptr(col_one)):
        raise MemoryError("aekit native Gated backward could not allocate its partial sums")
    return grad_pre, col_pre, col_one


def select_above(x: torch.Tensor, thr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each row's columns with x[r, j] > thr[j], padded: (indices int64, values, valid bool), each (rows, width)
    with width the largest count (at least 1); see aekit_select_above."""
    rows, n = x.shape
    counts = torch.empty(rows, dtype=torch.int64)
    library().aekit_count_above(_ptr(x), _ptr(thr), rows, n, _ptr(counts))
    width = max(int(counts.max()) if rows else 0, 1)
    indices, values = torch.empty(rows, width, dtype=torch.int64), torch.empty(rows, width)
    valid = torch.empty(rows, width, dtype=torch.bool)
    library().aekit_select_above(_ptr(x), _ptr(thr), rows, n, width, _ptr(indices), _ptr(values), _ptr(valid))
    return indices, values, valid


def count_fired(idx: torch.Tensor, values: torch.Tensor, n: int) -> torch.Tensor:
    """(n,) int64: for each latent, how many entries of the sparse codes (idx, values) name it with a value > 0."""
    counts = torch.empty(n, dtype=torch.int64)
    status = library().aekit_count_fired(_ptr(idx), _ptr(values), idx.numel(), n, _ptr(counts))
    if status == 1:
        raise IndexError(f"latent index out of range [0, {n})")
    if status:
        raise MemoryError("aekit native count could not allocate its counters")
    return counts
