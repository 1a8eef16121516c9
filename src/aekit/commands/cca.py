"""`aekit cca`: stochastic CCA, ridge CCA/PLS or deep CCA with the Eckhart–Young loss against the exact solution.

Trains a `StochasticCCA` with the one Trainer on split digits or the multiview world and writes cca.json (settings,
learned / exact / scikit-learn canonical correlations, PCC and its ratio to the exact solution) and cca.png.
Everything is computed before anything is written, so a bad setting leaves no output behind.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .._version import __version__
from ..analysis.cca import DATASETS, DEFAULT_RIDGE, MODELS, cca_study
from ..errors import ConfigError
from ..fileio import atomic_write_json, refuse_existing_file
from .outputs import write_all

__all__ = ["JSON_NAME", "PNG_NAME", "run_cca", "table_rows"]

JSON_NAME, PNG_NAME = "cca.json", "cca.png"


def _check(data: str, model: str, k: int, epochs: int, batch_size: int, ridge: float) -> None:
    """Refuse bad settings before any training starts (k and the batch size against the data are checked there)."""
    if data not in DATASETS:
        raise ConfigError(f"cca: --data must be one of {', '.join(DATASETS)} (got {data!r})")
    if model not in MODELS:
        raise ConfigError(f"cca: --model must be one of {', '.join(MODELS)} (got {model!r})")
    if k < 1 or epochs < 1 or batch_size < 4:
        raise ConfigError(f"cca: --k and --epochs must be ≥ 1 and --batch-size ≥ 4 (got {k}, {epochs}, {batch_size})")
    if not (math.isfinite(ridge) and 0 <= ridge <= 1):
        raise ConfigError(f"cca: --ridge must be in [0, 1] (got {ridge})")


def run_cca(data: str = "digits", model: str = "linear", k: int = 4, *, epochs: int = 1, batch_size: int = 32,
            seed: int = 0, ridge: float = DEFAULT_RIDGE, out: str | Path = "cca-out") -> dict[str, Any]:
    """Run one study and write cca.json and cca.png into `out`; return the record with both paths."""
    from ..report.cca_plot import plot_cca

    out = Path(out)
    _check(data, model, k, epochs, batch_size, ridge)
    refuse_existing_file(out)
    record = {"aekit_version": __version__,
              **cca_study(data, model, k, epochs=epochs, batch_size=batch_size, seed=seed, ridge=ridge)}
    write_all(out, [(PNG_NAME, lambda p: plot_cca(record, p)), (JSON_NAME, lambda p: atomic_write_json(p, record))])
    return {**record, "json": str(out / JSON_NAME), "png": str(out / PNG_NAME)}


def table_rows(record: dict[str, Any]) -> list[str]:
    """One line per canonical direction, then the totals."""
    rows = ["direction  learned  exact  sklearn" + ("  analytic" if "analytic_correlations" in record else "")]
    for i, (a, b, c) in enumerate(zip(record["learned_correlations"], record["exact_correlations"],
                                      record["sklearn_correlations"], strict=True)):
        extra = f"  {record['analytic_correlations'][i]:8.3f}" if "analytic_correlations" in record else ""
        rows.append(f"{i + 1:9d}  {a:7.3f}  {b:5.3f}  {c:7.3f}{extra}")
    rows.append(f"PCC {record['pcc']:.3f} (exact {record['exact_pcc']:.3f}, ratio {record['pcc_ratio']:.3f}; "
                f"sklearn {record['sklearn_pcc']:.3f})")
    return rows
