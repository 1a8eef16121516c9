"""Interop with SAELens and sparsify: directories written here in their layouts, reference forward passes
written here from the documented formulas (plain torch, float64), and export → reload round trips."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from aekit import FormatError, SAEConfig, SparseAutoencoder, load_model
from aekit.interop import detect_format, export_saelens, load_any, load_foreign, load_saelens, load_sparsify

D_IN, N, D_OUT, K = 16, 48, 24, 5
TOL = 1e-6  # max |a − b| ≤ 1e-6 · max(1, max |b|): "equal to 1e-6" at float32's resolution for the tensor's scale
INPUT_SCALE = 1 / (2 * D_IN**0.5)


# --- writers in the foreign layouts (independent of aekit's file helpers) -----------------------------------
def write_dir(directory: Path, cfg: dict, tensors: dict, weights_name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cfg.json").write_text(json.dumps(cfg))
    save_file({name: t.contiguous() for name, t in tensors.items()}, str(directory / weights_name))
    return directory


def rand(g: torch.Generator, *shape: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(*shape, generator=g) * scale + shift


def saelens_tensors(arch: str, seed: int, d_out: int = D_IN) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = {
        "W_enc": rand(g, D_IN, N, scale=D_IN**-0.5),
        "W_dec": rand(g, N, d_out, scale=N**-0.5) * torch.rand(N, 1, generator=g).add(0.5),  # unequal row norms
        "b_dec": rand(g, d_out, scale=0.3),
    }
    if arch == "gated":
        t.update(b_gate=rand(g, N, scale=0.1), r_mag=rand(g, N, scale=0.3), b_mag=rand(g, N, scale=0.1))
    else:
        t["b_enc"] = rand(g, N, scale=0.1, shift=-0.05)
    if arch == "jumprelu":
        t["threshold"] = torch.rand(N, generator=g) * 0.5 - 0.1  # a few negative thresholds on purpose
    return t


# --- reference forward passes (SAELens docs / source formulas), float64 --------------------------------------
def topk_relu(h: torch.Tensor, k: int) -> torch.Tensor:
    top = h.topk(k, dim=-1)
    return torch.zeros_like(h).scatter(-1, top.indices, top.values.relu())


def saelens_reference(cfg: dict, t: dict, x: torch.Tensor, scale: float | None = None):
    t = {name: v.double() for name, v in t.items()}
    x = x.double() * (scale or 1.0)
    arch = cfg.get("architecture", "standard")
    act = cfg.get("activation_fn_str") or cfg.get("activation_fn") or ("topk" if arch == "topk" else "relu")
    k = cfg.get("k") or cfg.get("activation_fn_kwargs", {}).get("k")
    sae_in = x - t["b_dec"] if cfg.get("apply_b_dec_to_input", True) else x
    W_dec = t["W_dec"]
    if arch == "gated":
        active = (sae_in @ t["W_enc"] + t["b_gate"] > 0).double()
        f = active * torch.relu(sae_in @ (t["W_enc"] * t["r_mag"].exp()) + t["b_mag"])
    else:
        h = sae_in @ t["W_enc"] + t["b_enc"]
        if arch.startswith("jumprelu"):
            threshold = t["threshold"] if "threshold" in t else t["log_threshold"].exp()
            f = torch.relu(h) * (h > threshold.relu())
        elif act == "topk":
            if cfg.get("rescale_acts_by_decoder_norm"):
                h = h * W_dec.norm(dim=-1)
            f = topk_relu(h, k)
        else:
            f = torch.relu(h)
    decode_f = f / W_dec.norm(dim=-1) if cfg.get("rescale_acts_by_decoder_norm") else f
    if "scaling_factor" in t:
        decode_f = decode_f * t["scaling_factor"]
    out = decode_f @ W_dec + t["b_dec"]
    return f, out / (scale or 1.0)


def sparsify_reference(cfg: dict, t: dict, x: torch.Tensor):
    t = {name: v.double() for name, v in t.items()}
    x = x.double()
    sae_in = x if cfg.get("transcode") else x - t["b_dec"]
    pre = torch.relu(sae_in @ t["encoder.weight"].T + t["encoder.bias"])
    values, indices = pre.topk(cfg["k"], dim=-1)
    out = (values[..., None] * t["W_dec"][indices]).sum(-2) + t["b_dec"]
    return torch.zeros_like(pre).scatter(-1, indices, values), out


def aekit_forward(model: SparseAutoencoder, x: torch.Tensor):
    with torch.no_grad():
        codes = model.encode(x)
        return codes.to_dense(), model.decode(codes)


def assert_same(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape
    error = (actual.double() - expected.double()).abs().max().item()
    scale = max(1.0, expected.double().abs().max().item())
    assert error <= TOL * scale, f"max abs difference {error:.3g} exceeds {TOL:g} × {scale:.3g}"


def assert_matches(model, reference, x):
    codes, out = aekit_forward(model, x)
    ref_codes, ref_out = reference
    assert_same(codes, ref_codes)
    assert_same(out, ref_out)
    assert (ref_codes > 0).any() and (ref_codes == 0).any()  # the test exercises both regimes


# --- SAELens loading ---------------------------------------------------------------------------------------------
V6 = {"sae_lens_version": "6.3.0", "model_name": "gpt2", "hook_name": "blocks.3.hook_resid_pre",
      "hook_head_index": None}
LEGACY = {"model_name": "pythia-70m", "hook_point": "blocks.2.hook_mlp_out", "hook_point_layer": 2,
          "sae_lens_training_version": "3.4.0", "context_size": 128}

SAELENS_CASES = {
    "standard-6.x": ({"architecture": "standard", "metadata": V6}, "standard"),
    "standard-legacy-b_dec-not-applied-finetuning-scale": (
        {"architecture": "standard", "activation_fn_str": "relu", "apply_b_dec_to_input": False,
         "finetuning_scaling_factor": True, "normalize_activations": False, **LEGACY}, "standard"),
    "topk-6.x-rescaled-by-decoder-norm": (
        {"architecture": "topk", "k": K, "rescale_acts_by_decoder_norm": True, "metadata": V6}, "topk"),
    "topk-legacy-standard-with-topk-activation": (
        {"architecture": "standard", "activation_fn_str": "topk", "activation_fn_kwargs": {"k": K},
         "apply_b_dec_to_input": False, **LEGACY}, "topk"),
    "jumprelu-6.x-b_dec-not-applied": ({"architecture": "jumprelu", "apply_b_dec_to_input": False, "metadata": V6},
                                       "jumprelu"),
    "jumprelu-legacy-log-threshold": ({"architecture": "jumprelu", "activation_fn": "relu", **LEGACY}, "jumprelu"),
    "gated-6.x": ({"architecture": "gated", "metadata": V6}, "gated"),
    "gated-legacy-b_dec-not-applied": ({"architecture": "gated", "apply_b_dec_to_input": False, **LEGACY}, "gated"),
    "transcoder-6.x": ({"architecture": "transcoder", "d_out": D_OUT, "apply_b_dec_to_input": False,
                        "metadata": {**V6, "hook_name_out": "blocks.3.hook_mlp_out"}}, "standard"),
    "jumprelu_transcoder-6.x": ({"architecture": "jumprelu_transcoder", "d_out": D_OUT, "apply_b_dec_to_input": False,
                                 "metadata": V6}, "jumprelu"),
    "expected_average_only_in-with-scaler": ({"architecture": "standard", "normalize_activations":
                                              "expected_average_only_in", "metadata": V6}, "standard"),
    "topk-rescaled-with-scaler": ({"architecture": "topk", "k": K, "rescale_acts_by_decoder_norm": True,
                                   "normalize_activations": "expected_average_only_in", "metadata": V6}, "topk"),
}
EXPECTED_AEKIT_ARCH = {"standard": "relu", "topk": "topk", "jumprelu": "jumprelu", "gated": "gated"}


@pytest.mark.parametrize("case", list(SAELENS_CASES))
def test_saelens_directory_loads_with_identical_codes_and_reconstructions(case, tmp_path):
    cfg, tensor_arch = SAELENS_CASES[case]
    transcoder = "transcoder" in cfg["architecture"]
    cfg = {"d_in": D_IN, "d_sae": N, "dtype": "float32", **cfg}
    tensors = saelens_tensors(tensor_arch, seed=len(case), d_out=D_OUT if transcoder else D_IN)
    if "log-threshold" in case:
        tensors["log_threshold"] = tensors.pop("threshold").abs().add(0.02).log()
    if "finetuning-scale" in case:
        tensors["scaling_factor"] = torch.rand(N) + 0.5
    scale = None
    if "scaler" in case:
        scale = 2.5
        (tmp_path / "sae").mkdir()
        (tmp_path / "sae" / "activation_scaler.json").write_text(json.dumps({"scaling_factor": scale}))
    directory = write_dir(tmp_path / "sae", cfg, tensors, "sae_weights.safetensors")
    x = torch.randn(64, D_IN)

    model = load_saelens(directory)

    topk = cfg["architecture"] == "topk" or cfg.get("activation_fn_str") == "topk"
    assert model.config.architecture == ("topk" if topk else EXPECTED_AEKIT_ARCH[tensor_arch])
    assert model.config.d_out == (D_OUT if transcoder else None)
    assert_matches(model, saelens_reference(cfg, tensors, x, scale), x)
    prov = model.provenance
    assert prov["source_format"] == "saelens"
    assert prov["hook"] in ("blocks.3.hook_resid_pre", "blocks.2.hook_mlp_out")
    assert prov["model"] in ("gpt2", "pythia-70m")
    assert prov["source_layout"] == ("6.x" if "metadata" in cfg else "legacy (3.x-5.x)")
    assert load_any(directory).config == model.config and detect_format(directory) == "saelens"


# --- sparsify loading --------------------------------------------------------------------------------------------
def sparsify_dir(tmp_path: Path, transcode: bool, dtype: torch.dtype = torch.float32, d_out: int = D_IN) -> tuple:
    g = torch.Generator().manual_seed(0)
    cfg = {"activation": "topk", "expansion_factor": 3, "normalize_decoder": True, "num_latents": 0, "k": K,
           "multi_topk": False, "skip_connection": False, "transcode": transcode, "d_in": D_IN}
    tensors = {
        "encoder.weight": rand(g, N, D_IN, scale=D_IN**-0.5),
        "encoder.bias": rand(g, N, scale=0.1),
        "W_dec": rand(g, N, d_out, scale=N**-0.5),
        "b_dec": rand(g, d_out, scale=0.3),
    }
    tensors = {name: t.to(dtype) for name, t in tensors.items()}
    run = tmp_path / "run"
    run.mkdir(parents=True, exist_ok=True)
    run_config = {"model": "EleutherAI/pythia-160m", "dataset": "pile", "ctx_len": 2048}
    (run / "config.json").write_text(json.dumps(run_config))
    directory = write_dir(run / "layers.6.mlp", cfg, tensors, "sae.safetensors")
    return directory, cfg, tensors


@pytest.mark.parametrize("transcode,dtype,d_out", [
    (False, torch.float32, D_IN), (False, torch.bfloat16, D_IN),
    (True, torch.float32, D_IN),  # sparsify's own transcoders predict an output of the input's width
    (True, torch.float32, D_OUT),  # a wider output, as the format allows
])
def test_sparsify_directory_loads_with_identical_codes_and_reconstructions(transcode, dtype, d_out, tmp_path):
    directory, cfg, tensors = sparsify_dir(tmp_path, transcode, dtype, d_out)
    x = torch.randn(64, D_IN)

    model = load_sparsify(directory)

    assert model.config.architecture == "topk" and model.config.k == K and model.config.n_latents == N
    assert model.config.d_out == (d_out if transcode else None)
    assert_matches(model, sparsify_reference(cfg, tensors, x), x)
    assert model.provenance["source_format"] == "sparsify"
    assert model.provenance["hook"] == "layers.6.mlp"
    assert model.provenance["model"] == "EleutherAI/pythia-160m"
    assert detect_format(directory) == "sparsify" and isinstance(load_foreign(directory), SparseAutoencoder)


# --- export → reload ---------------------------------------------------------------------------------------------
def trained_looking_model(arch: str, transcoder: bool = False, seed: int = 0) -> SparseAutoencoder:
    """An aekit SAE with non-trivial biases, thresholds and input/target scales (as after training)."""
    config = SAEConfig(d_in=D_IN, n_latents=N, architecture=arch, k=K, d_out=D_OUT if transcoder else None)
    model = SparseAutoencoder(config, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        model.W_enc.mul_(0.8)
        model.b_enc.copy_(rand(g, N, scale=0.1, shift=-0.05))
        model.b_dec.copy_(rand(g, model.config.target_dim, scale=0.3))
        model.input_scale.fill_(INPUT_SCALE)  # as training sets it: E‖s·x‖² = 1 for x = 2·N(0, I)
        model.target_scale.fill_(0.2 if transcoder else INPUT_SCALE)
        if arch == "jumprelu":
            model.bottleneck.threshold.copy_(torch.rand(N, generator=g) * 0.3)
        if arch in ("batchtopk", "matryoshka"):
            model.bottleneck.threshold.fill_(0.2)
        if arch == "gated":
            model.bottleneck.r_mag.copy_(rand(g, N, scale=0.3))
            model.bottleneck.b_mag.copy_(rand(g, N, scale=0.1))
    return model.eval()


EXPORT_CASES = [("relu", False, "standard"), ("topk", False, "topk"), ("jumprelu", False, "jumprelu"),
                ("gated", False, "gated"), ("batchtopk", False, "jumprelu"), ("relu", True, "transcoder"),
                ("jumprelu", True, "jumprelu_transcoder")]
SAELENS_STATE = {"standard": {"W_enc", "b_enc", "W_dec", "b_dec"}, "topk": {"W_enc", "b_enc", "W_dec", "b_dec"},
                 "jumprelu": {"W_enc", "b_enc", "W_dec", "b_dec", "threshold"},
                 "gated": {"W_enc", "b_gate", "r_mag", "b_mag", "W_dec", "b_dec"}}


@pytest.mark.parametrize("arch,transcoder,saelens_arch", EXPORT_CASES)
def test_export_saelens_round_trip_gives_same_reconstructions(arch, transcoder, saelens_arch, tmp_path):
    model = trained_looking_model(arch, transcoder)
    model.provenance.update(model="gpt2", hook="blocks.5.hook_resid_post", dataset="openwebtext")
    x = 2 * torch.randn(64, D_IN)
    _, before = aekit_forward(model, x)

    export_saelens(model, tmp_path / "exported")

    _, after_export = aekit_forward(model, x)  # export folds the scales; outputs must not move
    assert_same(after_export, before)
    cfg = json.loads((tmp_path / "exported" / "cfg.json").read_text())
    tensors = load_file(str(tmp_path / "exported" / "sae_weights.safetensors"))
    assert cfg["architecture"] == saelens_arch and cfg["d_sae"] == N and cfg["d_in"] == D_IN
    assert set(tensors) == SAELENS_STATE[saelens_arch.replace("_transcoder", "").replace("transcoder", "standard")]
    assert tensors["W_enc"].shape == (D_IN, N) and tensors["W_dec"].shape == (N, model.config.target_dim)
    assert cfg["metadata"]["hook_name"] == cfg["hook_name"] == "blocks.5.hook_resid_post" and cfg["hook_layer"] == 5
    for legacy_key in ("model_name", "activation_fn_str", "context_size", "dataset_path", "finetuning_scaling_factor"):
        assert legacy_key in cfg  # SAELens 5.x requires these at the top level
    # the exported files, run through the documented SAELens formulas, reproduce the model
    _, reference_out = saelens_reference(cfg, tensors, x)
    assert_same(reference_out, before)

    reloaded = load_saelens(tmp_path / "exported")

    codes, after = aekit_forward(reloaded, x)
    assert_same(after, before)
    assert_same(codes, aekit_forward(model, x)[0])
    assert reloaded.provenance["hook"] == "blocks.5.hook_resid_post" and reloaded.provenance["model"] == "gpt2"


def test_load_any_reads_aekit_saelens_and_sparsify_directories(tmp_path):
    model = trained_looking_model("topk")
    model.save(tmp_path / "aekit")
    export_saelens(model, tmp_path / "saelens")
    sparsify, _, _ = sparsify_dir(tmp_path, transcode=False)
    x = 2 * torch.randn(8, D_IN)

    loaded = {name: load_any(path) for name, path in
              [("aekit", tmp_path / "aekit"), ("saelens", tmp_path / "saelens"), ("sparsify", sparsify)]}

    assert [detect_format(p) for p in (tmp_path / "aekit", tmp_path / "saelens", sparsify)] == [
        "aekit", "saelens", "sparsify"]
    assert_same(aekit_forward(loaded["aekit"], x)[1], aekit_forward(load_model(tmp_path / "aekit"), x)[1])
    assert_same(aekit_forward(loaded["saelens"], x)[1], aekit_forward(model, x)[1])
    assert loaded["sparsify"].provenance["source_format"] == "sparsify"
    with pytest.raises(FormatError, match="one SAE per subdirectory.*layers.6.mlp"):
        load_any(tmp_path / "run")
    with pytest.raises(FormatError, match="aekit model directory"):
        load_foreign(tmp_path / "aekit")


# --- refusals ----------------------------------------------------------------------------------------------------
class _Boom:
    """Unpickling this creates a file: proof that a loader executed the pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def saelens_dir(tmp_path: Path, **cfg_changes) -> Path:
    cfg = {"architecture": "standard", "d_in": D_IN, "d_sae": N, "dtype": "float32", "metadata": V6, **cfg_changes}
    return write_dir(tmp_path / "sae", cfg, saelens_tensors("standard", 0), "sae_weights.safetensors")


