"""Every SAE architecture: gradients (finite differences or the stated STE), folding, round trips, transcoders."""

import pytest
import torch
from torch.func import functional_call

from aekit import SAEConfig, SparseAutoencoder, load_model
from aekit.data import ArraySource
from aekit.nn.bottlenecks import BOTTLENECKS
from aekit.nn.ste import jump_relu, step
from aekit.train import TrainConfig, Trainer

from .helpers import small_world

ARCHS = sorted(BOTTLENECKS)
D, N = 10, 40


def _model(arch, d_out=None, seed=0, **kw):
    settings = {"k": 3, "l1_coefficient": 0.01, "l0_coefficient": 0.01, "matryoshka_prefixes": "5,20", **kw}
    return SparseAutoencoder(SAEConfig(d_in=D, n_latents=N, architecture=arch, d_out=d_out, **settings), seed=seed)


def _batch(rows=64, d_out=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randn(rows, D + (d_out or 0), generator=g) + 0.5


def _trained_state(m, batch):
    """Put the model in a realistic state: data-dependent init, perturbed biases, thresholds estimated."""
    m.initialize_from_data(batch)
    with torch.no_grad():
        m.b_enc.normal_(0.0, 0.05)
        if hasattr(m.bottleneck, "b_mag"):
            m.bottleneck.b_mag.normal_(0.0, 0.05)
            m.bottleneck.r_mag.normal_(0.0, 0.2)
        if m.config.architecture == "jumprelu":
            m.bottleneck.threshold.fill_(0.05)
    m.train()
    m(batch)  # estimates the BatchTopK threshold
    m.eval()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("d_out", [None, 6])
def test_folding_normalisation_leaves_outputs_unchanged(arch, d_out):
    m = _model(arch, d_out)
    batch = _batch(d_out=d_out)
    _trained_state(m, batch)
    x, _ = m.split_batch(batch)
    with torch.no_grad():
        before = m.decode(m.encode(x))
    m.prepare_for_save()
    with torch.no_grad():
        after = m.decode(m.encode(x))
    assert (after - before).abs().max().item() < 1e-5 * max(1.0, before.abs().max().item())


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("d_out", [None, 6])
def test_save_load_round_trip_every_architecture(arch, d_out, tmp_path):
    m = _model(arch, d_out)
    batch = _batch(d_out=d_out)
    _trained_state(m, batch)
    m.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    x, _ = m.split_batch(batch)
    with torch.no_grad():
        assert torch.equal(m.decode(m.encode(x)), loaded.decode(loaded.encode(x)))
    assert loaded.config == m.config


def _loss_of_params(m, batch, terms=None, only=None):
    """The model's loss (or the named terms) as a function of its parameters (or only those named)."""
    named = dict(m.named_parameters())
    varying = [n for n in named if only is None or n in only]

    def loss(*params):
        values = {**named, **dict(zip(varying, params, strict=True))}
        out = functional_call(m, values, (batch,))
        return sum(v for k, v in out.losses.items() if terms is None or k in terms)

    return loss, tuple(named[n].detach().clone().requires_grad_() for n in varying)


@pytest.mark.parametrize("arch", ["relu", "gated"])
@pytest.mark.parametrize("d_out", [None, 6])
def test_dense_architectures_gradients_match_finite_differences(arch, d_out):
    m = _model(arch, d_out).double()
    batch = _batch(16, d_out).double()
    _trained_state(m, batch)
    m.train()
    loss, params = _loss_of_params(m, batch, terms={"mse", "l1"})
    assert torch.autograd.gradcheck(loss, params, eps=1e-6, atol=1e-5)


def test_gated_auxiliary_loss_trains_the_gate_through_a_frozen_decoder():
    m = _model("gated").double()
    batch = _batch(16).double()
    _trained_state(m, batch)
    m.train()
    m(batch).losses["gate_aux"].backward()
    assert m.W_dec.grad is None or m.W_dec.grad.abs().max() == 0
    assert m.bottleneck.r_mag.grad is None or m.bottleneck.r_mag.grad.abs().max() == 0
    # with the decoder held fixed, the gradient reaching the encoder matches finite differences
    loss, params = _loss_of_params(m, batch, terms={"gate_aux"}, only={"W_enc", "b_enc"})
    assert torch.autograd.gradcheck(loss, params, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "matryoshka"])
@pytest.mark.parametrize("d_out", [None, 6])
def test_selection_architectures_gradients_match_finite_differences(arch, d_out):
    """Selections are piecewise constant; away from ties the loss is smooth and FD gradients exist."""
    m = _model(arch, d_out).double()
    batch = _batch(16, d_out).double()
    _trained_state(m, batch)
    m.train()
    loss, params = _loss_of_params(m, batch)
    assert torch.autograd.gradcheck(loss, params, eps=1e-7, atol=1e-5)


@pytest.mark.parametrize("d_out", [None, 6])
def test_jumprelu_weight_gradients_match_finite_differences(d_out):
    """Away from the jumps z = θ the JumpReLU loss is smooth in the weights; θ itself uses the STE (below)."""
    m = _model("jumprelu", d_out).double()
    batch = _batch(16, d_out).double()
    _trained_state(m, batch)
    m.train()
    weights = {"W_enc", "b_enc", "W_dec", "b_dec"}
    loss, params = _loss_of_params(m, batch, terms={"mse"}, only=weights)
    assert torch.autograd.gradcheck(loss, params, eps=1e-7, atol=1e-5)


