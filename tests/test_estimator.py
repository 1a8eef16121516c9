"""SparseCoder: the scikit-learn estimator over SparseAutoencoder + Trainer."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.metrics import r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

import aekit
from aekit import SparseCoder
from aekit.estimator import SKIPPED_CHECKS
from aekit.models import load_model
from aekit.worlds import FeatureWorld, FeatureWorldConfig

K = 6
FAST = dict(n_latents=16, k=4, steps=5, batch_size=64, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def world_data() -> tuple[np.ndarray, np.ndarray]:
    world = FeatureWorld(FeatureWorldConfig(d=16, n_features=32, mean_active=3))
    train = world.sample(4096, seed=1, with_magnitudes=False).x.numpy()
    held_out = world.sample(1024, seed=2, with_magnitudes=False).x.numpy()
    return train, held_out


@pytest.fixture(scope="module")
def fitted(world_data) -> SparseCoder:
    coder = SparseCoder(n_latents=64, k=K, steps=200, batch_size=256, lr=1e-2, device="cpu", random_state=0)
    return coder.fit(world_data[0])


@pytest.mark.parametrize("architecture", ["topk", "batchtopk", "relu", "jumprelu", "gated", "matryoshka"])
def test_check_estimator(architecture):
    results = check_estimator(
        SparseCoder(architecture=architecture, **FAST), expected_failed_checks=SKIPPED_CHECKS, on_skip=None
    )
    ran = {r["check_name"] for r in results if r["status"] == "passed"}
    assert {"check_transformer_general", "check_fit_idempotent", "check_estimators_nan_inf"} <= ran


def test_check_estimator_sparse_output():
    check_estimator(SparseCoder(sparse_output=True, **FAST), expected_failed_checks=SKIPPED_CHECKS, on_skip=None)


def test_fit_transform_on_feature_world(fitted, world_data):
    train, held_out = world_data
    assert fitted.score(held_out) > 0.8
    codes = fitted.transform(held_out)
    assert isinstance(codes, np.ndarray) and codes.shape == (1024, 64) and codes.dtype == np.float32
    assert (np.count_nonzero(codes, axis=1) <= K).all()
    assert (codes >= 0).all()
    assert fitted.components_.shape == (64, 16) and fitted.decoder_bias_.shape == (16,)
    np.testing.assert_allclose(np.linalg.norm(fitted.components_, axis=1), 1.0, rtol=1e-5)
    assert fitted.n_features_in_ == 16 and fitted.n_latents_ == 64 and fitted.k_ == K
    assert fitted.history_ and fitted.history_[-1]["step"] == 200
    assert list(fitted.get_feature_names_out()[:2]) == ["sparsecoder0", "sparsecoder1"]


def test_score_is_variance_weighted_r2(fitted, world_data):
    x = world_data[1]
    x_hat = fitted.inverse_transform(fitted.transform(x))
    assert fitted.score(x) == pytest.approx(r2_score(x, x_hat, multioutput="variance_weighted"), abs=1e-5)


def test_sparse_output_is_csr_equal_to_dense(fitted, world_data):
    x = world_data[1]
    dense = fitted.transform(x)
    sparse = copy.copy(fitted).set_params(sparse_output=True)  # the same fitted model, sparse output
    codes = sparse.transform(x)
    assert sp.issparse(codes) and codes.format == "csr" and codes.dtype == np.float32
    np.testing.assert_array_equal(codes.toarray(), dense)
    assert codes.nnz == np.count_nonzero(dense)
    assert (np.diff(codes.indptr) <= K).all()


def test_inverse_transform_is_the_model_reconstruction(fitted, world_data):
    x = world_data[1]
    codes = fitted.transform(x)
    x_hat = fitted.inverse_transform(codes)
    with torch.no_grad():
        expected = fitted.model_(torch.from_numpy(x)).x_hat.numpy()
    np.testing.assert_allclose(x_hat, expected, atol=1e-5)
    np.testing.assert_allclose(x_hat, codes @ fitted.components_ + fitted.decoder_bias_, atol=1e-5)
    np.testing.assert_allclose(fitted.inverse_transform(sp.csr_matrix(codes)), x_hat, atol=1e-6)
    with pytest.raises(ValueError, match="latents"):
        fitted.inverse_transform(codes[:, :10])


def test_saved_model_encodes_like_the_estimator(fitted, world_data, tmp_path):
    x = world_data[1][:100]
    fitted.model_.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    with torch.no_grad():
        codes = loaded.encode(torch.from_numpy(x)).to_dense().numpy()
    np.testing.assert_allclose(codes, fitted.transform(x), atol=1e-5)


def test_same_random_state_gives_identical_components(world_data):
    x = world_data[0][:512]
    a = SparseCoder(**{**FAST, "random_state": 3, "steps": 20}).fit(x)
    b = SparseCoder(**{**FAST, "random_state": 3, "steps": 20}).fit(x)
    c = SparseCoder(**{**FAST, "random_state": 4, "steps": 20}).fit(x)
    np.testing.assert_array_equal(a.components_, b.components_)
    np.testing.assert_array_equal(a.transform(x), b.transform(x))
    assert not np.array_equal(a.components_, c.components_)
    # refitting the same estimator starts from scratch
    np.testing.assert_array_equal(a.fit(x).components_, b.components_)


def test_clone_get_params_set_params(fitted):
    params = fitted.get_params()
    assert params["n_latents"] == 64 and params["k"] == K and params["random_state"] == 0
    copy = clone(fitted)
    assert copy.get_params() == params
    assert not hasattr(copy, "model_")
    copy.set_params(k=3, architecture="batchtopk")
    assert copy.k == 3 and copy.architecture == "batchtopk" and fitted.k == K


def test_pipeline_with_standard_scaler(world_data):
    x = world_data[0][:1024]
    pipe = make_pipeline(StandardScaler(), SparseCoder(**{**FAST, "steps": 30}))
    codes = pipe.fit_transform(x)
    assert codes.shape == (1024, 16)
    scaler, coder = pipe.named_steps["standardscaler"], pipe.named_steps["sparsecoder"]
    np.testing.assert_array_equal(pipe.transform(x), coder.transform(scaler.transform(x)))
    assert pipe.inverse_transform(codes).shape == x.shape
    assert np.isfinite(pipe.score(x))


def test_small_dataset_with_batch_larger_than_it():
    x = np.random.default_rng(0).normal(size=(10, 5))
    coder = SparseCoder(n_latents=12, k=2, steps=8, batch_size=1024, device="cpu", random_state=0).fit(x)
    assert coder.history_[-1]["samples"] == 8 * 10  # full-batch steps, not 1024 repeated rows
    assert coder.transform(x).shape == (10, 12)


def test_defaults_resolve_from_the_data():
    x = np.random.default_rng(0).normal(size=(50, 3))
    coder = SparseCoder(steps=3, device="cpu", random_state=0).fit(x)
    assert coder.n_latents_ == 24 and coder.k_ == 24  # 8 × n_features; k capped at n_latents


def test_fit_writes_no_files(tmp_path, monkeypatch, world_data):
    monkeypatch.chdir(tmp_path)
    SparseCoder(**FAST).fit(world_data[0][:256])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_is_refused(bad, fitted, world_data):
    x = world_data[1][:50].copy()
    x[3, 2] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        SparseCoder(**FAST).fit(x)
    with pytest.raises(ValueError, match="NaN|infinity"):
        fitted.transform(x)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"k": 20}, "k: must be between 1 and n_latents=16"),
        ({"architecture": "sparse"}, "architecture: choose one of"),
        ({"lr": -1.0}, "lr"),
        ({"steps": 0}, "steps"),
        ({"model_options": {"k": 3}}, "model_options: 'k' is set by its own SparseCoder parameter"),
        ({"model_options": {"jumprelu_bandwith": 0.1}}, "did you mean 'jumprelu_bandwidth'"),
        ({"train_options": {"grad_clip": -1}}, "grad_clip"),
    ],
)
def test_invalid_parameters_raise_value_error_at_fit(params, match, world_data):
    coder = SparseCoder(**{**FAST, **params})  # no validation in __init__ (scikit-learn rule)
    with pytest.raises(ValueError, match=match):
        coder.fit(world_data[0][:64])


def test_options_reach_the_configs(world_data):
    coder = SparseCoder(**{**FAST, "architecture": "matryoshka", "model_options": {"matryoshka_prefixes": "4,8"},
                           "train_options": {"log_every": 1}})
    coder.fit(world_data[0][:128])
    assert coder.model_.bottleneck.prefixes == [4, 8, 16]
    assert len(coder.history_) == FAST["steps"]


def test_exported_from_package():
    assert aekit.SparseCoder is SparseCoder and "SparseCoder" in aekit.__all__
