"""Attention-output SAEs: head attribution and exact direct attribution to heads and source positions."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from aekit.analysis.attention import attribute_features, head_attribution, recording_attention  # noqa: E402
from aekit.data.hooks import capture, model_layout  # noqa: E402
from aekit.errors import ConfigError, ShapeError  # noqa: E402
from aekit.models.sae import SAEConfig, SparseAutoencoder  # noqa: E402

from .tiny_lms import tiny_lm  # noqa: E402


def _inputs():
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(2, 100, (2, 8), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    return ids, mask


def _hook_z_sae(model, architecture="relu") -> SparseAutoencoder:
    layout = model_layout(model)
    d = layout.n_heads * layout.d_head
    sae = SparseAutoencoder(SAEConfig(d_in=d, n_latents=3 * d, architecture=architecture, k=4), seed=1)
    with torch.no_grad():  # non-trivial biases and input scale so every term of the decomposition matters
        sae.b_enc.normal_(0, 0.3)
        sae.b_dec.normal_(0, 0.3)
        sae.input_scale.fill_(1.7)
    return sae.eval()


def test_head_attribution_is_the_share_of_squared_decoder_norm():
    sae = SparseAutoencoder(SAEConfig(d_in=6, n_latents=4, architecture="relu"), seed=0)
    with torch.no_grad():
        sae.W_dec.copy_(torch.tensor([[1.0, 0, 0, 0, 0, 0],  # head 0 only
                                      [0, 0, 3.0, 4.0, 0, 0],  # head 1 only
                                      [1.0, 1.0, 1.0, 1.0, 0, 0],  # heads 0 and 1 equally
                                      [0, 2.0, 0, 0, 1.0, 1.0]]))  # 4 : 0 : 2
    shares = head_attribution(sae, n_heads=3)
    expected = torch.tensor([[1, 0, 0], [0, 1, 0], [0.5, 0.5, 0], [4 / 6, 0, 2 / 6]])
    torch.testing.assert_close(shares, expected)
    with pytest.raises(ShapeError, match="head blocks"):
        head_attribution(sae, n_heads=4)


@pytest.mark.parametrize("kind", ["gpt2", "neox-par", "llama", "qwen2"])
def test_recorded_pattern_and_values_rebuild_hook_z(kind):
    model = tiny_lm(kind)
    ids, mask = _inputs()
    before = model(ids, attention_mask=mask).logits
    with recording_attention(model, 1) as slot:
        z = capture(model, ids, ["blocks.1.attn.hook_z"], mask)["blocks.1.attn.hook_z"]
    rebuilt = torch.einsum("bhqs,bhsd->bqhd", slot["pattern"], slot["values"])
    torch.testing.assert_close(rebuilt, z, atol=1e-5, rtol=1e-5)
    # causal: no weight on future sources; padding: no weight on masked sources
    assert slot["pattern"].triu(1).abs().max() == 0
    assert slot["pattern"][1, :, :5, 5:].abs().max() == 0
    after = model(ids, attention_mask=mask).logits  # the model's own attention implementation is restored
    torch.testing.assert_close(after, before)


@pytest.mark.parametrize("kind", ["gpt2", "neox-seq", "llama", "mistral"])
@pytest.mark.parametrize("architecture", ["relu", "topk"])
def test_attribution_decomposes_the_sae_pre_activation_exactly(kind, architecture):
    model = tiny_lm(kind)
    sae = _hook_z_sae(model, architecture)
    ids, mask = _inputs()
    features = [0, 5, 17]
    result = attribute_features(sae, model, 1, features, ids, mask)
    # the SAE's own pre-activation on hook_z equals the decomposition's total
    z = capture(model, ids, ["blocks.1.attn.hook_z"], mask)["blocks.1.attn.hook_z"].flatten(2)
    with torch.no_grad():
        x_n = z * sae.input_scale
        own = torch.nn.functional.linear(x_n - sae.b_dec, sae.W_enc, sae.b_enc)[..., features]
    torch.testing.assert_close(result.pre_activation, own, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(result.constant + result.by_head.sum(-1), result.pre_activation, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(result.by_source.sum(-1), result.by_head, atol=1e-5, rtol=1e-5)
    n_heads = model_layout(model).n_heads
    assert result.by_source.shape == (2, 8, 3, n_heads, 8)
    future = torch.ones(8, 8, dtype=torch.bool).triu(1)  # (query, source) pairs a causal head cannot see
    assert result.by_source.permute(0, 2, 3, 1, 4)[..., future].abs().max() == 0
    assert result.by_source[1, :, :, :, 5:].abs().max() == 0  # padded sources contribute nothing


def test_single_head_feature_is_attributed_to_its_head():
    model = tiny_lm("gpt2")
    layout = model_layout(model)
    sae = _hook_z_sae(model)
    with torch.no_grad():  # feature 0 reads head 2 only
        sae.W_enc[0].zero_()
        sae.W_enc[0, 2 * layout.d_head:3 * layout.d_head].normal_()
    ids, mask = _inputs()
    result = attribute_features(sae, model, 0, [0], ids, mask)
    others = [h for h in range(layout.n_heads) if h != 2]
    assert result.by_head[..., 0, others].abs().max() == 0
    assert result.by_head[..., 0, 2].abs().max() > 0


def test_attribution_rejects_wrong_inputs():
    model = tiny_lm("gpt2")
    sae = SparseAutoencoder(SAEConfig(d_in=7, n_latents=14, architecture="relu"))
    ids, mask = _inputs()
    with pytest.raises(ShapeError, match="hook_z"):
        attribute_features(sae, model, 0, [0], ids, mask)
    good = _hook_z_sae(model)
    with pytest.raises(ConfigError, match="features"):
        attribute_features(good, model, 0, [10_000], ids, mask)
    with pytest.raises(ConfigError, match="layer"):
        attribute_features(good, model, 5, [0], ids, mask)