def test_matryoshka_loss_is_mean_of_prefix_reconstructions():
    m = _model("matryoshka").double()
    batch = _batch(32).double()
    _trained_state(m, batch)
    m.train()
    out = m(batch)
    dense = out.codes.to_dense()
    x_n = batch * m.input_scale
    errors = []
    for prefix in (5, 20, 40):
        x_hat = dense[:, :prefix] @ m.W_dec[:prefix] + m.b_dec
        errors.append((x_hat - x_n).pow(2).sum(-1).mean())
    assert out.losses["mse"].item() == pytest.approx(errors[-1].item(), rel=1e-10)
    total = out.losses["mse"] + out.losses["matryoshka"]
    assert total.item() == pytest.approx(sum(errors).item() / 3, rel=1e-10)


def test_batchtopk_keeps_k_times_batch_in_training_and_uses_the_threshold_in_eval():
    m = _model("batchtopk")
    batch = _batch(64)
    m.initialize_from_data(batch)
    m.train()
    out = m(batch)
    assert int(out.codes.l0().sum()) == 3 * 64
    assert out.codes.l0().max() > out.codes.l0().min()  # rows get different counts
    threshold = m.bottleneck.threshold.item()
    assert threshold > 0
    m.eval()
    x_n = batch * m.input_scale
    pre = (x_n - m.b_dec) @ m.W_enc.T + m.b_enc
    with torch.no_grad():
        codes = m.encode(batch).to_dense()
        single = m.encode(batch[:1]).to_dense()
    assert torch.equal((codes > 0), (pre > threshold))
    assert torch.allclose(single, codes[:1])  # a row's code does not depend on its batch


def test_jumprelu_straight_through_gradients_by_hand():
    z = torch.tensor([0.30, 0.5004, 0.4999, 0.10], requires_grad=True)
    theta = torch.tensor([0.5, 0.5, 0.5, 0.5], requires_grad=True)
    eps = 0.001
    out = jump_relu(z, theta, eps)
    assert out.tolist() == pytest.approx([0.0, 0.5004, 0.0, 0.0])
    out.sum().backward()
    assert z.grad.tolist() == [0.0, 1.0, 0.0, 0.0]
    # within ε/2 of θ: −θ/ε; elsewhere 0
    assert theta.grad.tolist() == pytest.approx([0.0, -500.0, -500.0, 0.0])
    theta.grad = None
    step(z.detach(), theta, eps).sum().backward()
    assert theta.grad.tolist() == pytest.approx([0.0, -1000.0, -1000.0, 0.0])


def test_jumprelu_model_threshold_receives_the_ste_gradient():
    m = _model("jumprelu").double()
    batch = _batch(32).double()
    _trained_state(m, batch)
    m.train()
    out = m(batch)
    out.losses["l0"].backward()
    grad = m.bottleneck.threshold.grad
    assert grad is not None and (grad <= 0).all() and (grad < 0).any()  # raising θ lowers L0


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_jumprelu_threshold_learns_l0_falls_as_sparsity_coefficient_rises(precision):
    world = small_world()
    data = world.sample(20000, seed=1, with_magnitudes=False).x
    l0s = []
    for coefficient in (1e-4, 3e-2, 3e-1):
        cfg = TrainConfig(steps=250, batch_size=256, lr=3e-3, warmup_steps=10, progress=False,
                          checkpoint_every=0, seed=0, precision=precision)
        m = SparseAutoencoder(SAEConfig(d_in=16, n_latents=64, architecture="jumprelu", l0_coefficient=coefficient,
                                        jumprelu_init_threshold=0.01, jumprelu_bandwidth=0.05), seed=0)
        initial = m.bottleneck.threshold.detach().clone()
        result = Trainer(m, ArraySource(data, cfg.batch_size, seed=0), cfg).fit()
        l0s.append(result.history[-1]["l0"])
        assert not torch.equal(m.bottleneck.threshold.detach(), initial)
    assert l0s[0] > l0s[1] > l0s[2]
    assert l0s[0] > 2 * l0s[2]


def test_decoder_weighted_l1_leaves_decoder_norms_free():
    m = _model("relu", l1_decoder_weighted=True)
    batch = _batch()
    m.initialize_from_data(batch)
    with torch.no_grad():
        m.W_dec.mul_(2.0)
    out = m(batch)
    expected = 0.01 * (out.codes.dense * m.W_dec.norm(dim=1)).abs().sum(-1).mean()
    assert out.losses["l1"].item() == pytest.approx(expected.item(), rel=1e-6)
    out.losses["mse"].backward()
    m.before_optimizer_step()
    m.after_optimizer_step()
    assert torch.allclose(m.W_dec.norm(dim=1), torch.full((N,), 2.0), atol=1e-5)


def test_transcoder_learns_a_linear_map_of_its_input():
    world = small_world()
    x = world.sample(20000, seed=1, with_magnitudes=False).x
    W = torch.randn(16, 6, generator=torch.Generator().manual_seed(3)) / 4
    rows = torch.cat([x, x @ W], dim=1)
    cfg = TrainConfig(steps=300, batch_size=256, lr=3e-3, progress=False, checkpoint_every=0, seed=0)
    m = SparseAutoencoder(SAEConfig(d_in=16, n_latents=64, architecture="topk", k=4, d_out=6), seed=0)
    Trainer(m, ArraySource(rows, cfg.batch_size, seed=0), cfg).fit()
    from aekit.models.evaluate import evaluate_reconstruction

    assert evaluate_reconstruction(m, rows[:4000])["fvu"] < 0.2
    assert m.W_dec.shape == (64, 6) and m.W_enc.shape == (64, 16)
