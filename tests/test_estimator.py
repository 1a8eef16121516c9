"""SparseCoder: the scikit-learn estimator over SparseAutoencoder + Trainer."""

from __future__ import annotations

import copy
import json

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


# --- save / load --------------------------------------------------------------------------------------------


def _assert_same_estimator(a: SparseCoder, b: SparseCoder, x: np.ndarray) -> None:
    """Bit-identical results and equal parameters and fitted attributes."""
    codes = a.transform(x)
    np.testing.assert_array_equal(b.transform(x), codes)
    np.testing.assert_array_equal(b.inverse_transform(codes), a.inverse_transform(codes))
    np.testing.assert_array_equal(b.inverse_transform(sp.csr_matrix(codes)), a.inverse_transform(sp.csr_matrix(codes)))
    assert b.score(x) == a.score(x)
    assert b.get_params() == a.get_params()
    np.testing.assert_array_equal(b.components_, a.components_)
    np.testing.assert_array_equal(b.decoder_bias_, a.decoder_bias_)
    assert (b.n_features_in_, b.n_latents_, b.k_) == (a.n_features_in_, a.n_latents_, a.k_)
    assert b.history_ == a.history_
    assert list(b.get_feature_names_out()) == list(a.get_feature_names_out())


def test_save_load_round_trip_is_exact(fitted, world_data, tmp_path):
    saved = fitted.save(tmp_path / "coder")

    assert saved == tmp_path / "coder"
    assert sorted(p.name for p in saved.iterdir()) == ["config.json", "estimator.json", "model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coder"], "temporary files left behind"
    for path in saved.iterdir():  # JSON and safetensors only: nothing a pickle loader would accept
        assert not path.read_bytes().startswith((b"\x80", b"PK\x03\x04")), path.name
    state = json.loads((saved / "estimator.json").read_text())
    assert state["params"]["n_latents"] == 64 and state["fitted"]["k_"] == K

    loaded = SparseCoder.load(saved)

    assert type(loaded) is SparseCoder and loaded is not fitted
    _assert_same_estimator(fitted, loaded, world_data[1])
    np.testing.assert_array_equal(loaded.set_params(sparse_output=True).transform(world_data[1]).toarray(),
                                  fitted.transform(world_data[1]))


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_round_trip_of_a_random_state_instance_options_and_feature_names(world_data, tmp_path):
    x = world_data[0][:256]
    coder = SparseCoder(**{**FAST, "random_state": np.random.RandomState(7), "architecture": "matryoshka",
                           "model_options": {"matryoshka_prefixes": "4,8"}, "train_options": {"log_every": 2},
                           "lr": np.float32(2e-3), "steps": np.int64(6)}).fit(x)
    coder.feature_names_in_ = np.asarray([f"unit {i}" for i in range(x.shape[1])], dtype=object)

    loaded = SparseCoder.load(coder.save(tmp_path / "coder"))

    params, restored = coder.get_params(), loaded.get_params()
    original_state, restored_state = params.pop("random_state").get_state(), restored.pop("random_state").get_state()
    assert restored == params
    assert original_state[0] == restored_state[0] and original_state[2:] == restored_state[2:]
    np.testing.assert_array_equal(original_state[1], restored_state[1])
    np.testing.assert_array_equal(loaded.feature_names_in_, coder.feature_names_in_)
    assert loaded.feature_names_in_.dtype == object
    assert loaded.model_.bottleneck.prefixes == [4, 8, 16]
    np.testing.assert_array_equal(loaded.transform(x), coder.transform(x))


