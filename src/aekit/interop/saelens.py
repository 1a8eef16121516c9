"""SAELens directories (`cfg.json` + `sae_weights.safetensors`): load them as aekit SAEs, export aekit SAEs.

Formats matched (from SAELens' own save/load code):
- legacy layout, SAELens 3.x–5.x: flat cfg.json with `architecture` ("standard" | "gated" | "jumprelu" |
  "topk"), `hook_name` (older: `hook_point`), `activation_fn_str` (or `activation_fn`) with
  `activation_fn_kwargs` ({"k": ...} for TopK, also on "standard"), `apply_b_dec_to_input`,
  `finetuning_scaling_factor` (tensor `finetuning_scaling_factor`, older `scaling_factor`, multiplies the
  codes before decoding), `normalize_activations` (string or, older, a boolean);
- 6.x layout: the same tensors; per-architecture fields (`k`, `rescale_acts_by_decoder_norm` for "topk",
  `d_out` for "transcoder" / "jumprelu_transcoder") and a `metadata` object holding `model_name`,
  `hook_name`, `sae_lens_version`, ...; `reshape_activations`.
Tensors: `W_enc` (d_in, d_sae), `b_enc` (d_sae), `W_dec` (d_sae, d_out), `b_dec` (d_out); "jumprelu" adds
`threshold` (older training checkpoints: `log_threshold`); "gated" has `b_gate`, `r_mag`, `b_mag` and no
`b_enc`. Forward passes, with x̃ = x − b_dec when `apply_b_dec_to_input` else x:
  standard   f = ReLU(x̃ W_enc + b_enc)
  topk       h = x̃ W_enc + b_enc (× ‖W_dec_i‖ when rescale_acts_by_decoder_norm); f = ReLU(TopK_k(h))
  jumprelu   h = x̃ W_enc + b_enc; f = ReLU(h) · 1[h > max(θ, 0)]
  gated      f = 1[x̃ W_enc + b_gate > 0] · ReLU(x̃ (W_enc ⊙ exp(r_mag)) + b_mag)
  decode     x̂ = f (÷ ‖W_dec_i‖ when rescaled) W_dec + b_dec
What cannot be represented is refused: skip transcoders, training checkpoints (batchtopk, matryoshka), TopK
variants other than ReLU(TopK), per-input normalisation (constant_norm_rescale, layer_norm) and
"expected_average_only_in" without the `activation_scaler.json` that holds its factor.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .._version import __version__
from ..errors import FormatError
from ..fileio import atomic_directory, atomic_write_json, atomic_write_safetensors, read_json
from ..models.base import Autoencoder
from ..models.sae import SparseAutoencoder
from ._common import (
    CFG_FILE,
    CfgReader,
    MappedSAE,
    build_sae,
    is_no_normalisation,
    read_cfg,
    read_tensors,
    refuse_leftovers,
    take,
)

WEIGHTS_FILE = "sae_weights.safetensors"
SCALER_FILE = "activation_scaler.json"
EXPORT_SAELENS_VERSION = "6.0.0"  # the cfg layout export_saelens writes (see export_saelens)

SUPPORTED = ("standard", "topk", "jumprelu", "gated", "transcoder", "jumprelu_transcoder")
_WHY_NOT = {
    "skip_transcoder": "its skip connection W_skip has no counterpart in an aekit SAE",
    "jumprelu_skip_transcoder": "its skip connection W_skip has no counterpart in an aekit SAE",
    "batchtopk": "it is a SAELens training checkpoint; save the inference SAE from SAELens (it becomes 'jumprelu')",
    "matryoshka_batchtopk": "it is a SAELens training checkpoint; save the inference SAE from SAELens "
    "(it becomes 'jumprelu')",
}


def load_saelens(directory: str | Path) -> SparseAutoencoder:
    """Load a SAELens SAE directory as an aekit SparseAutoencoder with identical codes and reconstructions."""
    directory, cfg_path, cfg = read_cfg(directory, "SAELens")
    metadata = cfg.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise FormatError(f"{cfg_path}: field 'metadata' must be a JSON object (got {metadata!r})")
    reader = CfgReader(cfg, cfg_path, fallback=metadata)
    version = reader.string("sae_lens_version")
    layout = "6.x" if version is not None and _major(version) >= 6 else "legacy (3.x-5.x)"

    architecture = reader.string("architecture", "standard")
    if architecture not in SUPPORTED:
        why = _WHY_NOT.get(architecture, f"aekit maps only {', '.join(SUPPORTED)}")
        raise reader.fail("architecture", f"is {architecture!r}, which aekit cannot load: {why}")
    transcoder = architecture.endswith("transcoder")
    base = architecture.removesuffix("_transcoder") if architecture != "transcoder" else "standard"
    activation, k = _activation(reader, base, layout)
    if activation == "topk":
        base = "topk"

    d_in, d_sae = reader.positive_int("d_in"), reader.positive_int("d_sae")
    d_out = reader.positive_int("d_out") if transcoder else d_in
    apply_b_dec = reader.flag("apply_b_dec_to_input", True)
    if transcoder and apply_b_dec:
        raise reader.fail("apply_b_dec_to_input", "must be false for a transcoder (b_dec lives in the output space)")
    scale = _input_scale(reader, directory, transcoder)
    rescale = base == "topk" and reader.flag("rescale_acts_by_decoder_norm", False)

    weights_path = directory / WEIGHTS_FILE
    tensors = read_tensors(weights_path)
    implied = f"cfg.json (d_in={d_in}, d_sae={d_sae}" + (f", d_out={d_out})" if transcoder else ")")
    W_enc = take(tensors, "W_enc", (d_in, d_sae), weights_path, implied).T.contiguous()  # aekit: (n, d_in)
    W_dec = take(tensors, "W_dec", (d_sae, d_out), weights_path, implied)
    b_dec = take(tensors, "b_dec", (d_out,), weights_path, implied)
    gate_name = "b_gate" if base == "gated" else "b_enc"
    b_enc = take(tensors, gate_name, (d_sae,), weights_path, implied)
    folds: list[str] = []
    threshold = r_mag = b_mag = None
    if base == "jumprelu":
        if "threshold" in tensors or "log_threshold" not in tensors:
            threshold = take(tensors, "threshold", (d_sae,), weights_path, implied)
        else:
            threshold = take(tensors, "log_threshold", (d_sae,), weights_path, implied).exp()
            folds.append("threshold = exp(log_threshold)")
        threshold = threshold.clamp_min(0.0)  # ReLU(h)·1[h > θ] equals h·1[h > max(θ, 0)]
    if base == "gated":  # aekit's magnitude path is exp(r)·(gate pre-activation) + b_mag: move b_gate out of it
        r_mag = take(tensors, "r_mag", (d_sae,), weights_path, implied)
        b_mag = take(tensors, "b_mag", (d_sae,), weights_path, implied) - r_mag.exp() * b_enc
    code_scale = _finetuning_scale(reader, tensors, d_sae, weights_path, implied)
    refuse_leftovers(tensors, weights_path, f"a SAELens {architecture!r} SAE")

    norms = W_dec.norm(dim=1).clamp_min(1e-8)  # of the stored decoder, as SAELens computes them
    if scale is not None:  # the SAE saw x·s and its output was divided by s
        W_enc, W_dec, b_dec = W_enc * scale, W_dec / scale, b_dec / scale
        folds.append(f"activation scaling factor {scale} folded into W_enc, W_dec, b_dec")
    if not transcoder and not apply_b_dec:  # aekit always subtracts b_dec: W(x − b_dec) + (b + W b_dec)
        b_enc = b_enc + W_enc @ b_dec
        folds.append("apply_b_dec_to_input=false folded into b_enc")
    if rescale:  # TopK on h·‖W_dec_i‖, decode with W_dec_i / ‖W_dec_i‖
        W_enc, b_enc, W_dec = W_enc * norms[:, None], b_enc * norms, W_dec / norms[:, None]
        folds.append("rescale_acts_by_decoder_norm folded into W_enc, b_enc, W_dec")
    if code_scale is not None:
        W_dec = W_dec * code_scale[:, None]
        folds.append("finetuning scaling factor folded into W_dec")

    provenance = _provenance(reader, directory, layout, architecture, apply_b_dec, folds)
    mapped = MappedSAE(
        {"standard": "relu"}.get(base, base), W_enc, b_enc, W_dec, b_dec, transcoder, k, threshold, r_mag, b_mag,
        provenance,
    )
    return build_sae(mapped, weights_path)


def _major(version: str) -> int:
    match = re.match(r"\s*(\d+)", version)
    return int(match.group(1)) if match else 0


def _activation(reader: CfgReader, base: str, layout: str) -> tuple[str, int | None]:
    """("relu" | "topk", k): the activation the cfg asks for, refusing contradictions and unknown functions.

    SAELens ≤5 chose the activation with activation_fn_str (TopK could sit on "standard"); SAELens 6 fixes
    it by architecture and ignores that key, so a 6.x file where the two disagree is ambiguous and refused.
    """
    default = "topk" if base == "topk" else "relu"
    name = reader.string("activation_fn_str") or reader.string("activation_fn") or default
    kwargs = reader.mapping("activation_fn_kwargs")
    if name not in ("relu", "topk"):
        raise reader.fail("activation_fn_str", f"is {name!r}; aekit reproduces only 'relu' and 'topk'")
    if name == "topk" and (base not in ("standard", "topk") or (base == "standard" and layout == "6.x")):
        raise reader.fail(
            "activation_fn_str",
            f"is 'topk' on a {reader.raw('architecture', 'standard')!r} SAE in a SAELens {layout} file; "
            "SAELens 6 would ignore it, so the intended forward pass is ambiguous",
        )
    if base == "topk" and name != "topk":
        raise reader.fail("activation_fn_str", f"is {name!r} but architecture 'topk' needs 'topk'")
    if name != "topk":
        return "relu", None
    extra = sorted(key for key, value in kwargs.items() if key != "k" and value not in (None, False))
    if extra:
        raise reader.fail("activation_fn_kwargs", f"sets {extra}, which change TopK in ways aekit does not reproduce")
    k_field, k_kwarg = reader.raw("k"), kwargs.get("k")
    if k_field is not None and k_kwarg is not None and k_field != k_kwarg:
        raise reader.fail("k", f"is {k_field!r} but activation_fn_kwargs.k is {k_kwarg!r}; they must agree")
    key = "k" if k_field is not None else "activation_fn_kwargs.k"
    k = k_field if k_field is not None else k_kwarg
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise reader.fail(key, f"must be a positive integer for a TopK SAE (got {k!r})")
    if k > reader.positive_int("d_sae"):
        raise reader.fail(key, f"is {k}, larger than d_sae")
    return "topk", k


def _input_scale(reader: CfgReader, directory: Path, transcoder: bool) -> float | None:
    """The constant the SAE's inputs were multiplied by (outputs divided by), or None.

    "expected_average_only_in" scales activations outside the SAE by a factor estimated from data; SAELens
    training checkpoints store it in activation_scaler.json. Other modes are refused.
    """
    mode = reader.raw("normalize_activations", "none")
    if is_no_normalisation(mode):
        return None
    if (mode is True or mode == "expected_average_only_in") and not transcoder:
        scaler_path = directory / SCALER_FILE
        if not scaler_path.is_file():
            raise reader.fail(
                "normalize_activations",
                f"is {mode!r} but the scaling factor is not stored here ({SCALER_FILE} is missing); fold it into "
                "the weights with SAELens (fold_activation_norm_scaling_factor) and save again",
            )
        factor = read_json(scaler_path, "SAELens activation scaler").get("scaling_factor")
        if isinstance(factor, bool) or not isinstance(factor, int | float) or not factor > 0:
            raise FormatError(f"{scaler_path}: field 'scaling_factor' must be a positive number (got {factor!r})")
        return float(factor)
    if transcoder:
        raise reader.fail("normalize_activations", f"is {mode!r}; how a transcoder's target was scaled is unknown")
    raise reader.fail(
        "normalize_activations",
        f"is {mode!r}, a per-input normalisation that a linear SAE cannot express; aekit cannot load this model",
    )


def _finetuning_scale(
    reader: CfgReader, tensors: dict[str, Tensor], d_sae: int, path: Path, implied: str
) -> Tensor | None:
    """SAELens ≤5 multiplied codes by a learned per-latent scale before decoding; all-ones files are common."""
    name = next((n for n in ("finetuning_scaling_factor", "scaling_factor") if n in tensors), None)
    if name is None:
        if reader.raw("finetuning_scaling_factor", False) is True:
            raise reader.fail("finetuning_scaling_factor", f"is true but {path.name} has no scaling factor tensor")
        return None
    scale = take(tensors, name, (d_sae,), path, implied)
    return None if bool((scale == 1).all()) else scale


def _provenance(
    reader: CfgReader, directory: Path, layout: str, architecture: str, apply_b_dec: bool, folds: list[str]
) -> dict[str, Any]:
    hook = reader.string("hook_name") or reader.string("hook_point")
    provenance: dict[str, Any] = {
        "source_format": "saelens",
        "source_layout": layout,
        "source_path": str(directory.resolve()),
        "source_architecture": architecture,
        "model": reader.string("model_name"),
        "hook": hook,
        "hook_convention": "TransformerLens",
        "apply_b_dec_to_input": apply_b_dec,
        "dtype": reader.raw("dtype"),
        "folded": folds,
    }
    for key in ("hook_name_out", "dataset_path", "context_size", "neuronpedia_id", "sae_lens_version"):
        if reader.raw(key) is not None:
            provenance[key] = reader.raw(key)
    head = reader.raw("hook_head_index", reader.raw("hook_point_head_index"))
    if head is not None:
        provenance["hook_head_index"] = head
    reshape = reader.raw("reshape_activations")
    if reshape == "hook_z" or (reshape is None and hook is not None and hook.endswith("_z")):
        provenance["input_layout"] = "hook_z: flatten (n_heads, d_head) to n_heads·d_head before encoding"
    elif reshape not in (None, "none"):
        raise reader.fail("reshape_activations", f"is {reshape!r}; aekit knows only 'none' and 'hook_z'")
    return provenance


# --- export -----------------------------------------------------------------------------------------------


def export_saelens(model: Autoencoder, directory: str | Path) -> Path:
    """Write `model` as a SAELens directory (cfg.json + sae_weights.safetensors), atomically.

    The cfg.json follows SAELens 6.x (architecture fields + `metadata` with sae_lens_version "6.0.0") and
    also carries the flat keys SAELens 5.x requires, so both load it. aekit architectures map to SAELens ones:
    relu → standard, topk → topk, jumprelu → jumprelu, gated → gated, batchtopk/matryoshka → jumprelu with
    their inference threshold (as SAELens saves its own BatchTopK SAEs); transcoders become "transcoder" /
    "jumprelu_transcoder". Like `save`, this first folds the input scale into the weights (outputs unchanged).
    """
    if not isinstance(model, SparseAutoencoder):
        raise FormatError(
            f"{directory}: only sparse autoencoders can be exported to SAELens (got {type(model).__name__})"
        )
    model.prepare_for_save()
    architecture, tensors = _saelens_tensors(model, Path(directory))
    cfg = _saelens_cfg(model, architecture)
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        atomic_write_safetensors(tmp / WEIGHTS_FILE, tensors)
        atomic_write_json(tmp / CFG_FILE, cfg)
    return directory


@torch.no_grad()
def _saelens_tensors(model: SparseAutoencoder, directory: Path) -> tuple[str, dict[str, Tensor]]:
    config = model.config
    arch = config.architecture
    f64 = {name: t.detach().to(torch.float64).cpu() for name, t in model.state_dict().items()}
    tensors = {"W_enc": f64["W_enc"].T, "W_dec": f64["W_dec"], "b_dec": f64["b_dec"]}
    if arch == "relu":
        name = "standard"
        tensors["b_enc"] = f64["b_enc"]
    elif arch == "topk":
        name = "topk"
        tensors["b_enc"] = f64["b_enc"]
    elif arch in ("jumprelu", "batchtopk", "matryoshka"):
        name = "jumprelu"
        threshold = f64["bottleneck.threshold"]
        if bool((threshold < 0).any()):
            why = "has not been estimated yet (train the model first)" if arch != "jumprelu" else "is negative"
            raise FormatError(f"{directory}: cannot export: the {arch} inference threshold {why}")
        tensors["b_enc"] = f64["b_enc"]
        tensors["threshold"] = threshold.expand(config.n_latents).clone()
    elif arch == "gated":
        name = "gated"
        r_mag = f64["bottleneck.r_mag"]
        tensors.update(b_gate=f64["b_enc"], r_mag=r_mag, b_mag=f64["bottleneck.b_mag"] + r_mag.exp() * f64["b_enc"])
    else:
        raise FormatError(f"{directory}: cannot export architecture {arch!r}: SAELens has no counterpart")
    if config.is_transcoder:
        if name not in ("standard", "jumprelu"):
            raise FormatError(
                f"{directory}: cannot export a {arch} transcoder: SAELens has only ReLU and JumpReLU transcoders"
            )
        name = "transcoder" if name == "standard" else "jumprelu_transcoder"
    return name, {key: t.to(torch.float32).contiguous() for key, t in tensors.items()}


def _saelens_cfg(model: SparseAutoencoder, architecture: str) -> dict[str, Any]:
    config, provenance = model.config, model.provenance
    model_name = provenance.get("model") or provenance.get("model_name") or ""
    hook = provenance.get("hook") or provenance.get("hook_name") or ""
    layer = re.search(r"(?:blocks|layers|h)\.(\d+)", str(hook))
    dataset = provenance.get("dataset_path") or provenance.get("dataset") or ""
    context_size = provenance.get("context_size")
    is_topk = architecture == "topk"
    transcoder = config.is_transcoder
    cfg: dict[str, Any] = {
        # SAELens 6.x fields
        "architecture": architecture,
        "d_in": config.d_in,
        "d_sae": config.n_latents,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": not transcoder,
        "normalize_activations": "none",
        "reshape_activations": "hook_z" if str(hook).endswith("_z") else "none",
        "metadata": {
            "sae_lens_version": EXPORT_SAELENS_VERSION,
            "model_name": model_name,
            "hook_name": hook,
            "hook_head_index": None,
            "prepend_bos": True,
            "context_size": context_size,
            "dataset_path": dataset,
            "exported_by": f"aekit {__version__}",
        },
        # flat keys SAELens 5.x requires (6.x ignores them)
        "model_name": model_name,
        "hook_name": hook,
        "hook_layer": int(layer.group(1)) if layer else 0,
        "hook_head_index": None,
        "activation_fn_str": "topk" if is_topk else "relu",
        "activation_fn_kwargs": {"k": config.k} if is_topk else {},
        "finetuning_scaling_factor": False,
        "context_size": context_size,
        "prepend_bos": True,
        "dataset_path": dataset,
        "dataset_trust_remote_code": False,
        "sae_lens_training_version": None,
        "neuronpedia_id": None,
        "model_from_pretrained_kwargs": {},
    }
    if is_topk:
        cfg.update(k=config.k, rescale_acts_by_decoder_norm=False)
    if transcoder:
        cfg["d_out"] = config.d_out
        if provenance.get("hook_name_out"):
            cfg["metadata"]["hook_name_out"] = provenance["hook_name_out"]
    return cfg
