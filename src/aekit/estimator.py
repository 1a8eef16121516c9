"""`SparseCoder`: a scikit-learn estimator that trains a sparse autoencoder on a plain array.

It wraps `SparseAutoencoder` + `Trainer` (the same code path as `aekit train`) behind `fit` / `transform` /
`inverse_transform` / `score`, validates input the scikit-learn way, and writes no files unless asked. After
`fit` the input scale is folded into the weights, so `model_` maps raw rows to raw reconstructions, codes are in
raw units and ``X_hat = codes @ components_ + decoder_bias_``.

`save(dir)` writes an ordinary aekit model directory (config.json + model.safetensors, so `aekit info` and
`aekit eval` read it) plus estimator.json: the hyper-parameters and fitted attributes as JSON, never a pickle.
`SparseCoder.load(dir)` gives back an estimator whose transforms and scores are bit-identical.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._version import __version__
from .data.sources import ArraySource
from .errors import ConfigError, FormatError
from .fileio import atomic_directory, atomic_write_json, read_json
from .models.base import CONFIG_FILE, load_model
from .models.evaluate import evaluate_reconstruction
from .models.sae import SAEConfig, SparseAutoencoder
from .nn.codes import Codes
from .train.config import TrainConfig
from .train.distributed import resolve_device
from .train.trainer import Trainer

CHUNK_ROWS = 4096  # rows encoded/decoded at a time by transform, inverse_transform and score
DEFAULT_EXPANSION = 8  # n_latents=None means this many latents per input feature
DEFAULT_K = 32  # k=None means min(DEFAULT_K, n_latents)
DEFAULT_WARMUP = 50  # warmup_steps=None means min(DEFAULT_WARMUP, steps // 10)

# scikit-learn's `check_estimator` checks that do not apply to SparseCoder, {check name: one-line reason}; pass
# this as `expected_failed_checks` (tests/test_estimator.py does, for every architecture). It is empty: every
# check scikit-learn 1.9 runs passes, tiny fits included (batch_size and init_samples are capped at n_samples).
SKIPPED_CHECKS: dict[str, str] = {}

ESTIMATOR_FILE = "estimator.json"  # next to config.json + model.safetensors in a saved SparseCoder directory
ESTIMATOR_FORMAT_VERSION = 1
_RANDOM_STATE_KEY = "numpy.random.RandomState"  # how a RandomState random_state is spelled in estimator.json

_MODEL_PARAMS = ("n_latents", "architecture", "k", "l1_coefficient", "l0_coefficient", "aux_k", "normalize_input")
_TRAIN_PARAMS = ("steps", "batch_size", "lr", "warmup_steps", "decay", "device", "seed", "progress")


class SparseCoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Learn a sparse overcomplete code of X with a sparse autoencoder (TopK by default).

    Parameters
    ----------
    n_latents : int or None, default=None
        Number of latents (dictionary size); None means 8 × n_features.
    architecture : str, default="topk"
        One of aekit's SAE bottlenecks: "topk", "batchtopk", "relu", "jumprelu", "gated", "matryoshka".
    k : int or None, default=None
        topk: latents active per row; batchtopk/matryoshka: mean active latents per row. None means
        min(32, n_latents). Must not exceed n_latents. Ignored by the other architectures.
    l1_coefficient : float, default=1e-3
        L1 penalty weight ("relu", "gated").
    l0_coefficient : float, default=1e-3
        L0 penalty weight ("jumprelu").
    aux_k : int or None, default=None
        Latents the AuxK loss may use to revive dead latents; None means n_features // 2.
    normalize_input : bool, default=True
        Scale inputs to unit mean squared norm while training (folded into the weights after fit).
    steps : int, default=2000
        Optimizer steps (Adam), each on one shuffled batch.
    batch_size : int, default=1024
        Rows per step; capped at n_samples, so a small dataset is trained on full batches.
    lr : float, default=1e-3
        Peak learning rate.
    warmup_steps : int or None, default=None
        Linear learning-rate warm-up; None means min(50, steps // 10).
    decay : {"linear", "cosine", "none"}, default="linear"
        Learning-rate decay over the last 20 % of the steps.
    sparse_output : bool, default=False
        `transform` returns a scipy.sparse CSR matrix instead of a dense array.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where to train and encode; results are bit-reproducible for a fixed random_state on CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation and the batch order (an int is used as aekit's `seed` directly).
    verbose : bool, default=False
        Show a progress bar while training.
    model_options, train_options : dict or None, default=None
        Any other `SAEConfig` / `TrainConfig` field (e.g. {"matryoshka_prefixes": "16,64"},
        {"grad_clip": 0.5}); fields that are constructor parameters above must be set there.

    Attributes
    ----------
    model_ : SparseAutoencoder
        The trained model (input scale folded in; `model_.save(dir)` writes it in aekit's format).
    components_ : ndarray of shape (n_latents, n_features), float32
        Decoder rows (dictionary atoms), unit norm unless an architecture leaves them free.
    decoder_bias_ : ndarray of shape (n_features,), float32
        Decoder bias: ``inverse_transform(codes) == codes @ components_ + decoder_bias_``.
    n_latents_, k_ : int
        The resolved n_latents and k.
    history_ : list of dict
        The Trainer's metric records (loss terms, L0, dead fraction, learning rate) every `log_every` steps.
    n_features_in_ : int
    feature_names_in_ : ndarray of str, only when X had string column names

    A fitted SparseCoder is saved with `save(dir)` and read back with `SparseCoder.load(dir)` (JSON and
    safetensors, no pickle); dir is also an ordinary aekit model directory.
    """

    def __init__(
        self,
        n_latents: int | None = None,
        architecture: str = "topk",
        k: int | None = None,
        l1_coefficient: float = 1e-3,
        l0_coefficient: float = 1e-3,
        aux_k: int | None = None,
        normalize_input: bool = True,
        steps: int = 2000,
        batch_size: int = 1024,
        lr: float = 1e-3,
        warmup_steps: int | None = None,
        decay: str = "linear",
        sparse_output: bool = False,
        device: str = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
        model_options: dict[str, Any] | None = None,
        train_options: dict[str, Any] | None = None,
    ):
        self.n_latents = n_latents
        self.architecture = architecture
        self.k = k
        self.l1_coefficient = l1_coefficient
        self.l0_coefficient = l0_coefficient
        self.aux_k = aux_k
        self.normalize_input = normalize_input
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.warmup_steps = warmup_steps
        self.decay = decay
        self.sparse_output = sparse_output
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.model_options = model_options
        self.train_options = train_options

    # --- fitting ----------------------------------------------------------------------------------------
    def fit(self, X, y=None) -> SparseCoder:
        """Train a fresh sparse autoencoder on X (n_samples, n_features); y is ignored."""
        X = validate_data(self, X, dtype=np.float32)
        n_samples, n_features = X.shape
        seed = self._seed()
        model_config = self._model_config(n_features)
        train_config = self._train_config(n_samples, seed)
        model = SparseAutoencoder(model_config, seed=seed)
        x = torch.tensor(X)  # a copy: the input may be read-only (memmap) and must not be aliased
        source = ArraySource(x, train_config.batch_size, seed=seed, where="X")
        result = Trainer(model, source, train_config, out_dir=None).fit()
        model.eval()
        model.prepare_for_save()  # fold the input scale: raw rows in, raw codes and reconstructions out

        self._adopt(model, result.history)
        return self

    def _adopt(self, model: SparseAutoencoder, history: list[dict[str, Any]]) -> None:
        """Set the fitted attributes that follow from a trained (evaluation-mode, scale-folded) model."""
        self.model_ = model
        self.n_latents_ = model.config.n_latents
        self.k_ = model.config.k
        self.components_ = model.W_dec.detach().cpu().numpy().copy()
        self.decoder_bias_ = model.b_dec.detach().cpu().numpy().copy()
        self.history_ = history

    def _seed(self) -> int:
        if isinstance(self.random_state, numbers.Integral) and not isinstance(self.random_state, bool):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _model_config(self, n_features: int) -> SAEConfig:
        n_latents = DEFAULT_EXPANSION * n_features if self.n_latents is None else self.n_latents
        values = _options(self.model_options, "model_options", SAEConfig, _MODEL_PARAMS + ("d_in",))
        values.update(
            d_in=n_features,
            n_latents=n_latents,
            architecture=self.architecture,
            l1_coefficient=self.l1_coefficient,
            l0_coefficient=self.l0_coefficient,
            aux_k=self.aux_k,
            normalize_input=self.normalize_input,
        )
        if self.k is not None:
            values["k"] = self.k
        elif isinstance(n_latents, numbers.Integral):
            values["k"] = min(DEFAULT_K, int(n_latents))
        return SAEConfig.from_dict(values)  # type checks and validation: ConfigError (a ValueError)

    def _train_config(self, n_samples: int, seed: int) -> TrainConfig:
        values = _options(self.train_options, "train_options", TrainConfig, _TRAIN_PARAMS)
        steps = self.steps
        warmup = self.warmup_steps
        if warmup is None and isinstance(steps, numbers.Integral):
            warmup = min(DEFAULT_WARMUP, int(steps) // 10)
        values.update(steps=steps, batch_size=self.batch_size, lr=self.lr, decay=self.decay,
                      device=self.device, seed=seed, progress=bool(self.verbose))
        if warmup is not None:
            values["warmup_steps"] = warmup
        values.setdefault("checkpoint_every", 0)  # no out_dir: nothing is written anyway
        config = TrainConfig.from_dict(values)
        # a batch larger than the data would only repeat rows; the init sample never needs more than all rows
        config.batch_size = min(config.batch_size, n_samples)
        config.init_samples = min(config.init_samples, n_samples)
        return config

    # --- using the codes --------------------------------------------------------------------------------
    def transform(self, X):
        """Codes of X: ndarray (n_samples, n_latents) float32, or CSR when `sparse_output=True`."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        if self.sparse_output:
            parts = [_codes_to_csr(codes) for codes in self._encode_chunks(X)]
            if not parts:
                return sp.csr_matrix((0, self.n_latents_), dtype=np.float32)
            return sp.vstack(parts, format="csr")
        out = np.zeros((len(X), self.n_latents_), dtype=np.float32)
        for start, codes in zip(range(0, len(X), CHUNK_ROWS), self._encode_chunks(X), strict=True):
            out[start : start + CHUNK_ROWS] = codes.to_dense().cpu().numpy()
        return out

    def inverse_transform(self, X):
        """Reconstruct rows from codes (dense array or scipy.sparse, shape (n_samples, n_latents))."""
        check_is_fitted(self)
        codes = check_array(X, accept_sparse="csr", dtype=np.float32, input_name="codes")
        if codes.shape[1] != self.n_latents_:
            raise ValueError(f"codes have {codes.shape[1]} columns but this SparseCoder has "
                             f"{self.n_latents_} latents")
        out = np.empty((codes.shape[0], self.n_features_in_), dtype=np.float32)
        device = self._model_device()
        with torch.no_grad():
            for start in range(0, codes.shape[0], CHUNK_ROWS):
                chunk = codes[start : start + CHUNK_ROWS]
                dense = chunk.toarray() if sp.issparse(chunk) else np.array(chunk)
                decoded = self.model_.decode(Codes(self.n_latents_, dense=torch.from_numpy(dense).to(device)))
                out[start : start + CHUNK_ROWS] = decoded.cpu().numpy()
        return out

    def score(self, X, y=None) -> float:
        """Fraction of the variance of X the reconstruction explains: 1 − FVU (higher is better, ≤ 1).

        FVU = Σ‖x − x̂‖² / Σ‖x − mean(x)‖², so this is the variance-weighted R² of the reconstruction
        (sklearn.metrics.r2_score(X, inverse_transform(transform(X)), multioutput="variance_weighted")).
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        metrics = evaluate_reconstruction(self.model_, torch.tensor(X), batch_size=CHUNK_ROWS)
        return 1.0 - metrics["fvu"]

    def _encode_chunks(self, X: np.ndarray) -> Iterator[Codes]:
        device = self._model_device()
        self.model_.eval()
        with torch.no_grad():
            for start in range(0, len(X), CHUNK_ROWS):
                yield self.model_.encode(torch.tensor(X[start : start + CHUNK_ROWS]).to(device))

    def _model_device(self) -> torch.device:
        return self.model_.W_dec.device

    # --- saving and loading -----------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write the fitted estimator to `directory`, atomically: the model as an ordinary aekit model directory
        (config.json + model.safetensors) plus estimator.json (hyper-parameters, fitted attributes).

        A previous save at `directory` is replaced; any other existing file or non-empty directory is refused.
        Raises NotFittedError before `fit`.
        """
        check_is_fitted(self)
        directory = Path(directory)
        if directory.exists() and not (directory.is_dir() and _is_replaceable(directory)):
            raise ConfigError(f"{directory}: exists and is not a saved SparseCoder; choose a new directory "
                              "(save replaces only a previous save)")
        params = {name: _to_json(value, f"SparseCoder.{name}") for name, value in self.get_params(deep=False).items()}
        fitted = {"n_features_in_": int(self.n_features_in_), "n_latents_": int(self.n_latents_), "k_": int(self.k_),
                  "history_": _to_json(self.history_, "SparseCoder.history_")}
        if hasattr(self, "feature_names_in_"):
            fitted["feature_names_in_"] = [str(name) for name in self.feature_names_in_]
        state = {"estimator": "SparseCoder", "format_version": ESTIMATOR_FORMAT_VERSION,
                 "aekit_version": __version__, "params": params, "fitted": fitted}
        with atomic_directory(directory) as tmp:
            self.model_.save(tmp)  # the model's own writer: config.json + model.safetensors
            atomic_write_json(tmp / ESTIMATOR_FILE, state)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str | None = None) -> SparseCoder:
        """Read an estimator written by `save`; `device` ("auto", "cpu", "cuda") overrides the saved one.

        Every problem (missing directory or file, corrupt JSON or weights, files that do not belong together)
        is a FormatError naming the file.
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise FormatError(f"{directory}: saved SparseCoder directory not found")
        path = directory / ESTIMATOR_FILE
        if not path.is_file():
            plain = (directory / CONFIG_FILE).is_file()
            what = "a plain model directory (read it with aekit.load_model)" if plain else "not a saved SparseCoder"
            raise FormatError(f"{path}: not found; {directory} is {what}; SparseCoder.save writes estimator.json")
        state = read_json(path, "SparseCoder description")
        if state.get("estimator") != "SparseCoder" or state.get("format_version") != ESTIMATOR_FORMAT_VERSION:
            raise FormatError(f"{path}: not a SparseCoder description of format_version {ESTIMATOR_FORMAT_VERSION} "
                              f"(got estimator {state.get('estimator')!r}, format_version "
                              f"{state.get('format_version')!r}); save it again with this aekit")
        params, fitted = state.get("params"), state.get("fitted")
        if not isinstance(params, dict):
            raise FormatError(f"{path}: 'params' must be a JSON object of SparseCoder parameters")
        if not isinstance(fitted, dict):
            raise FormatError(f"{path}: holds no fitted state ('fitted' is missing); save a fitted SparseCoder")
        names = set(cls._get_param_names())
        if set(params) != names:
            raise FormatError(f"{path}: parameters do not match SparseCoder (missing {sorted(names - set(params))}, "
                              f"unexpected {sorted(set(params) - names)})")
        estimator = cls(**{name: _from_json(value) for name, value in params.items()})
        if device is not None:
            estimator.set_params(device=device)
        for name in ("n_features_in_", "n_latents_", "k_"):
            value = fitted.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise FormatError(f"{path}: fitted.{name} must be a positive integer, got {value!r}")
        history = fitted.get("history_")
        if not isinstance(history, list) or not all(isinstance(record, dict) for record in history):
            raise FormatError(f"{path}: fitted.history_ must be a list of JSON objects")
        names_in = fitted.get("feature_names_in_")
        if names_in is not None and (not isinstance(names_in, list) or len(names_in) != fitted["n_features_in_"]
                                     or not all(isinstance(name, str) for name in names_in)):
            raise FormatError(f"{path}: fitted.feature_names_in_ must list {fitted['n_features_in_']} strings")

        model = load_model(directory)  # checks config.json and model.safetensors, naming the file at fault
        config = model.config
        if not isinstance(model, SparseAutoencoder) or (config.d_in, config.n_latents, config.k) != (
                fitted["n_features_in_"], fitted["n_latents_"], fitted["k_"]):
            raise FormatError(f"{directory / CONFIG_FILE}: the model does not match {ESTIMATOR_FILE} (n_features_in_ "
                              f"{fitted['n_features_in_']}, n_latents_ {fitted['n_latents_']}, k_ {fitted['k_']}); "
                              "the files do not belong together")
        try:
            model.to(resolve_device(estimator.device))
        except ConfigError:
            raise ConfigError(f"{path}: device {estimator.device!r} is not available here; "
                              "load with SparseCoder.load(directory, device='cpu')") from None
        model.eval()
        estimator._adopt(model, history)  # n_latents_ and k_ equal the fitted ones: checked above
        estimator.n_features_in_ = fitted["n_features_in_"]
        if names_in is not None:
            estimator.feature_names_in_ = np.asarray(names_in, dtype=object)
        return estimator

    # --- scikit-learn plumbing --------------------------------------------------------------------------
    @property
    def _n_features_out(self) -> int:
        """Output width for get_feature_names_out ("sparsecoder0", "sparsecoder1", ...)."""
        return self.n_latents_

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]  # the model computes in float32
        tags.non_deterministic = False  # a fixed random_state gives identical results (on CPU)
        return tags


