"""Spliced evaluation on tiny random GPT-2 and Llama models, and the pure metric functions by hand."""

import copy
import math

import pytest
import torch

transformers = pytest.importorskip("transformers")

from aekit.analysis.splicing import hook_width, replace_hook, spliced_eval  # noqa: E402
from aekit.data.hooks import model_layout  # noqa: E402
from aekit.errors import ShapeError  # noqa: E402
from aekit.metrics.lm_loss import loss_recovered, spliced_metrics  # noqa: E402
from aekit.models.sae import SAEConfig, SparseAutoencoder  # noqa: E402

from .tiny_lms import tiny_lm as _model  # noqa: E402

_F64: dict[str, torch.nn.Module] = {}  # float64 copies of the tiny models
POINTS = ["hook_resid_pre", "hook_resid_post", "hook_mlp_out", "hook_attn_out", "attn.hook_z", "attn.hook_result"]


def _inputs():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, 100, (3, 9), generator=g)
    ids[:, 0] = 1
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # right padding in one row
    ids[1, 6:] = 0
    return ids, mask


def _identity_sae(d: int) -> SparseAutoencoder:
    sae = SparseAutoencoder(SAEConfig(d_in=d, n_latents=2 * d, architecture="relu", normalize_input=False), seed=0)
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye]))
        sae.W_dec.copy_(torch.cat([eye, -eye]))
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae.eval()


def _random_sae(d: int) -> SparseAutoencoder:
    return SparseAutoencoder(SAEConfig(d_in=d, n_latents=2 * d, architecture="topk", k=4), seed=3).eval()


def _hook_counts(model) -> list[int]:
    return [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()]


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
@pytest.mark.parametrize("point", POINTS)
def test_identity_sae_recovers_everything(kind, point):
    # float64 so that the tiny random model's small CE gaps are not swamped by float32 rounding of Σ_h results
    if kind not in _F64:
        _F64[kind] = copy.deepcopy(_model(kind)).double()
    model = _F64[kind]
    hook = f"blocks.0.{point}"
    before = _hook_counts(model)
    ids, mask = _inputs()
    d = hook_width(model_layout(model), point)
    out = spliced_eval(model, _identity_sae(d).double(), hook, ids, mask, batch_size=2)
    assert _hook_counts(model) == before
    assert out["n_tokens"] == 2 * 8 + 5
    assert abs(out["ce_recovered_zero"] - 1) < 1e-4
    assert abs(out["ce_recovered_mean"] - 1) < 1e-4
    assert abs(out["delta_loss"]) < 1e-4
    assert abs(out["kl_sae"]) < 1e-5
    assert out["kl_zero"] > 0 and out["kl_mean"] > 0
    assert out["ce_zero"] != out["ce_clean"]


def _zeroed_copy(model, kind: str, point: str):
    """An independent zero ablation: a copy of the model whose weights make the hook's activation zero."""
    model = copy.deepcopy(model)
    layout = model_layout(model)
    with torch.no_grad():
        if point == "hook_mlp_out":
            down = layout.mlp(0).c_proj if kind == "gpt2" else layout.mlp(0).down_proj
            down.weight.zero_()
            if down.bias is not None:
                down.bias.zero_()
        elif point in ("hook_attn_out",):
            layout.out_proj(0).weight.zero_()
            if layout.out_proj(0).bias is not None:
                layout.out_proj(0).bias.zero_()
        elif point in ("attn.hook_z", "attn.hook_result"):  # z = 0 or every head's result 0: only the bias is left
            layout.out_proj(0).weight.zero_()
    return model


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
@pytest.mark.parametrize("point", POINTS)
def test_zero_ablation_matches_hand_zeroing(kind, point):
    model = _model(kind)
    hook = f"blocks.0.{point}"
    ids, mask = _inputs()
    d = hook_width(model_layout(model), point)
    out = spliced_eval(model, _identity_sae(d), hook, ids, mask, modes=("sae", "zero"))
    if point in ("hook_resid_pre", "hook_resid_post"):
        block = model_layout(model).blocks[0]
        if point == "hook_resid_pre":
            handle = block.register_forward_pre_hook(
                lambda m, a, k: ((torch.zeros_like(a[0]), *a[1:]), k) if a
                else (a, {**k, "hidden_states": torch.zeros_like(k["hidden_states"])}), with_kwargs=True)
        else:
            handle = block.register_forward_hook(
                lambda m, a, o: (torch.zeros_like(o[0]), *o[1:]) if isinstance(o, tuple) else torch.zeros_like(o))
        try:
            with torch.no_grad():
                logits = model(input_ids=ids, attention_mask=mask).logits
        finally:
            handle.remove()
    else:
        with torch.no_grad():
            logits = _zeroed_copy(model, kind, point)(input_ids=ids, attention_mask=mask).logits
    with torch.no_grad():
        clean = model(input_ids=ids, attention_mask=mask).logits
    expected = spliced_metrics(clean, {"zero": logits}, ids, mask)
    assert out["ce_zero"] == pytest.approx(expected["ce_zero"], abs=1e-5)
    assert out["kl_zero"] == pytest.approx(expected["kl_zero"], abs=1e-5)
    assert out["ce_clean"] == pytest.approx(expected["ce_clean"], abs=1e-6)