def test_missing_cfg_json_is_refused_naming_the_file(tmp_path):
    directory = saelens_dir(tmp_path)
    (directory / "cfg.json").unlink()
    with pytest.raises(FormatError, match=r"cfg\.json.*not found"):
        load_saelens(directory)
    with pytest.raises(FormatError, match=r"cfg\.json.*not found"):
        load_any(directory)


def test_malformed_cfg_json_is_one_clear_sentence(tmp_path):
    directory = saelens_dir(tmp_path)
    (directory / "cfg.json").write_text("{not json")
    with pytest.raises(FormatError, match=r"cfg\.json: SAELens config \(cfg\.json\) is not valid JSON"):
        load_saelens(directory)


@pytest.mark.parametrize("changes,match", [
    ({"architecture": "matching_pursuit"}, r"field 'architecture' is 'matching_pursuit'.*aekit maps only"),
    ({"architecture": "skip_transcoder", "d_out": D_IN, "apply_b_dec_to_input": False}, "W_skip"),
    ({"architecture": "batchtopk"}, "training checkpoint"),
    ({"activation_fn_str": "tanh-relu"}, "'tanh-relu'"),
    ({"normalize_activations": "constant_norm_rescale"}, "per-input normalisation"),
    ({"normalize_activations": "expected_average_only_in"}, r"activation_scaler\.json is missing"),
    ({"d_sae": "many"}, r"field 'd_sae' must be a positive integer"),
    ({"activation_fn_str": "topk", "activation_fn_kwargs": {"k": K}}, "ambiguous"),  # 6.x ignores it on standard
    ({"architecture": "topk", "k": K, "activation_fn_kwargs": {"k": K + 1}}, "they must agree"),
])
def test_unrepresentable_or_invalid_saelens_configs_are_refused(changes, match, tmp_path):
    with pytest.raises(FormatError, match=match):
        load_saelens(saelens_dir(tmp_path, **changes))


