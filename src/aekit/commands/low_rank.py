"""`aekit denoiser`: the low-rank denoiser study (generalisation against training-set size) at chosen sizes.

Trains a `LowRankDenoiser` on N = ratio · d samples of a mixture of low-rank Gaussians for every ratio and seed and
writes denoiser.json (settings, every run, a per-ratio summary, the optimal denoiser's error) and denoiser.png.
Everything is computed before anything is written, so a bad setting leaves no output behind.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..analysis.low_rank import DEFAULT_RATIOS, denoiser_study
from ..errors import ConfigError
from ..fileio import atomic_write_json, refuse_existing_file
from .outputs import write_all

__all__ = ["JSON_NAME", "PNG_NAME", "run_denoiser"]

JSON_NAME, PNG_NAME = "denoiser.json", "denoiser.png"


def _check(d: int, components: int, rank: int, sigma: float, ratios: Sequence[float], seeds: int, steps: int) -> None:
    """Refuse bad sizes before any training starts."""
    if d < 1 or components < 1 or seeds < 1 or steps < 1:
        raise ConfigError(f"denoiser: --d, --components, --seeds and --steps must be ≥ 1 (got {d}, {components}, "
                          f"{seeds}, {steps})")
    if not 1 <= rank <= d:
        raise ConfigError(f"denoiser: --rank must be between 1 and --d {d} (got {rank})")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"denoiser: --sigma must be a positive number (got {sigma})")
    if not ratios or any(not (math.isfinite(r) and r > 0) for r in ratios):
        raise ConfigError(f"denoiser: --ratios must be positive numbers (got {' '.join(map(str, ratios))})")


def run_denoiser(d: int = 64, components: int = 2, rank: int = 4, sigma: float = 0.1,
                 ratios: Sequence[float] = DEFAULT_RATIOS, seeds: int = 3, *, steps: int = 1000,
                 world_seed: int = 0, out: str | Path = "denoiser-out",
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the study and write denoiser.json and denoiser.png into `out`; return the record with both paths."""
    from ..report.low_rank_plot import plot_denoiser_study

    out = Path(out)
    _check(d, components, rank, sigma, ratios, seeds, steps)
    refuse_existing_file(out)
    study = denoiser_study(d, components, rank, sigma, list(ratios), seeds, steps=steps, world_seed=world_seed,
                           progress=progress)
    record = {"aekit_version": __version__, **study}
    write_all(out, [(PNG_NAME, lambda p: plot_denoiser_study(study, p)),
                    (JSON_NAME, lambda p: atomic_write_json(p, record))])
    return {**record, "json": str(out / JSON_NAME), "png": str(out / PNG_NAME)}
