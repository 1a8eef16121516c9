"""The sparse autoencoder: gradients, constraints, AuxK, normalisation folding, save/load."""

import pytest
import torch

from aekit import FormatError, SAEConfig, ShapeError, SparseAutoencoder, load_model


def _model(arch="topk", d=12, n=48, k=4, seed=0, **kw):
    return SparseAutoencoder(SAEConfig(d_in=d, n_latents=n, architecture=arch, k=k, **kw), seed=seed)


def _dense_reference_loss(m: SparseAutoencoder, x, dead, k):
    """The TopK SAE objective written densely (batch × n_latents), as a reference for the sparse path."""
    x_n = x * m.input_scale
    pre = (x_n - m.b_dec) @ m.W_enc.T + m.b_enc
    keep = torch.zeros_like(pre, dtype=torch.bool).scatter_(1, pre.detach().topk(k, dim=-1).indices, True)
    x_hat = torch.where(keep, torch.relu(pre), 0.0) @ m.W_dec + m.b_dec
    mse = (x_hat - x_n).pow(2).sum(-1).mean()
    residual = (x_n - x_hat).detach()
    k_aux = min(m.config.effective_aux_k, int(dead.sum()))
    aux_keep = torch.zeros_like(keep).scatter_(
        1, pre.detach().masked_fill(~dead, float("-inf")).topk(k_aux, dim=-1).indices, True
    )
    residual_hat = torch.where(aux_keep, torch.relu(pre), 0.0) @ m.W_dec  # no b_dec: the residual excludes it
    variance = (residual - residual.mean(0)).pow(2).sum(-1).mean()
    aux = m.config.aux_coefficient * (residual_hat - residual).pow(2).sum(-1).mean() / variance
    return mse, aux


def test_topk_sparse_path_matches_dense_reference_gradients():
    m = _model().double()
    x = torch.randn(32, 12, dtype=torch.float64)
    m.initialize_from_data(x)
    dead = torch.zeros(48, dtype=torch.bool)
    dead[::3] = True
    out = m(x, dead_mask=dead)
    sum(out.losses.values()).backward()
    sparse_grads = {name: p.grad.clone() for name, p in m.named_parameters()}
    m.zero_grad()
    mse, aux = _dense_reference_loss(m, x, dead, 4)
    assert out.losses["mse"].item() == pytest.approx(mse.item(), rel=1e-12)
    assert out.losses["aux_k"].item() == pytest.approx(aux.item(), rel=1e-12)
    (mse + aux).backward()
    for name, p in m.named_parameters():
        assert torch.allclose(p.grad, sparse_grads[name], atol=1e-12), name


def test_topk_codes_are_values_and_indices_with_k_per_row():
    m = _model()
    codes = m.encode(torch.randn(10, 12))
    assert codes.is_sparse and codes.values.shape == (10, 4) and codes.indices.shape == (10, 4)
    assert (codes.l0() <= 4).all()


def test_relu_l1_model_has_l1_penalty_and_dense_codes():
    m = _model("relu", l1_coefficient=0.1)
    out = m(torch.randn(8, 12))
    assert not out.codes.is_sparse
    assert out.losses["l1"].item() == pytest.approx(0.1 * out.codes.dense.abs().sum(-1).mean().item())


def test_decoder_gradient_parallel_component_removed_and_rows_renormalised():
    m = _model()
    x = torch.randn(64, 12)
    m(x).losses["mse"].backward()
    m.before_optimizer_step()
    parallel = (m.W_dec.grad * m.W_dec).sum(-1)
    assert parallel.abs().max() < 1e-6
    with torch.no_grad():
        m.W_dec.mul_(3.0)
    m.after_optimizer_step()
    assert torch.allclose(m.W_dec.norm(dim=1), torch.ones(48), atol=1e-6)


def test_initialize_from_data_sets_unit_mean_squared_norm():
    m = _model()
    x = 7.0 * torch.randn(500, 12)
    m.initialize_from_data(x)
    assert (x * m.input_scale).pow(2).sum(-1).mean().item() == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("arch", ["topk", "relu"])
def test_folding_the_input_scale_leaves_outputs_unchanged(arch):
    m = _model(arch)
    x = 5.0 * torch.randn(256, 12) + 2.0
    m.initialize_from_data(x)
    with torch.no_grad():
        m.b_enc.normal_()
        before = m(x).x_hat
        codes_before = m.encode(x).to_dense()
    scale = m.input_scale.item()
    m.prepare_for_save()
    assert m.input_scale.item() == 1.0 and m.provenance["input_scale_folded"] == pytest.approx(scale)
    with torch.no_grad():
        after = m(x).x_hat
        codes_after = m.encode(x).to_dense()
    assert (after - before).abs().max() < 1e-5 * before.abs().max()
    assert torch.allclose(codes_after, codes_before / scale, atol=1e-5)


def test_save_load_round_trip_is_exact(tmp_path):
    m = _model()
    x = torch.randn(64, 12)
    m.initialize_from_data(3 * x)
    m.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    for name, tensor in m.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert loaded.config == m.config
    assert torch.equal(m(x).x_hat, loaded(x).x_hat)


def test_load_refuses_mismatched_config(tmp_path):
    m = _model()
    m.save(tmp_path / "m")
    import json

    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    meta["config"]["n_latents"] = 64
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(FormatError, match="shape"):
        load_model(tmp_path / "m")


def test_wrong_input_dimension_is_a_shape_error():
    with pytest.raises(ShapeError, match="expects"):
        _model()(torch.randn(4, 11))


def test_safetensors_whose_header_length_starts_with_0x80_is_not_mistaken_for_a_pickle(tmp_path):
    from safetensors.torch import save_file

    from aekit.fileio import load_safetensors

    for pad in range(300):
        path = tmp_path / "t.safetensors"
        save_file({"w": torch.zeros(2)}, path, metadata={"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    else:
        pytest.fail("no padding produced a header length whose low byte is 0x80")
    assert torch.equal(load_safetensors(path)["w"], torch.zeros(2))
