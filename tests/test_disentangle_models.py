"""Image autoencoders for disentanglement: quantisers, Gaussian terms, weight decay, formats, training, the study."""

import json
import math

import numpy as np
import pytest
import torch

from aekit.analysis.passive import encode_posteriors, passive_variables
from aekit.commands import disentangle
from aekit.commands.disentangle import MODEL_NAMES, run_disentangle, t_interval
from aekit.data.sources import DictArraySource
from aekit.errors import ConfigError, DataError
from aekit.models.base import load_model
from aekit.models.image_ae import (
    VQVAE,
    BetaTCVAE,
    BetaTCVAEConfig,
    BetaVAE,
    BetaVAEConfig,
    ImageAEConfig,
    ImageAutoencoder,
    VQVAEConfig,
)
from aekit.models.qlae import QLAE, QLAEConfig
from aekit.models.xfactors import XFactors, XFactorsConfig, supervised_contrastive_loss
from aekit.nn.gaussian import gaussian_kl, gaussian_log_density, total_correlation_mws
from aekit.nn.quantize import ScalarQuantizer, VectorQuantizer
from aekit.train import TrainConfig, Trainer
from aekit.train.optim import make_optimizer
from aekit.worlds import Shapes3DWorld

TINY = {"channels": "8,8,8,8", "hidden": 32, "n_latents": 4}  # 64×64 images, narrow layers: fast on CPU
KINDS = {
    "ae": lambda: ImageAutoencoder(ImageAEConfig(**TINY), seed=0),
    "betavae": lambda: BetaVAE(BetaVAEConfig(**TINY), seed=0),
    "betatcvae": lambda: BetaTCVAE(BetaTCVAEConfig(**TINY, dataset_size=1000), seed=0),
    "vqvae": lambda: VQVAE(VQVAEConfig(**TINY, slot_dim=4, n_codes=8), seed=0),
    "qlae": lambda: QLAE(QLAEConfig(**TINY), seed=0),
    "xfactors": lambda: XFactors(XFactorsConfig(**{**TINY, "n_latents": 5}, n_factors=2), seed=0),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def shapes():
    sample = Shapes3DWorld().sample(256, seed=0)
    return sample.images, torch.as_tensor(sample.factors)


# ------------------------------------------------------------------------------------------------ quantisers
def test_scalar_quantizer_snaps_to_codebook_and_passes_gradient_straight_through():
    quantizer = ScalarQuantizer(n_latents=2, n_values=5)  # codebook −0.5, −0.25, 0, 0.25, 0.5 for each latent
    z = torch.tensor([[0.1, -0.9], [0.2, 0.3]], requires_grad=True)
    out = quantizer(z)
    assert out.straight_through.tolist() == [[0.0, -0.5], [0.25, 0.25]]
    assert out.indices.tolist() == [[2, 0], [3, 3]]
    weights = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    (out.straight_through * weights).sum().backward()
    assert torch.equal(z.grad, weights)  # d(decoder input)/dz is the identity
    assert quantizer.codebooks.grad is None  # the straight-through path does not reach the codebook


def test_quantisation_and_commitment_losses_train_codebook_and_encoder_respectively():
    quantizer = ScalarQuantizer(n_latents=1, n_values=3)  # −0.5, 0, 0.5
    z = torch.tensor([[0.2], [0.4]], requires_grad=True)
    out = quantizer(z)  # both snap to: 0.0 and 0.5
    assert out.quantize_loss.item() == pytest.approx((0.2**2 + 0.1**2) / 2)
    out.quantize_loss.backward(retain_graph=True)
    # d/dq of mean (z − q)² = (q − z) for 2 elements; codeword 0.0 gets (0 − 0.2), codeword 0.5 gets (0.5 − 0.4)
    assert quantizer.codebooks.grad.squeeze().tolist() == pytest.approx([0.0, -0.2, 0.1])
    assert z.grad is None  # the quantisation loss does not move the encoder
    out.commit_loss.backward()
    assert z.grad.squeeze().tolist() == pytest.approx([0.2, -0.1])
    assert quantizer.codebooks.grad.squeeze().tolist() == pytest.approx([0.0, -0.2, 0.1])  # unchanged


def test_vector_quantizer_picks_the_nearest_shared_codeword():
    quantizer = VectorQuantizer(n_codes=16, dim=3, generator=torch.Generator().manual_seed(0))
    z = torch.randn(10, 4 * 3, generator=torch.Generator().manual_seed(1))
    out = quantizer(z)
    slots = z.view(10, 4, 1, 3)
    brute = (slots - quantizer.codebooks.detach().unsqueeze(0)).pow(2).sum(-1).argmin(-1)
    assert torch.equal(out.indices, brute)
    assert torch.allclose(out.quantized.view(10, 4, 3), quantizer.codebooks.detach()[0][brute])


# -------------------------------------------------------------------------------------------- Gaussian terms
def test_kl_closed_form_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g) * 0.5
    draws = 200_000
    z = mean + (0.5 * logvar).exp() * torch.randn(draws, 3, 4, generator=g, dtype=torch.float64)
    zeros = torch.zeros(())
    log_ratio = gaussian_log_density(z, mean, logvar) - gaussian_log_density(z, zeros, zeros)
    monte_carlo = log_ratio.sum(-1).mean(0)
    closed = gaussian_kl(mean, logvar)
    standard_error = log_ratio.sum(-1).std(0) / math.sqrt(draws)
    assert torch.all((monte_carlo - closed).abs() < 4 * standard_error), (monte_carlo, closed)
    assert closed.min() > 0.1  # not a vacuous comparison of two zeros


