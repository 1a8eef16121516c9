"""Compile and load the native kernels: one unity build of this directory's C files, cached per source, flags and CPU.

On first use `kernels.c` is compiled with the system C compiler (`cc -O3 -march=native -fopenmp`, about a
second) into a cache directory and loaded with ctypes. Without a compiler, or with `AEKIT_NATIVE=0`,
`library()` returns None and callers use their PyTorch formulas.
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