def test_wrong_tensor_shape_is_refused_naming_tensor_and_shapes(tmp_path):
    directory = saelens_dir(tmp_path, d_sae=N + 1)
    with pytest.raises(FormatError, match=r"sae_weights\.safetensors: tensor 'W_enc' has shape \(16, 48\).*\(16, 49\)"):
        load_saelens(directory)


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_pickle_named_sae_weights_safetensors_is_refused_and_never_executed(writer, tmp_path):
    directory = saelens_dir(tmp_path)
    marker = tmp_path / "pwned"
    weights = directory / "sae_weights.safetensors"
    if writer == "pickle":
        weights.write_bytes(pickle.dumps(_Boom(marker)))
    else:
        torch.save({"W_enc": _Boom(marker)}, weights)
    with pytest.raises(FormatError, match="pickle"):
        load_saelens(directory)
    with pytest.raises(FormatError, match="pickle"):
        load_any(directory)
    assert not marker.exists()


def test_non_finite_weights_are_refused(tmp_path):
    directory = saelens_dir(tmp_path)
    tensors = saelens_tensors("standard", 0)
    tensors["b_dec"][3] = float("nan")
    save_file(tensors, str(directory / "sae_weights.safetensors"))
    with pytest.raises(FormatError, match="'b_dec' holds NaN"):
        load_saelens(directory)


