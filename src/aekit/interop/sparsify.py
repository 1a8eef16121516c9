"""EleutherAI sparsify directories (`cfg.json` + `sae.safetensors`) loaded as aekit TopK SAEs / transcoders.

Format matched (sparsify 0.x–1.x `SparseCoder.save_to_disk`, and its predecessor EleutherAI/sae): cfg.json is
the coder config plus `d_in` — `activation` ("topk"; "groupmax" is refused), `k`, `num_latents` (0 means
`d_in · expansion_factor`), `expansion_factor`, `normalize_decoder` and `multi_topk` (training only),
`transcode`, `skip_connection`. Tensors: `encoder.weight` (num_latents, d_in), `encoder.bias`
(num_latents), `W_dec` (num_latents, d_out), `b_dec` (d_out), `W_skip` when skip_connection is set (refused:
an aekit SAE has no skip path). Forward pass: x̃ = x − b_dec for an autoencoder, x for a transcoder;
f = TopK_k(ReLU(x̃ Wᵀ + b)); ŷ = Σ f_i W_dec[i] + b_dec. TopK of ReLU and ReLU of TopK give the same codes,
so this is aekit's "topk" bottleneck exactly. A run directory holds one such directory per hookpoint, named
after the hookpoint, and the run's `config.json` (with `model`, `dataset`) one level up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import FormatError
from ..fileio import read_json
from ..models.sae import SparseAutoencoder
from ._common import CfgReader, MappedSAE, build_sae, read_cfg, read_tensors, refuse_leftovers, take

WEIGHTS_FILE = "sae.safetensors"

# Settings whose values do not change the inference forward pass (defaults of other keys must be falsy).
_HARMLESS = {"d_in", "k", "num_latents", "expansion_factor", "normalize_decoder", "multi_topk", "transcode",
             "activation", "skip_connection", "signed"}
_UNSET = (None, False, 0, "", [], {})


def load_sparsify(directory: str | Path) -> SparseAutoencoder:
    """Load a sparsify sparse coder directory as an aekit SparseAutoencoder (a transcoder when `transcode`)."""
    directory, cfg_path, cfg = read_cfg(directory, "sparsify")
    reader = CfgReader(cfg, cfg_path)
    activation = reader.string("activation", "topk")
    if activation != "topk":
        raise reader.fail("activation", f"is {activation!r}; aekit reproduces only sparsify's 'topk' activation")
    if reader.flag("skip_connection", False):
        raise reader.fail("skip_connection", "is true: the W_skip path has no counterpart in an aekit SAE")
    if reader.flag("signed", False):
        raise reader.fail("signed", "is true: signed TopK codes have no counterpart in an aekit SAE")
    unknown = sorted(key for key, value in cfg.items() if key not in _HARMLESS and value not in _UNSET)
    if unknown:
        raise reader.fail(
            unknown[0], f"is set ({cfg[unknown[0]]!r}) but aekit does not know what it changes; refusing to guess"
        )
    transcode = reader.flag("transcode", False)

    weights_path = directory / WEIGHTS_FILE
    tensors = read_tensors(weights_path)
    d_in = reader.positive_int("d_in")
    n = reader.raw("num_latents", 0)
    n = reader.positive_int("num_latents") if n else d_in * reader.positive_int("expansion_factor")
    k = reader.positive_int("k")
    if k > n:
        raise reader.fail("k", f"is {k}, larger than the number of latents ({n})")
    if "W_dec" not in tensors:
        raise FormatError(f"{weights_path}: tensor 'W_dec' is missing; a coder saved without its decoder cannot "
                          "reconstruct anything")
    d_out = int(tensors["W_dec"].shape[-1]) if transcode else d_in
    implied = f"cfg.json (d_in={d_in}, num_latents={n}" + (")" if not transcode else f", d_out={d_out} from W_dec)")
    W_enc = take(tensors, "encoder.weight", (n, d_in), weights_path, implied)
    b_enc = take(tensors, "encoder.bias", (n,), weights_path, implied)
    W_dec = take(tensors, "W_dec", (n, d_out), weights_path, implied)
    b_dec = take(tensors, "b_dec", (d_out,), weights_path, implied)
    refuse_leftovers(tensors, weights_path, "a sparsify coder without skip connection")

    mapped = MappedSAE("topk", W_enc, b_enc, W_dec, b_dec, transcoder=transcode, k=k)
    mapped.provenance = _provenance(directory, reader, transcode)
    return build_sae(mapped, weights_path)


def _provenance(directory: Path, reader: CfgReader, transcode: bool) -> dict[str, Any]:
    provenance: dict[str, Any] = {
        "source_format": "sparsify",
        "source_path": str(directory.resolve()),
        "hook": directory.resolve().name,
        "hook_convention": "sparsify hookpoint (Hugging Face module path)",
        "transcode": transcode,
        "model": None,
    }
    run_config = directory.parent / "config.json"  # written by sparsify's trainer next to the coder folders
    if run_config.is_file():
        try:
            run = read_json(run_config, "sparsify run config")
        except FormatError:
            run = {}  # provenance only: an unreadable run config must not block loading the weights
        for source, target in (("model", "model"), ("dataset", "dataset"), ("ctx_len", "context_size")):
            if isinstance(run.get(source), str | int):
                provenance[target] = run[source]
    return provenance