def _options(options: dict[str, Any] | None, name: str, config_class, reserved: tuple[str, ...]) -> dict[str, Any]:
    """A copy of model_options / train_options, refusing keys that have their own constructor parameter."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ConfigError(f"{name}: expected a dict of {config_class.__name__} fields, got {type(options).__name__}")
    clash = sorted(set(options) & set(reserved))
    if clash:
        raise ConfigError(f"{name}: {clash[0]!r} is set by its own SparseCoder parameter (or by fit); set it there")
    return dict(options)


def _is_replaceable(directory: Path) -> bool:
    """An empty directory or a previous save: what `save` may replace."""
    return not any(directory.iterdir()) or (directory / ESTIMATOR_FILE).is_file()


def _to_json(value: Any, where: str) -> Any:
    """A parameter or fitted value as plain JSON (numpy scalars become Python numbers), or a ConfigError."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.random.RandomState):
        name, keys, pos, has_gauss, cached = value.get_state()
        return {_RANDOM_STATE_KEY: [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _to_json(item, f"{where}[{key!r}]") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise ConfigError(f"{where}: a {type(value).__name__} cannot be saved as JSON; SparseCoder.save stores numbers, "
                      "strings, booleans, None, lists, dicts with string keys and numpy RandomStates")


def _from_json(value: Any) -> Any:
    """Inverse of `_to_json` for parameters: a saved RandomState becomes one again, in the same state."""
    if isinstance(value, dict) and set(value) == {_RANDOM_STATE_KEY}:
        name, keys, pos, has_gauss, cached = value[_RANDOM_STATE_KEY]
        random_state = np.random.RandomState()
        random_state.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        return random_state
    return value


def _codes_to_csr(codes: Codes) -> sp.csr_matrix:
    """CSR of a chunk of codes; only non-zero activations are stored."""
    if not codes.is_sparse:
        return sp.csr_matrix(codes.dense.cpu().numpy())
    values, indices = codes.values.float().cpu().numpy(), codes.indices.cpu().numpy()
    n, width = values.shape
    matrix = sp.csr_matrix(
        (values.ravel(), indices.ravel(), np.arange(0, n * width + 1, width)), shape=(n, codes.n_latents)
    )
    matrix.sum_duplicates()  # padded slots of variable-width codes may repeat an index (with value 0)
    matrix.eliminate_zeros()
    return matrix
