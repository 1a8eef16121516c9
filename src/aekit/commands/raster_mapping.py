"""`aekit map`: unsupervised mapping of a synthetic multispectral raster, stacked autoencoder + k-means against
PCA + k-means and raw k-means.

Builds the seeded raster world, maps it with every method (`aekit.analysis.raster_mapping`) and writes map.json
(settings, each method's Hungarian-matched accuracy and Cohen's kappa) and map.png (true map beside each method's
map). Everything is computed before anything is written, so a bad setting leaves no output behind.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._version import __version__
from ..analysis.raster_mapping import mapping_study
from ..errors import ConfigError
from ..fileio import atomic_write_json, refuse_existing_file
from ..worlds.raster import RasterWorldConfig
from .outputs import write_all

__all__ = ["JSON_NAME", "PNG_NAME", "run_map"]

JSON_NAME, PNG_NAME = "map.json", "map.png"


def run_map(size: int = 96, units: int = 5, bands: int = 12, seed: int = 0, *, out: str | Path = "map-out",
            pretrain_steps: int = 1500, finetune_steps: int = 3000,
            progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Map the scene and write map.json and map.png into `out`; return the record with both paths."""
    from ..report.raster_plot import plot_maps

    out = Path(out)
    if size < 8 or units < 2 or bands < 2:
        raise ConfigError(f"map: needs --size ≥ 8, --units ≥ 2 and --bands ≥ 2 (got {size}, {units}, {bands})")
    if seed < 0:
        raise ConfigError(f"map: --seed must be ≥ 0 (got {seed})")
    if 3 * units > size * size:
        raise ConfigError(f"map: --units {units} needs a larger --size (3 seed points per unit)")
    refuse_existing_file(out)
    study = mapping_study(RasterWorldConfig(size=size, n_units=units, n_bands=bands, seed=seed),
                          pretrain_steps=pretrain_steps, finetune_steps=finetune_steps, progress=progress)
    record = {"aekit_version": __version__, "settings": study["settings"], "methods": study["methods"]}
    write_all(out, [(PNG_NAME, lambda p: plot_maps(study["maps"], units, p, study["methods"])),
                    (JSON_NAME, lambda p: atomic_write_json(p, record))])
    return {**record, "json": str(out / JSON_NAME), "png": str(out / PNG_NAME)}
