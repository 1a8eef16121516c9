"""`aekit anomaly train` and `aekit anomaly score`: StackVAE-G on the seeded time-series world.

`train` fits a StackVAE-G with the one Trainer on the world's anomaly-free train split and saves it as an ordinary
aekit model directory whose provenance names the world (channels, length, seed), so `score` can rebuild the same
world and score its test split. `score` computes everything before it writes anomaly.json and anomaly.png, so a
bad model directory leaves no output behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import ConfigError, FormatError
from ..fileio import atomic_write_json, refuse_existing_file, require_fresh_directory
from .outputs import write_all

__all__ = ["JSON_NAME", "PNG_NAME", "run_anomaly_score", "run_anomaly_train"]

JSON_NAME, PNG_NAME = "anomaly.json", "anomaly.png"


def _world(channels: int, length: int, seed: int):
    from ..worlds.timeseries import make_timeseries_world

    return make_timeseries_world(channels, length, seed)


def run_anomaly_train(out: str | Path, *, channels: int = 12, length: int = 6000, seed: int = 0, steps: int = 1000,
                      window: int = 32, progress: bool = True) -> dict[str, Any]:
    """Train on the world's train split and save the model into `out` (a new or empty directory)."""
    from ..analysis.anomaly import train_stackvae

    out = Path(out)
    if steps < 1 or seed < 0:
        raise ConfigError(f"anomaly train: --steps must be ≥ 1 and --seed ≥ 0 (got {steps}, {seed})")
    if length < 2 * window:
        raise ConfigError(f"anomaly train: --length must be ≥ {2 * window} (got {length})")
    require_fresh_directory(out, "the model directory")
    world = _world(channels, length, seed)
    model = train_stackvae(world, window=window, steps=steps, seed=seed, progress=progress)
    model.provenance = {"world": "timeseries", "channels": channels, "length": length, "seed": seed, "steps": steps}
    model.save(out)  # atomic: the directory appears only complete
    return {"out": str(out), "channels": channels, "length": length, "seed": seed, "steps": steps}


def run_anomaly_score(model_dir: str | Path, out: str | Path = "anomaly-out") -> dict[str, Any]:
    """Score the test split of the world the model was trained on; write anomaly.json and anomaly.png into `out`."""
    from ..analysis.anomaly import stackvae_metrics
    from ..models import StackVAE, load_model
    from ..report.anomaly_plot import plot_anomaly

    out = Path(out)
    refuse_existing_file(out)
    model = load_model(model_dir)
    prov = model.provenance
    if not isinstance(model, StackVAE) or prov.get("world") != "timeseries":
        raise FormatError(f"{model_dir}: not a model written by `aekit anomaly train` (kind {model.kind!r})")
    try:
        world = _world(int(prov["channels"]), int(prov["length"]), int(prov["seed"]))
    except (KeyError, TypeError, ValueError):
        raise FormatError(f"{model_dir}: config.json provenance lacks the world's channels/length/seed") from None
    model.eval()
    metrics, scores = stackvae_metrics(model, world)
    record = {"aekit_version": __version__, "model_dir": str(model_dir),
              "world": {k: prov[k] for k in ("channels", "length", "seed")}, "steps": prov.get("steps"),
              "anomaly_fraction": float(world.labels.mean()), **metrics}
    title = (f"StackVAE-G: F1 {metrics['f1']:.3f}, PA-F1 {metrics['pa_f1']:.3f}, AUROC {metrics['auroc']:.3f}, "
             f"graph AUROC {metrics['graph_auroc']:.3f}")
    write_all(out, [(PNG_NAME, lambda p: plot_anomaly(world.test, scores, world.labels, p, title=title)),
                    (JSON_NAME, lambda p: atomic_write_json(p, record))])
    return {**record, "json": str(out / JSON_NAME), "png": str(out / PNG_NAME)}