@pytest.mark.parametrize("point", ["hook_resid_post", "attn.hook_z", "attn.hook_result"])
def test_random_sae_loses_loss(point):
    model = _model("gpt2")
    ids, mask = _inputs()
    d = hook_width(model_layout(model), point)
    out = spliced_eval(model, _random_sae(d), f"blocks.1.{point}", ids, mask)
    # An untrained LM has no loss to protect, so a random splice may even lower the CE: check it is not 1.
    assert abs(out["ce_recovered_zero"] - 1) > 1e-3 and abs(out["ce_recovered_mean"] - 1) > 1e-3
    recovered = (out["ce_zero"] - out["ce_sae"]) / (out["ce_zero"] - out["ce_clean"])
    assert out["ce_recovered_zero"] == pytest.approx(recovered)
    assert out["kl_sae"] > 1e-6  # random GPT-2 weights are small (std 0.02), so every effect is small
    assert out["delta_loss"] == pytest.approx(out["ce_sae"] - out["ce_clean"])


def test_mean_passed_in_is_used():
    model = _model("gpt2")
    ids, mask = _inputs()
    d = hook_width(model_layout(model), "hook_mlp_out")
    sae = _identity_sae(d)
    auto = spliced_eval(model, sae, "blocks.0.hook_mlp_out", ids, mask)
    zero_mean = spliced_eval(model, sae, "blocks.0.hook_mlp_out", ids, mask, mean=torch.zeros(d))
    assert zero_mean["ce_mean"] == pytest.approx(auto["ce_zero"], abs=1e-6)
    assert auto["ce_mean"] != pytest.approx(auto["ce_zero"], abs=1e-6)


def test_metrics_by_hand():
    # vocab 2, one sequence of 3 tokens [0, 1, 1]: targets are 1 (from position 0) and 1 (from position 1).
    ids = torch.tensor([[0, 1, 1]])
    clean = torch.zeros(1, 3, 2)  # uniform: CE = log 2 at each position
    sae = torch.tensor([[[0.0, math.log(3)], [0.0, 0.0], [5.0, 5.0]]])  # p(1) = 3/4 then 1/2
    zero = torch.tensor([[[math.log(3), 0.0], [math.log(3), 0.0], [0.0, 0.0]]])  # p(1) = 1/4 twice
    out = spliced_metrics(clean, {"sae": sae, "zero": zero}, ids)
    l_clean, l_sae, l_zero = math.log(2), (-math.log(0.75) + math.log(2)) / 2, -math.log(0.25)
    assert out["n_tokens"] == 2
    assert out["ce_clean"] == pytest.approx(l_clean)
    assert out["ce_sae"] == pytest.approx(l_sae)
    assert out["ce_zero"] == pytest.approx(l_zero)
    assert out["delta_loss"] == pytest.approx(l_sae - l_clean)
    assert out["ce_recovered_zero"] == pytest.approx((l_zero - l_sae) / (l_zero - l_clean))
    kl = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # KL(uniform || (1/4, 3/4)) at position 0
    assert out["kl_sae"] == pytest.approx(kl / 2)
    assert "ce_recovered_mean" not in out
    # padding: masking the last token drops the pair (1 -> 2)
    masked = spliced_metrics(clean, {"sae": sae}, ids, torch.tensor([[1, 1, 0]]))
    assert masked["n_tokens"] == 1 and masked["ce_sae"] == pytest.approx(-math.log(0.75))
    assert math.isnan(loss_recovered(1.0, 2.0, 1.0))


def test_width_mismatch_raises_shape_error():
    model = _model("gpt2")
    ids, mask = _inputs()
    before = _hook_counts(model)
    with pytest.raises(ShapeError, match="width 128"):
        spliced_eval(model, _identity_sae(32), "blocks.0.attn.hook_result", ids, mask)
    with pytest.raises(ShapeError, match="width 32"):
        spliced_eval(model, _identity_sae(16), "blocks.0.hook_resid_post", ids, mask)
    assert _hook_counts(model) == before


def test_hook_removed_on_error():
    model = _model("llama")
    ids, mask = _inputs()
    before = _hook_counts(model)

    def boom(x):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), replace_hook(model, "blocks.1.hook_mlp_out", boom):
        model(input_ids=ids, attention_mask=mask)
    assert _hook_counts(model) == before
