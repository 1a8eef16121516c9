"""Interop: load SAEs saved by SAELens and by EleutherAI sparsify, export aekit SAEs to SAELens.

Every foreign SAE becomes an ordinary aekit `SparseAutoencoder` whose codes and reconstructions equal the
original forward pass (biases and scales are folded where the conventions differ); what cannot be expressed
exactly is refused with a `FormatError` naming the file and field. The model's `provenance` records the
origin (format, path, model, hook, folds applied). Weights are read with safetensors only, never unpickled.

    load_any(directory)       aekit model dir, SAELens dir or sparsify dir, detected by the files present
    load_foreign(directory)   SAELens or sparsify dir
    load_saelens / load_sparsify / export_saelens
"""

from __future__ import annotations

from pathlib import Path

from ..errors import FormatError
from ..models.base import CONFIG_FILE, WEIGHTS_FILE, Autoencoder, load_model
from ..models.sae import SparseAutoencoder
from . import saelens, sparsify
from .saelens import export_saelens, load_saelens
from .sparsify import load_sparsify

FORMATS = ("aekit", "saelens", "sparsify")


def detect_format(directory: str | Path) -> str:
    """"aekit", "saelens" or "sparsify", from the files in `directory`; a FormatError explains anything else."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FormatError(f"{directory}: model directory not found")
    has = {name for name in (CONFIG_FILE, WEIGHTS_FILE, saelens.CFG_FILE, saelens.WEIGHTS_FILE,
                             sparsify.WEIGHTS_FILE) if (directory / name).is_file()}
    if CONFIG_FILE in has and WEIGHTS_FILE in has:
        return "aekit"
    if saelens.WEIGHTS_FILE in has:
        return "saelens"  # a missing cfg.json is reported by the loader, naming the file
    if sparsify.WEIGHTS_FILE in has:
        return "sparsify"
    nested = sorted(p.name for p in directory.iterdir() if p.is_dir() and (p / saelens.CFG_FILE).is_file())
    if nested:
        shown = ", ".join(nested[:5]) + (", ..." if len(nested) > 5 else "")
        raise FormatError(
            f"{directory}: holds one SAE per subdirectory ({shown}); pass one of those subdirectories"
        )
    if CONFIG_FILE in has:
        raise FormatError(f"{directory / WEIGHTS_FILE}: file not found; the aekit model directory is incomplete")
    if saelens.CFG_FILE in has:
        raise FormatError(
            f"{directory}: has cfg.json but neither {saelens.WEIGHTS_FILE} (SAELens) nor {sparsify.WEIGHTS_FILE} "
            "(sparsify); the weights file is missing"
        )
    raise FormatError(
        f"{directory}: not a model directory (expected {CONFIG_FILE} + {WEIGHTS_FILE} for aekit, "
        f"{saelens.CFG_FILE} + {saelens.WEIGHTS_FILE} for SAELens, or {saelens.CFG_FILE} + "
        f"{sparsify.WEIGHTS_FILE} for sparsify)"
    )


def load_foreign(directory: str | Path) -> SparseAutoencoder:
    """Load a SAELens or sparsify directory, whichever it is."""
    kind = detect_format(directory)
    if kind == "aekit":
        raise FormatError(f"{directory}: is an aekit model directory; load it with aekit.load_model or load_any")
    return load_saelens(directory) if kind == "saelens" else load_sparsify(directory)


def load_any(directory: str | Path) -> Autoencoder:
    """Load an aekit model directory, a SAELens directory or a sparsify directory."""
    kind = detect_format(directory)
    if kind == "aekit":
        return load_model(directory)
    return load_foreign(directory)


__all__ = [
    "FORMATS",
    "detect_format",
    "export_saelens",
    "load_any",
    "load_foreign",
    "load_saelens",
    "load_sparsify",
]