@pytest.mark.parametrize("changes,extra_tensor,match", [
    ({"skip_connection": True}, None, "skip_connection"),
    ({"activation": "groupmax"}, None, "groupmax"),
    ({"embed_skip": True}, None, "field 'embed_skip' is set"),
    ({}, "W_skip", r"unexpected tensors \['W_skip'\]"),
])
def test_unrepresentable_sparsify_coders_are_refused(changes, extra_tensor, match, tmp_path):
    directory, cfg, tensors = sparsify_dir(tmp_path, transcode=False)
    (directory / "cfg.json").write_text(json.dumps({**cfg, **changes}))
    if extra_tensor:
        save_file({**tensors, extra_tensor: torch.zeros(D_IN, D_IN)}, str(directory / "sae.safetensors"))
    with pytest.raises(FormatError, match=match):
        load_sparsify(directory)


def test_export_refuses_what_saelens_cannot_hold(tmp_path):
    with pytest.raises(FormatError, match="SAELens has only ReLU and JumpReLU transcoders"):
        export_saelens(trained_looking_model("topk", transcoder=True), tmp_path / "a")
    untrained = SparseAutoencoder(SAEConfig(d_in=D_IN, n_latents=N, architecture="batchtopk", k=K), seed=0)
    with pytest.raises(FormatError, match="threshold has not been estimated"):
        export_saelens(untrained, tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
