"""`aekit crate-mae`: train CRATE-MAE and an MAE of the same shape on the scene world and compare them.

Every setting is checked, both models are trained and measured, and only then are crate_mae.json (the record of
`aekit.analysis.crate_mae.run_crate_mae_study`) and crate_mae.png (completions, per-layer coding rate and sparsity)
written, so a mistake leaves no output behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ConfigError
from ..fileio import atomic_write_json, refuse_existing_file
from .outputs import write_all

__all__ = ["DEVICES", "JSON_NAME", "PNG_NAME", "run_crate_mae"]

JSON_NAME, PNG_NAME = "crate_mae.json", "crate_mae.png"
DEVICES = ("auto", "cpu", "cuda")


def run_crate_mae(out: str | Path = "crate-mae-out", *, steps: int = 1500, seed: int = 0, width: int = 96,
                  depth: int = 4, heads: int = 4, n_train: int = 10000, n_test: int = 1000, device: str = "auto",
                  progress: bool = True) -> dict[str, Any]:
    """Run the study and write crate_mae.json and crate_mae.png into `out`; returns the record and the paths."""
    from ..analysis.crate_mae import BATCH_SIZE, run_crate_mae_study
    from ..report.crate_mae_plot import plot_crate_mae

    out = Path(out)
    refuse_existing_file(out)
    if n_train < BATCH_SIZE or n_test < 1 or seed < 0:
        raise ConfigError(f"crate-mae: --n-train must be ≥ {BATCH_SIZE}, --n-eval ≥ 1 and --seed ≥ 0 "
                          f"(got {n_train}, {n_test}, {seed})")
    if device not in DEVICES:
        raise ConfigError(f"crate-mae: --device must be one of {', '.join(DEVICES)} (got {device!r})")
    try:
        record, examples = run_crate_mae_study(width=width, depth=depth, heads=heads, steps=steps, n_train=n_train,
                                               n_test=n_test, seed=seed, device=device, progress=progress)
    except ConfigError as e:  # a model setting: name the flag the user gave, not the config field
        raise ConfigError(str(e).replace("model.", "crate-mae: --", 1)) from None
    record = {"aekit_version": __version__, **record}
    write_all(out, [(PNG_NAME, lambda p: plot_crate_mae(record, examples, p)),
                    (JSON_NAME, lambda p: atomic_write_json(p, record))])
    return {**record, "json": str(out / JSON_NAME), "png": str(out / PNG_NAME)}
