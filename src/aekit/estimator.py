"""`SparseCoder`: a scikit-learn estimator that trains a sparse autoencoder on a plain array.

It wraps `SparseAutoencoder` + `Trainer` (the same code path as `aekit train`) behind `fit` / `transform` /
`inverse_transform` / `score`, validates input the scikit-learn way, and writes no files. After `fit` the
input scale is folded into the weights, so `model_` maps raw rows to raw reconstructions, codes are in raw
units and ``X_hat = codes @ components_ + decoder_bias_``.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from .data.sources import ArraySource
from .errors import ConfigError
from .models.evaluate import evaluate_reconstruction
from .models.sae import SAEConfig, SparseAutoencoder
from .nn.codes import Codes
from .train.config import TrainConfig
from .train.trainer import Trainer

CHUNK_ROWS = 4096  # rows encoded/decoded at a time by transform, inverse_transform and score
DEFAULT_EXPANSION = 8  # n_latents=None means this many latents per input feature
DEFAULT_K = 32  # k=None means min(DEFAULT_K, n_latents)
DEFAULT_WARMUP = 50  # warmup_steps=None means min(DEFAULT_WARMUP, steps // 10)

# scikit-learn's `check_estimator` checks that do not apply to SparseCoder, {check name: one-line reason}; pass
# this as `expected_failed_checks` (tests/test_estimator.py does, for every architecture). It is empty: every
# check scikit-learn 1.9 runs passes, tiny fits included (batch_size and init_samples are capped at n_samples).
SKIPPED_CHECKS: dict[str, str] = {}

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

        self.model_ = model
        self.n_latents_ = model_config.n_latents
        self.k_ = model_config.k
        self.components_ = model.W_dec.detach().cpu().numpy().copy()
        self.decoder_bias_ = model.b_dec.detach().cpu().numpy().copy()
        self.history_ = result.history
        return self

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
