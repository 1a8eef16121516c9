"""`aekit cktgen`: specification-conditioned circuit generation with CktGen on the analogue-circuit world.

Builds the seeded world (distinct training circuits, held-out circuits whose specifications are the targets),
trains CktGen with the one Trainer, generates `samples` circuits per target and scores them with the baselines
(`aekit.analysis.cktgen`). Everything is validated and computed before cktgen.json, cktgen.png and model/ are
written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import ConfigError
from ..fileio import atomic_write_json, refuse_existing_file
from .outputs import write_all

__all__ = ["JSON_NAME", "MODEL_DIR", "PAPER", "PNG_NAME", "run_cktgen"]

JSON_NAME, PNG_NAME, MODEL_DIR = "cktgen.json", "cktgen.png", "model"
SHOWN_TARGETS = 5  # targets whose designs are listed in the JSON and drawn in the PNG
PAPER = ("Hou et al., CktGen: Automated Analog Circuit Design with Generative Artificial Intelligence "
         "(arXiv 2410.00995)")


def _examples(proposals: np.ndarray, targets: np.ndarray, samples: int, keys: set[bytes],
              tolerance: float) -> list[dict[str, Any]]:
    """The designs of the first targets: circuit, achieved specification (None when invalid), verdicts."""
    from ..worlds.circuits_analog import circuit_text, specifications

    shown = []
    for i in range(min(SHOWN_TARGETS, len(targets))):
        designs = []
        for row in proposals[i * samples : (i + 1) * samples]:
            spec = specifications(row)[0]
            valid = not np.isnan(spec).any()
            designs.append({"circuit": circuit_text(row), "tokens": row.tolist(),
                            "achieved": spec.tolist() if valid else None,
                            "meets": valid and bool((np.abs(spec / targets[i] - 1) <= tolerance).all()),
                            "novel": valid and row.tobytes() not in keys})
        shown.append({"target": targets[i].tolist(), "designs": designs})
    return shown


def run_cktgen(out: str | Path = "cktgen-out", *, seed: int = 0, steps: int = 1500, n_train: int = 4000,
               targets: int = 200, samples: int = 5, tolerance: float = 0.1, device: str | None = None,
               progress: bool = True) -> dict[str, Any]:
    """Train CktGen on `n_train` circuits, generate `samples` designs for each of `targets` held-out specifications;
    write cktgen.json, cktgen.png and model/ into `out`."""
    from ..analysis.cktgen import BATCH_SIZE, cktgen_study, train_cktgen
    from ..analysis.image_models import trainer_device
    from ..report.cktgen_plot import plot_cktgen
    from ..worlds.circuits_analog import make_circuit_world, specifications

    out = Path(out)
    if steps < 1 or seed < 0 or samples < 1 or targets < 1:
        raise ConfigError(f"cktgen: --steps, --targets and --samples must be ≥ 1 and --seed ≥ 0 (got {steps}, "
                          f"{targets}, {samples}, {seed})")
    if not BATCH_SIZE <= n_train <= 20000:
        raise ConfigError(f"cktgen: --n-train must be between {BATCH_SIZE} (one batch) and 20000 (got {n_train})")
    if not (math.isfinite(tolerance) and 0 < tolerance < 1):
        raise ConfigError(f"cktgen: --tolerance must be a fraction in (0, 1) (got {tolerance})")
    train_device = trainer_device(device, "cktgen")
    refuse_existing_file(out)
    world = make_circuit_world(n_train, targets, seed)
    model = train_cktgen(world, steps=steps, seed=seed, device=train_device, progress=progress)
    model.provenance = {"world": "circuits_analog", "n_train": n_train, "seed": seed, "steps": steps}
    study, proposals = cktgen_study(model, world, samples=samples, seed=seed, tolerance=tolerance)
    repeated = np.repeat(world.test_specs, samples, 0)
    keys = world.train_keys()
    record = {"aekit_version": __version__, "paper": PAPER, "world": "circuits_analog",
              "settings": {"seed": seed, "steps": steps, "n_train": n_train, "targets": targets, "samples": samples,
                           "tolerance": tolerance},
              **study, "examples": _examples(proposals["CktGen"], world.test_specs, samples, keys, tolerance)}
    achieved = {name: specifications(proposals[name]) for name in ("CktGen", "nearest training circuit")}
    m = study["methods"]["CktGen"]
    novelty = "–" if m["novelty"] is None else f"{m['novelty']:.3f}"
    title = (f"CktGen: validity {m['validity']:.3f}, novelty {novelty}, Spec-Acc {m['spec_acc']:.3f} "
             f"(±{tolerance:.0%}), novel and within tolerance {m['novel_spec_acc']:.3f}")
    write_all(out, [(PNG_NAME, lambda p: plot_cktgen(repeated, achieved, record["examples"], p, tolerance, title)),
                    (MODEL_DIR, model.save),
                    (JSON_NAME, lambda p: atomic_write_json(p, record))])
    return {**record, "json": str(out / JSON_NAME), "png": str(out / PNG_NAME), "model": str(out / MODEL_DIR)}
