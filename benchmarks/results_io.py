"""Benchmark results as data: every benchmark writes benchmarks/results/<name>.json with its provenance.

`write_results(name, payload, argv)` adds a `provenance` block (the command line as run, UTC date-times, the
machine, the aekit version and the git commit) and writes the file atomically. The documentation's tables are
rendered from these files (benchmarks/render_results.py), so a number in the docs is always one a benchmark
measured, on a machine the file names.

The git state and the start time are taken when this module is imported, that is when the benchmark starts:
the code it measures is the code it imported then, whatever is committed while it runs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from aekit import __version__
from aekit.fileio import atomic_write_bytes

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
# CPU flags that decide which kernels and matrix units the benchmarks can use
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
                "amx_int8", "neon", "asimd", "sve")
# environment variables that change how a benchmark runs; recorded and shown in the command line
ENV_KEYS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "AEKIT_BF16_SCREEN", "AEKIT_NATIVE", "THP_MEM_ALLOC_ENABLE",
            "SPARSIFY_DISABLE_TRITON", "CUDA_VISIBLE_DEVICES")


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=20,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """The commit checked out and whether the tree differs from it (results under benchmarks/results/ aside)."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=normal")
    if commit is None or status is None:
        return {"commit": None, "dirty": None}
    changed = [line[3:] for line in status.splitlines() if not line[3:].startswith("benchmarks/results/")]
    return {"commit": commit.strip(), "dirty": bool(changed), "changed_paths": changed[:40]}


_STARTED = _utc_now()
_GIT = git_state()
_ENV = {key: os.environ[key] for key in ENV_KEYS if key in os.environ}  # as set by whoever ran the benchmark
try:
    _LOAD = [round(x, 2) for x in os.getloadavg()]  # how busy the machine was when the benchmark started
except (OSError, AttributeError):
    _LOAD = None


def _cpu_info() -> tuple[str, list[str]]:
    """CPU model name and its flags, from /proc/cpuinfo where there is one."""
    model, flags = "", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model", "cpu model") and not model:
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = value.split()
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def _ram_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def machine_description() -> dict[str, Any]:
    """What a measurement depends on: CPU, cores, memory, OS, Python, torch and its threads, CPU features, GPU."""
    model, flags = _cpu_info()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    gpus = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available() else [])
    return {
        "cpu": model,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_features": [f for f in CPU_FEATURES if f in flags],
        "gpus": gpus,
    }


def command_line(argv: list[str] | None = None) -> str:
    """The command as run: environment settings that matter, the interpreter (relative to the repository when
    inside it), the script and its arguments (`argv`, default sys.argv[1:])."""
    argv = sys.argv[1:] if argv is None else list(argv)
    env = [f"{key}={value}" for key, value in _ENV.items()]
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] not in ("", "-c") else None
    python = Path(sys.executable)
    words = []
    for path in (python, script):
        if path is None:
            continue
        absolute = path if path.is_absolute() else Path.cwd() / path
        try:
            words.append(str(absolute.relative_to(REPO)))
        except ValueError:
            words.append(path.name if path is python else str(path))
    return shlex.join([*env, *words, *[str(a) for a in argv]])


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    """Where a result comes from: command, start and end time (UTC), machine, aekit version, git commit."""
    finished = _utc_now()
    seconds = (dt.datetime.fromisoformat(finished) - dt.datetime.fromisoformat(_STARTED)).total_seconds()
    return {
        "command": command_line(argv),
        "started_utc": _STARTED,
        "date_utc": finished,
        "wall_seconds": seconds,
        "machine": machine_description(),
        "aekit_version": __version__,
        "git": dict(_GIT),
        "environment": dict(_ENV),
        "load_average_at_start": _LOAD,
    }


def results_path(name: str) -> Path:
    if not name or Path(name).name != name or name.startswith("."):
        raise ValueError(f"results name {name!r}: use a plain file name without directories, e.g. 'sae_step'")
    return RESULTS / f"{name}.json"


def write_results(name: str, payload: dict[str, Any], argv: list[str] | None = None, *,
                  with_provenance: bool = True, out: str | os.PathLike | None = None) -> Path:
    """Write `payload` plus a `provenance` block to benchmarks/results/<name>.json (or to `out`) atomically; return
    the path.

    `with_provenance=False` is for files that carry a provenance per part instead (recovery.json: one per study,
    since studies are run by separate commands and merged)."""
    path = Path(out) if out is not None else results_path(name)
    record = {**payload, "provenance": provenance(argv)} if with_provenance else dict(payload)
    atomic_write_bytes(path, (json.dumps(record, indent=1, default=str) + "\n").encode())
    return path


def read_results(name: str) -> dict[str, Any] | None:
    """The results file `name` if it exists (for benchmarks that merge runs into one file)."""
    path = results_path(name)
    return json.loads(path.read_text()) if path.is_file() else None