def _posteriors(rho: float, batch: int = 512):
    g = torch.Generator().manual_seed(0)
    cov = torch.tensor([[1.0, rho], [rho, 1.0]])
    mean = torch.randn(batch, 2, generator=g) @ torch.linalg.cholesky(cov).T
    logvar = torch.full((batch, 2), math.log(0.09))
    return mean + 0.3 * torch.randn(batch, 2, generator=g), mean, logvar


def test_total_correlation_estimate_separates_independent_from_correlated_latents():
    independent, correlated = _posteriors(0.0), _posteriors(0.95)
    tc_independent = total_correlation_mws(*independent, dataset_size=1).item()
    tc_correlated = total_correlation_mws(*correlated, dataset_size=1).item()
    # aggregate posterior of the correlated batch: covariance Σ + 0.09 I, so ρ' = 0.95 / 1.09
    true_tc = -0.5 * math.log(1 - (0.95 / 1.09) ** 2)
    assert abs(tc_independent) < 0.1
    assert tc_correlated == pytest.approx(true_tc, abs=0.1)
    # MWS with a dataset of N adds (n_latents − 1)·log N: a constant that leaves every gradient unchanged
    shifted = total_correlation_mws(*correlated, dataset_size=480_000).item()
    assert shifted - tc_correlated == pytest.approx(math.log(480_000), rel=1e-4)


def test_supervised_contrastive_loss_by_hand():
    codes = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])  # rows 0 and 2 point the same way
    labels = torch.tensor([0, 1, 0])
    loss = supervised_contrastive_loss(codes, labels, temperature=0.5)
    # anchors 0 and 2: cos to each other 1, to row 1 0 → −log(e² / (e² + e⁰)); row 1 has no positive
    expected = -math.log(math.exp(2) / (math.exp(2) + 1))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert supervised_contrastive_loss(codes, torch.tensor([0, 1, 2]), 0.5).item() == 0.0


