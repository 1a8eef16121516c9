"""Shared pieces of the foreign-format loaders: reading a cfg.json field with a clear error, checking tensors,
and building an aekit SparseAutoencoder from weights already mapped onto aekit's conventions.

aekit's SAE computes, for an autoencoder, pre = W_enc (x − b_dec) + b_enc and for a transcoder
pre = W_enc x + b_enc; codes come from the bottleneck; x̂ = codes · W_dec + b_dec. Every foreign format is
rewritten into exactly this form (folding biases and scales where the foreign forward pass differs), so the
loaded model runs aekit's own code path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import FormatError
from ..fileio import load_safetensors, read_json
from ..models.sae import SAEConfig, SparseAutoencoder

_FALSY_NORMALISATION = (None, False, "none", "None", "")


class CfgReader:
    """Typed access to a foreign cfg.json that names the file and field in every error."""

    def __init__(self, cfg: dict[str, Any], path: Path, fallback: dict[str, Any] | None = None):
        self.cfg = cfg
        self.path = path
        self.fallback = fallback or {}  # e.g. SAELens 6's "metadata" block, consulted second

    def raw(self, key: str, default: Any = None) -> Any:
        if key in self.cfg and self.cfg[key] is not None:
            return self.cfg[key]
        return self.fallback.get(key, default)

    def fail(self, key: str, message: str) -> FormatError:
        return FormatError(f"{self.path}: field {key!r} {message}")

    def positive_int(self, key: str, default: Any = None) -> int:
        value = self.raw(key, default)
        if value is None:
            raise self.fail(key, "is missing; it is required to build the model")
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value) or value < 1:
            raise self.fail(key, f"must be a positive integer (got {value!r})")
        return int(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false (got {value!r})")
        return value

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.raw(key, default)
        if value is not None and not isinstance(value, str):
            raise self.fail(key, f"must be a string (got {value!r})")
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.raw(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a JSON object (got {value!r})")
        return value


CFG_FILE = "cfg.json"


def read_cfg(directory: str | Path, library: str) -> tuple[Path, Path, dict[str, Any]]:
    """(directory, cfg.json path, its content) of a foreign SAE directory, or a FormatError naming it."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FormatError(f"{directory}: {library} directory not found")
    cfg_path = directory / CFG_FILE
    return directory, cfg_path, read_json(cfg_path, f"{library} config ({CFG_FILE})")


def read_tensors(path: Path) -> dict[str, Tensor]:
    """Load a safetensors file (refusing pickles before parsing) and refuse non-finite values."""
    tensors = load_safetensors(path)
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise FormatError(f"{path}: tensor {name!r} holds NaN or Inf values; the file is corrupt")
    return tensors


def take(tensors: dict[str, Tensor], name: str, shape: tuple[int, ...], path: Path, implied_by: str) -> Tensor:
    """Pop a required tensor, check its shape and return it as float64 (folds are done in double precision)."""
    if name not in tensors:
        raise FormatError(f"{path}: tensor {name!r} is missing (found {sorted(tensors)}); the file is incomplete")
    tensor = tensors.pop(name)
    if tuple(tensor.shape) != shape:
        raise FormatError(
            f"{path}: tensor {name!r} has shape {tuple(tensor.shape)} but {implied_by} implies {shape}; "
            "the weights and config do not belong together"
        )
    return tensor.detach().to(torch.float64)


def refuse_leftovers(tensors: dict[str, Tensor], path: Path, what: str) -> None:
    """Unknown tensors mean a forward pass aekit does not reproduce; refuse rather than ignore them."""
    if tensors:
        raise FormatError(
            f"{path}: unexpected tensors {sorted(tensors)} for {what}; aekit cannot reproduce what they do, "
            "so it refuses to load the model rather than give different outputs"
        )


def is_no_normalisation(value: Any) -> bool:
    return any(value is v or value == v for v in _FALSY_NORMALISATION)


@dataclass
class MappedSAE:
    """Weights in aekit's conventions (float64) plus the settings that pick the bottleneck."""

    architecture: str  # relu | topk | jumprelu | gated
    W_enc: Tensor  # (n, d_in)
    b_enc: Tensor  # (n,)
    W_dec: Tensor  # (n, d_out)
    b_dec: Tensor  # (d_out,)
    transcoder: bool = False
    k: int | None = None
    threshold: Tensor | None = None  # jumprelu (n,)
    r_mag: Tensor | None = None  # gated (n,)
    b_mag: Tensor | None = None  # gated (n,), aekit convention: exp(r)·pre + b_mag
    provenance: dict[str, Any] = field(default_factory=dict)


def build_sae(mapped: MappedSAE, where: Path) -> SparseAutoencoder:
    """Create the aekit model (float32, evaluation mode) holding exactly the mapped weights."""
    n, d_in = mapped.W_enc.shape
    d_out = mapped.W_dec.shape[1]
    options: dict[str, Any] = {"d_in": d_in, "n_latents": n, "architecture": mapped.architecture}
    options["normalize_input"] = False  # the weights already map raw activations to raw reconstructions
    if mapped.architecture == "topk":
        options["k"] = mapped.k
    if mapped.architecture == "relu":
        options["l1_decoder_weighted"] = True  # foreign relu SAEs do not keep unit-norm decoder rows
    if mapped.transcoder:
        options["d_out"] = d_out
    model = SparseAutoencoder(SAEConfig(**options))
    tensors = {
        "W_enc": mapped.W_enc,
        "b_enc": mapped.b_enc,
        "W_dec": mapped.W_dec,
        "b_dec": mapped.b_dec,
        "input_scale": torch.ones((), dtype=torch.float64),
        "target_scale": torch.ones((), dtype=torch.float64),
    }
    if mapped.threshold is not None:
        tensors["bottleneck.threshold"] = mapped.threshold
    if mapped.r_mag is not None:
        tensors["bottleneck.r_mag"] = mapped.r_mag
        tensors["bottleneck.b_mag"] = mapped.b_mag
    tensors = {name: t.to(torch.float32) for name, t in tensors.items()}
    for name, tensor in tensors.items():
        if not bool(torch.isfinite(tensor).all()):
            raise FormatError(
                f"{where}: converting the weights gave non-finite values in {name!r} "
                "(float32 overflow); the model cannot be represented in aekit"
            )
    model.load_weights(tensors, str(where))
    model.provenance = dict(mapped.provenance)
    model.eval()
    return model
