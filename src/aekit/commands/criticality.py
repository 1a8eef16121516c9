"""`aekit criticality`: MLPs initialised at criticality and off it, measured layer by layer on real data.

For each activation, depth-`depth` width-`width` MLPs are initialised with `aekit.nn.init.critical_` at C_W × 0.8,
× 1 (critical) and × 1.25 over `seeds` seeds, and the mean squared preactivation and backward signal of every
layer are measured on the standardised scikit-learn digits (`aekit.analysis.criticality`). Outputs in `out`:
criticality.json (the study) and criticality.png (E[z²] per layer, one panel per activation). Everything is
computed before anything is written, so a bad input leaves no output behind.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..analysis.criticality import criticality_study
from ..errors import ConfigError
from ..fileio import atomic_write_json, refuse_existing_file
from ..nn.init import ACTIVATIONS
from .outputs import write_all

__all__ = ["JSON_NAME", "PNG_NAME", "SCALES", "parse_activations", "run_criticality", "table_rows"]

JSON_NAME, PNG_NAME = "criticality.json", "criticality.png"
SCALES = (0.8, 1.0, 1.25)


def parse_activations(text: str | Sequence[str]) -> list[str]:
    """"relu,tanh" or ["relu", "tanh"] → the names, checked, in the order given, without repeats."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in ACTIVATIONS]
    if unknown or not names:
        raise ConfigError(f"--activations {','.join(unknown) or '(empty)'}: unknown; use a comma-separated list of "
                          f"{', '.join(ACTIVATIONS)}")
    return list(dict.fromkeys(names))


def run_criticality(activations: str | Sequence[str] = ACTIVATIONS, depth: int = 24, width: int = 256,
                    seeds: int = 3, *, out: str | Path = "criticality-out", n_examples: int | None = None,
                    seed: int = 0) -> dict[str, Any]:
    """Run the study (on the first `n_examples` digits when given), write criticality.json and criticality.png
    into `out` and return the JSON record with the two paths added."""
    from ..analysis.criticality import digits
    from ..report.criticality_plot import plot_criticality

    names = parse_activations(activations)
    if depth < 2 or width < 1 or seeds < 1:
        raise ConfigError(f"--depth {depth}, --width {width}, --seeds {seeds}: need depth ≥ 2, width ≥ 1, seeds ≥ 1")
    out = Path(out)
    refuse_existing_file(out)
    started = time.perf_counter()
    study = criticality_study(names, depth=depth, width=width, seeds=seeds, scales=SCALES, x=digits(n_examples),
                              seed=seed)
    record = {"aekit_version": __version__, "data": "scikit-learn digits, standardised per pixel", **study,
              "seconds": round(time.perf_counter() - started, 2)}
    write_all(out, [
        (JSON_NAME, lambda p: atomic_write_json(p, record)),
        (PNG_NAME, lambda p: plot_criticality(study, p)),
    ])
    return {**record, "json": str(out / JSON_NAME), "png": str(out / PNG_NAME)}


def table_rows(record: dict[str, Any]) -> list[str]:
    """The printed table: per activation and C_W scale, E[z²] last/first, the largest deviation from layer 1 and
    the backward signal's first/last ratio."""
    rows = [f"{'activation':<10} {'C_b':>8} {'C_W':>8} {'scale':>6} {'E[z²] last/first':>17} "
            f"{'max |dev|':>10} {'grad² first/last':>17}"]
    for name, result in record["activations"].items():
        for key, run in result["runs"].items():
            rows.append(f"{name:<10} {run['c_b']:>8.5f} {run['c_w']:>8.5f} {key:>6} {run['ratio_last_first']:>17.4g} "
                        f"{run['max_relative_deviation']:>10.3g} {run['grad_sq_ratio_first_last']:>17.4g}")
    return rows
