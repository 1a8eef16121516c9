"""Activation hooks on tiny randomly initialised Hugging Face causal LMs, checked against the models' own outputs."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from aekit.data.hooks import ActivationCapture, capture, model_layout, token_rows  # noqa: E402
from aekit.errors import ConfigError, DataError  # noqa: E402

from .tiny_lms import KINDS  # noqa: E402
from .tiny_lms import tiny_lm as _model  # noqa: E402


def _hook_counts(model) -> list[int]:
    """Hooks on every module; HF installs some of its own, so compare before and after, not against zero."""
    return [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()]


ALL_POINTS = ["hook_resid_pre", "hook_resid_post", "hook_attn_out", "hook_mlp_out", "attn.hook_z", "attn.hook_result"]


def _inputs():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(2, 100, (3, 7), generator=g)
    return ids


@pytest.mark.parametrize("kind", KINDS)
def test_hooks_match_model_outputs(kind):
    model = _model(kind)
    layout = model_layout(model)
    ids = _inputs()
    names = [f"blocks.{L}.{p}" for L in range(2) for p in ALL_POINTS]
    acts = capture(model, ids, hooks=names)
    with torch.no_grad():
        hidden = model(ids, output_hidden_states=True).hidden_states
    n = layout.n_layers
    assert len(hidden) == n + 1
    final_norm = model.base_model.get_submodule(layout.adapter.final_norm)
    for L in range(n):
        pre, post = acts[f"blocks.{L}.hook_resid_pre"], acts[f"blocks.{L}.hook_resid_post"]
        attn_out, mlp_out = acts[f"blocks.{L}.hook_attn_out"], acts[f"blocks.{L}.hook_mlp_out"]
        z, result = acts[f"blocks.{L}.attn.hook_z"], acts[f"blocks.{L}.attn.hook_result"]
        torch.testing.assert_close(pre, hidden[L], atol=1e-6, rtol=0)
        if L < n - 1:
            torch.testing.assert_close(post, hidden[L + 1], atol=1e-6, rtol=0)
        else:  # HF's last hidden state is taken after the final norm
            torch.testing.assert_close(final_norm(post), hidden[n], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(post, pre + attn_out + mlp_out, atol=1e-5, rtol=1e-5)
        assert z.shape == (3, 7, layout.n_heads, layout.d_head)
        assert result.shape == (3, 7, layout.n_heads, layout.d_model)
        bias = layout.out_proj(L).bias
        summed = result.sum(dim=-2) + (0 if bias is None else bias)
        torch.testing.assert_close(summed, attn_out, atol=1e-5, rtol=1e-5)
    assert layout.parallel == (kind == "neox-par")
    if kind == "llama":
        assert layout.out_proj(0).bias is not None


def test_gqa_heads_and_conv1d_layout():
    llama = model_layout(_model("llama"))
    assert (llama.n_heads, llama.d_head, llama.d_model) == (4, 8, 32)
    gpt2 = model_layout(_model("gpt2"))
    assert gpt2.adapter.out_proj_conv1d and gpt2.w_o(0).shape == (4, 8, 32)
    # Head 2's result equals z_2 projected through rows 16..24 of the Conv1D weight (d_in, d_out).
    acts = capture(_model("gpt2"), _inputs(), ["blocks.1.attn.hook_z", "blocks.1.attn.hook_result"])
    weight = gpt2.out_proj(1).weight
    torch.testing.assert_close(acts["blocks.1.attn.hook_result"][..., 2, :],
                               acts["blocks.1.attn.hook_z"][..., 2, :] @ weight[16:24], atol=1e-6, rtol=0)


@pytest.mark.parametrize("hook", ["blocks.0.hook_resid_post", "blocks.0.hook_resid_pre", "blocks.0.attn.hook_z"])
def test_stops_after_last_hooked_layer(hook):
    model = _model("llama")
    before = _hook_counts(model)
    with torch.no_grad():
        logits = model(_inputs(), output_hidden_states=True).logits
    calls = []
    handles = [block.register_forward_hook(lambda m, a, o, i=i: calls.append(i))
               for i, block in enumerate(model.model.layers)]
    head_calls = []
    handles.append(model.lm_head.register_forward_hook(lambda *a: head_calls.append(1)))
    try:
        acts = capture(model, _inputs(), [hook])
        assert hook in acts
        assert 1 not in calls and not head_calls
        calls.clear()
        with ActivationCapture(model, ["blocks.1.hook_mlp_out"], stop_early=False) as cap, torch.no_grad():
            model(_inputs())
        assert calls == [0, 1] and head_calls and "blocks.1.hook_mlp_out" in cap.activations
    finally:
        for h in handles:
            h.remove()
    assert _hook_counts(model) == before
    with torch.no_grad():  # an interrupted forward leaves no state behind
        torch.testing.assert_close(model(_inputs(), output_hidden_states=True).logits, logits, atol=0, rtol=0)


def test_context_manager_runs_repeatedly_and_removes_hooks():
    model = _model("gpt2")
    before = _hook_counts(model)
    with ActivationCapture(model, "blocks.1.hook_resid_post") as cap:
        a = cap.run(_inputs())["blocks.1.hook_resid_post"]
        b = cap.run(_inputs())["blocks.1.hook_resid_post"]
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert _hook_counts(model) == before


def test_padding_and_bos_rows():
    model = _model("neox-seq")
    ids = _inputs()
    ids[:, 0] = 1  # BOS
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0  # right padding: 2 tokens
    mask[1, :3] = 0  # left padding: 3 tokens (including the BOS at position 0)
    acts = capture(model, ids, ["blocks.0.hook_resid_post"], attention_mask=mask)["blocks.0.hook_resid_post"]
    rows = token_rows(acts, ids, mask, bos_token_id=1)
    # 21 tokens - 5 padding - 2 BOS not already padded
    assert rows.shape == (14, 32)
    assert token_rows(acts, ids, mask, bos_token_id=1, exclude_bos=False).shape == (16, 32)
    assert token_rows(acts).shape == (21, 32)
    torch.testing.assert_close(rows[0], acts[0, 1])


def test_errors_name_valid_choices():
    model = _model("gpt2")
    with pytest.raises(ConfigError, match="valid names are blocks.{L}.hook_resid_pre"):
        capture(model, _inputs(), ["blocks.0.hook_attn_pattern"])
    with pytest.raises(ConfigError, match="valid layers are 0 to 1"):
        capture(model, _inputs(), ["blocks.2.hook_resid_post"])
    with pytest.raises(ConfigError, match="at least one hook"):
        capture(model, _inputs(), [])
    bert = transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                                   vocab_size=100)
    supported = "supported model_type values are clip, gpt2, gpt_neox, llama, mistral, qwen2, vit"
    with pytest.raises(ConfigError, match=supported):
        capture(transformers.BertModel(bert), _inputs(), ["blocks.0.hook_resid_post"])
    with pytest.raises(DataError, match="input_ids"):
        capture(model, torch.zeros(7, dtype=torch.long), ["blocks.0.hook_resid_post"])
    with pytest.raises(DataError, match="attention_mask"):
        capture(model, _inputs(), ["blocks.0.hook_resid_post"], attention_mask=torch.ones(3, 6))
    with pytest.raises(DataError, match="bos_token_id"):
        token_rows(torch.zeros(3, 7, 32), bos_token_id=1)