# ------------------------------------------------------------------------------------------------- weight decay
def test_qlae_decays_weights_only_never_biases_or_codebooks():
    model = KINDS["qlae"]()
    groups = model.parameter_groups()
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in groups[0]["params"]}
    free = {names[id(p)] for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    assert decayed | free == set(names.values()) and not decayed & free
    assert all(n.endswith("bias") or n == "quantizer.codebooks" for n in free)
    assert "quantizer.codebooks" in free and all(n.endswith("weight") for n in decayed)

    for p in model.parameters():  # make every bias non-zero so that a decay would show
        p.data.add_(0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = make_optimizer(groups, lr=0.01, betas=(0.9, 0.999))
    assert isinstance(optimizer, torch.optim.AdamW)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no gradient: only the decoupled decay can move anything
    optimizer.step()
    for name, p in model.named_parameters():
        if name in free:
            assert torch.equal(p, before[name]), name
        else:
            assert torch.allclose(p, before[name] * (1 - 0.01 * 0.1)), name


def test_trainer_builds_adamw_groups_and_resumes_a_labelled_run_exactly(tmp_path, shapes):
    images, factors = shapes[0][:64], shapes[1][:64]

    def trainer(steps, out_dir):
        source = DictArraySource({"x": images, "labels": factors}, batch_size=16, seed=1)
        config = TrainConfig(steps=steps, batch_size=16, warmup_steps=0, decay="none", checkpoint_every=3,
                             log_every=1, progress=False)
        return Trainer(KINDS["qlae"](), source, config, out_dir=out_dir)

    straight = trainer(6, tmp_path / "straight")
    assert [g["weight_decay"] for g in straight.optimizer.param_groups] == [0.1, 0.0]
    straight.fit()
    trainer(3, tmp_path / "resumed").fit()  # stops at the step-3 checkpoint
    resumed = trainer(6, tmp_path / "resumed")
    assert resumed.resume() and resumed.step == 3
    resumed.fit()
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name


def test_models_without_weight_decay_keep_plain_adam():
    model = KINDS["betavae"]()
    assert model.parameter_groups() is None
    assert type(make_optimizer(model.parameters(), 1e-3, (0.9, 0.999))) is torch.optim.Adam


# ------------------------------------------------------------------------------------------- formats & training
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_save_load_round_trip_is_exact(kind, tmp_path, shapes):
    model = KINDS[kind]().eval()
    images = shapes[0][:8]
    model.save(tmp_path / kind)
    loaded = load_model(tmp_path / kind)
    assert type(loaded) is type(model) and loaded.kind == kind and loaded.config == model.config
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    with torch.no_grad():
        codes, codes_loaded = model.encode(images), loaded.encode(images)
        assert torch.equal(codes.dense, codes_loaded.dense)
        assert torch.equal(model.decode(codes), loaded.decode(codes_loaded))
        assert torch.equal(model.metric_latents(images), loaded.metric_latents(images))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_model_trains_with_falling_loss(kind, shapes):
    images, factors = shapes
    model = KINDS[kind]()
    if kind == "xfactors":
        factors = factors[:, [0, 4]]  # two supervised factors: floor hue and shape
    source = DictArraySource({"x": images, "labels": factors}, batch_size=32, seed=0)
    config = TrainConfig(steps=40, batch_size=32, lr=3e-3, warmup_steps=0, decay="none", checkpoint_every=0,
                         log_every=1, progress=False)
    torch.manual_seed(0)
    history = Trainer(model, source, config).fit().history
    first = np.mean([r["loss"] for r in history[:5]])
    last = np.mean([r["loss"] for r in history[-5:]])
    assert last < first - 0.02, (kind, first, last)
    assert np.mean([r["recon"] for r in history[-5:]]) < np.mean([r["recon"] for r in history[:5]])


def test_xfactors_refuses_unlabelled_training_batches(shapes):
    model = KINDS["xfactors"]()
    with pytest.raises(DataError, match="labels"):
        model(shapes[0][:4])
    with pytest.raises(Exception, match="n_factors=2"):
        model({"x": shapes[0][:4], "labels": shapes[1][:4]})  # six label columns for two factor subspaces


def test_dict_source_resumes_exactly_and_keeps_rows_together():
    x = torch.arange(50, dtype=torch.float32).view(50, 1, 1, 1).expand(50, 1, 2, 2)
    labels = torch.arange(50)
    source = DictArraySource({"x": x, "labels": labels}, batch_size=8, seed=3)
    stream = iter(source)
    next(stream)
    cursor = source.state_dict()
    expected = [next(stream) for _ in range(10)]  # crosses an epoch boundary
    source.load_state_dict(cursor)
    again = iter(source)
    for batch in expected:
        other = next(again)
        assert torch.equal(batch["labels"], other["labels"]) and torch.equal(batch["x"], other["x"])
        assert batch["labels"].dtype == torch.int64
        assert torch.equal(batch["x"][:, 0, 0, 0].long(), batch["labels"])
    with pytest.raises(DataError, match="same number of rows"):
        DictArraySource({"x": x, "labels": labels[:10]}, batch_size=8)


def test_passive_helper_finds_an_active_and_a_passive_latent(shapes):
    model = KINDS["betavae"]().eval()
    last = model.encoder.mlp[-1]  # outputs [means (4) | log-variances (4)]
    with torch.no_grad():
        last.weight[[1, 5]] = 0.0  # latent 1: mean 0 and log-variance 0 for every input → passive
        last.bias[[1, 5]] = 0.0
        last.weight[4] = 0.0  # latent 0: log-variance −9 for every input → σ² ≈ 1e-4, active
        last.bias[4] = -9.0
    posteriors = encode_posteriors(model, shapes[0][:64])
    assert posteriors.means.shape == posteriors.variances.shape == (64, 4)
    assert np.allclose(posteriors.variances[:, 1], 1.0) and np.allclose(posteriors.means[:, 1], 0.0)
    labels = passive_variables(model, shapes[0][:64])["labels"]
    assert labels[0] == "active" and labels[1] == "passive"


# ----------------------------------------------------------------------------------------------------- study
def test_t_interval_matches_the_t_table():
    mean, half = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-6)
    assert math.isnan(t_interval([1.0])[1])


def test_tiny_study_writes_table_traversals_and_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(disentangle, "DCI_ESTIMATORS", 5)  # boosted trees dominate a tiny study's time
    kwargs = {"world_name": "shapes3d", "models": ["ae", "qlae"], "seeds": 2, "steps": 3, "out_dir": tmp_path,
              "batch_size": 16, "n_eval": 120, "n_train": 64, "progress": False}
    results = run_disentangle(**kwargs)
    table = (tmp_path / "table.md").read_text()
    assert "| ae |" in table and "| qlae |" in table and "InfoM" in table and " ± " in table
    stored = json.loads((tmp_path / "results.json").read_text())
    assert len(stored["runs"]) == 4 and stored["summary"]["qlae"]["infom"]["n"] == 2
    for run in stored["runs"]:
        assert 0 <= run["infom"] <= 1 and 0 <= run["dci_d"] <= 1 and run["psnr"] > 0
    for name in ("ae", "qlae"):
        png = (tmp_path / "traversals" / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG")
    model_file = tmp_path / "runs" / "ae_seed0" / "model" / "model.safetensors"
    stamp = model_file.stat().st_mtime_ns
    again = run_disentangle(**kwargs)  # finished runs are read back, not retrained
    assert model_file.stat().st_mtime_ns == stamp
    assert [r["infom"] for r in again["runs"]] == [r["infom"] for r in results["runs"]]
    with pytest.raises(ConfigError, match="unknown model"):
        run_disentangle(**{**kwargs, "models": ["nope"]})
    assert set(MODEL_NAMES) == set(KINDS)