def test_saved_directory_is_an_ordinary_model_directory(fitted, world_data, tmp_path, capsys):
    from aekit.cli import main

    saved = fitted.save(tmp_path / "coder")
    model = load_model(saved)
    with torch.no_grad():
        codes = model.encode(torch.from_numpy(world_data[1])).to_dense().numpy()
    np.testing.assert_array_equal(codes, fitted.transform(world_data[1]))
    data = tmp_path / "held_out.npy"
    np.save(data, world_data[1])
    assert main(["info", str(saved)]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["n_latents"] == 64
    assert main(["eval", str(saved), "--data", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fvu"] == pytest.approx(1 - fitted.score(world_data[1]), abs=1e-6)


def test_save_replaces_a_previous_save_and_nothing_else(fitted, world_data, tmp_path):
    target = tmp_path / "coder"
    other = SparseCoder(**FAST).fit(world_data[0][:256])
    other.save(target)
    fitted.save(target)
    _assert_same_estimator(fitted, SparseCoder.load(target), world_data[1][:100])

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me\n")
    with pytest.raises(aekit.ConfigError, match=f"^{theirs}: exists and is not a saved SparseCoder; choose a new "):
        fitted.save(theirs)
    assert [p.name for p in theirs.iterdir()] == ["notes.txt"]
    with pytest.raises(aekit.ConfigError, match="exists and is not a saved SparseCoder"):
        fitted.save(theirs / "notes.txt")
    assert (theirs / "notes.txt").read_text() == "keep me\n"


def test_a_failed_save_leaves_the_previous_one_intact(fitted, world_data, tmp_path, monkeypatch):
    import aekit.estimator as estimator_module

    target = tmp_path / "coder"
    fitted.save(target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def disk_full(path, obj):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(estimator_module, "atomic_write_json", disk_full)
    with pytest.raises(OSError, match="No space left"):
        SparseCoder(**FAST).fit(world_data[0][:256]).save(target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coder"], "temporary files left behind"


def test_saving_an_unfitted_estimator_raises_not_fitted(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        SparseCoder(**FAST).save(tmp_path / "coder")
    assert not (tmp_path / "coder").exists()


def _break(directory, how: str):
    """Damage a saved SparseCoder directory in one way; returns the file the error must name."""
    estimator_json = directory / "estimator.json"
    state = json.loads(estimator_json.read_text())
    if how == "estimator.json missing":
        estimator_json.unlink()
    elif how == "estimator.json not JSON":
        estimator_json.write_text('{"estimator": "SparseCoder", "params": {')
    elif how == "estimator.json not an object":
        estimator_json.write_text("[1, 2]")
    elif how == "unfitted":
        state["fitted"] = None
        estimator_json.write_text(json.dumps(state))
    elif how == "other format version":
        state["format_version"] = 99
        estimator_json.write_text(json.dumps(state))
    elif how == "unknown parameter":
        state["params"]["n_components"] = 3
        estimator_json.write_text(json.dumps(state))
    elif how == "bad fitted value":
        state["fitted"]["n_latents_"] = "64"
        estimator_json.write_text(json.dumps(state))
    elif how == "model does not match":
        state["fitted"]["n_latents_"] = 65
        estimator_json.write_text(json.dumps(state))
        return directory / "config.json"
    elif how == "config.json missing":
        (directory / "config.json").unlink()
        return directory / "config.json"
    elif how == "weights truncated":
        weights = directory / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:200])
        return weights
    elif how == "weights are a pickle":
        (directory / "model.safetensors").write_bytes(b"\x80\x04K\x01.")
        return directory / "model.safetensors"
    return estimator_json


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("estimator.json missing", r"not found; .* is a plain model directory \(read it with aekit.load_model\); "
                                   "SparseCoder.save writes estimator.json"),
        ("estimator.json not JSON", "SparseCoder description is not valid JSON"),
        ("estimator.json not an object", "SparseCoder description must hold a JSON object"),
        ("unfitted", r"holds no fitted state \('fitted' is missing\); save a fitted SparseCoder"),
        ("other format version", "format_version 99"),
        ("unknown parameter", r"unexpected \['n_components'\]"),
        ("bad fitted value", "fitted.n_latents_ must be a positive integer, got '64'"),
        ("model does not match", "the model does not match estimator.json .* do not belong together"),
        ("config.json missing", "model config not found"),
        ("weights truncated", "truncated|corrupt"),
        ("weights are a pickle", "never loads pickles"),
    ],
)
def test_load_of_a_damaged_directory_names_the_file(fitted, tmp_path, how, message):
    directory = fitted.save(tmp_path / "coder")
    culprit = _break(directory, how)
    with pytest.raises(aekit.FormatError, match=message) as err:
        SparseCoder.load(directory)
    assert str(err.value).startswith(f"{culprit}: "), str(err.value)


def test_load_of_a_missing_or_plain_directory(fitted, tmp_path):
    with pytest.raises(aekit.FormatError, match=f"^{tmp_path / 'nowhere'}: saved SparseCoder directory not found$"):
        SparseCoder.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(aekit.FormatError, match="empty/estimator.json: not found; .*empty is not a saved SparseCoder"):
        SparseCoder.load(tmp_path / "empty")
    fitted.model_.save(tmp_path / "model")
    with pytest.raises(aekit.FormatError, match=r"is a plain model directory \(read it with aekit.load_model\)"):
        SparseCoder.load(tmp_path / "model")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_load_on_a_machine_without_the_saved_device(fitted, world_data, tmp_path):
    directory = fitted.save(tmp_path / "coder")
    state = json.loads((directory / "estimator.json").read_text())
    state["params"]["device"] = "cuda"
    (directory / "estimator.json").write_text(json.dumps(state))
    with pytest.raises(aekit.ConfigError, match=r"device 'cuda' is not available here; load with SparseCoder.load\("):
        SparseCoder.load(directory)
    loaded = SparseCoder.load(directory, device="cpu")
    assert loaded.device == "cpu"
    np.testing.assert_array_equal(loaded.transform(world_data[1]), fitted.transform(world_data[1]))
