"""Disentanglement metrics against known generative factors: InfoMEC, MIG, DCI, SAP and Gaussian total correlation.

Every function takes `factors`, an (n, K) array of discrete ground-truth factor values (grid indices or any labels),
and `latents`, an (n, J) float array of codes, and returns plain numbers. Definitions follow the reference code of
each paper (InfoMEC: Hsu et al. 2023, kylehkhsu/latent_quantization; MIG, DCI, SAP: disentanglement_lib); where
this module deviates, the function's docstring says how and why. Mutual information is in nats throughout.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import sparse
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_selection import mutual_info_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, mutual_info_score
from sklearn.svm import LinearSVC

from ..errors import ConfigError, DataError, ShapeError
from ..seeding import derive_seed

MAX_DISCRETE_VALUES = 1000  # a "discrete" latent with more distinct values is almost surely a continuous code

# ------------------------------------------------------------------------------------------------ shared helpers


def _labels(column: np.ndarray) -> np.ndarray:
    """Codes 0..C-1 for the distinct values of a column (a label encoder)."""
    return np.unique(column, return_inverse=True)[1].reshape(-1)


def _check(factors: np.ndarray, latents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(factor codes (n, K) int64, latents (n, J) float64), or an error that names the bad argument."""
    factors, latents = np.asarray(factors), np.asarray(latents, dtype=np.float64)
    if factors.ndim != 2 or latents.ndim != 2:
        raise ShapeError(f"factors and latents: expected 2-D arrays (n, K) and (n, J); "
                         f"got shapes {factors.shape} and {latents.shape}")
    if len(factors) != len(latents) or len(factors) < 2:
        raise ShapeError(f"factors and latents: need the same number n ≥ 2 of rows; got {len(factors)} and "
                         f"{len(latents)}")
    if factors.shape[1] == 0 or latents.shape[1] == 0:
        raise ShapeError(f"factors and latents: need at least one column each; got shapes {factors.shape} and "
                         f"{latents.shape}")
    if not np.all(np.isfinite(latents)):
        raise DataError("latents: contains NaN or Inf; fix the encoder output before scoring it")
    codes = np.stack([_labels(factors[:, k]) for k in range(factors.shape[1])], axis=1)
    single = [k for k in range(codes.shape[1]) if codes[:, k].max() == 0]
    if single:
        raise DataError(f"factors[:, {single[0]}]: the factor takes a single value in these samples, so there is "
                        f"nothing to recover; drop that column or sample it")
    return codes, latents


def _entropy(codes: np.ndarray) -> float:
    """Plug-in entropy (nats) of a discrete sample."""
    p = np.bincount(codes) / len(codes)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _split(n: int, train_fraction: float, seed: int, purpose: str) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < train_fraction < 1:
        raise ConfigError(f"train_fraction: must lie in (0, 1) (got {train_fraction!r})")
    n_train = int(round(train_fraction * n))
    if not 1 <= n_train < n:
        raise ConfigError(f"train_fraction: {train_fraction} of {n} samples leaves an empty train or test split")
    order = np.random.default_rng(derive_seed(purpose, seed)).permutation(n)
    return order[:n_train], order[n_train:]


def _rescale(x: np.ndarray | float, n: int) -> np.ndarray | float:
    """Map a concentration max/sum from [1/n, 1] to [0, 1]; with one candidate, concentration is trivially 1."""
    return 1.0 if n == 1 else (x - 1.0 / n) / (1.0 - 1.0 / n)


def _concentration(matrix: np.ndarray, axis: int) -> np.ndarray:
    """max / sum along `axis`; a slice with no information at all counts as spread evenly (1 / length)."""
    total = matrix.sum(axis=axis)
    safe = np.where(total > 0, total, 1.0)
    return np.where(total > 0, matrix.max(axis=axis) / safe, 1.0 / matrix.shape[axis])


# --------------------------------------------------------------------------------------------------------- InfoMEC


def infomec(factors: np.ndarray, latents: np.ndarray, discrete_latents: bool = False, seed: int = 0) -> dict:
    """InfoM (modularity), InfoC (compactness) and InfoE (explicitness) of Hsu et al. 2023, each in [0, 1].

    NMI_ij = I(s_i; z_j) / H(s_i): continuous latents are standardised and I is the kNN estimate of
    `mutual_info_classif(n_neighbors=10)`; discrete latents use the plug-in estimate. Active latents: range >
    max range / 20 (continuous) or > 0 (discrete); the others are left out (raw ranges are compared, so latents
    must share one unit, as an encoder's do; rescale mixed-unit columns first). As in the reference code,
    InfoM = mean over latents j of rescale(max_i NMI_ij / Σ_i NMI_ij, K) (each latent captures at most one source)
    and InfoC = mean over sources i of rescale(max_j NMI_ij / Σ_j NMI_ij, J_active) (each source is captured by one
    latent), with rescale(x, n) = (x − 1/n) / (1 − 1/n). InfoE = mean over sources of (H(s_i) − log loss) / H(s_i)
    of an unpenalised multinomial logistic regression from the active latents (standardised, or one-hot if
    discrete), fit and scored in sample like the reference.

    Deviations from the reference code: InfoE's null predictor is the empirical marginal (its log loss is the
    plug-in H(s_i)) and the regression is unweighted, where the reference fits class-balanced weights, which
    makes the null uniform (log C); the two agree for uniformly sampled factors. A latent (source) whose NMIs are
    all zero counts as spread evenly (contributes 0) instead of dividing by zero, and a single candidate gives
    concentration 1. `seed` seeds the jitter the kNN estimator adds to break ties.

    Returns {"infom", "infoc", "infoe", "nmi" (K × J_active), "active" (bool, length J)}.
    """
    sources, latents = _check(factors, latents)
    n_sources = sources.shape[1]
    ranges = latents.max(axis=0) - latents.min(axis=0)
    active = ranges > 0 if discrete_latents else ranges > ranges.max() / 20
    if not active.any():
        return {"infom": 0.0, "infoc": 0.0, "infoe": 0.0, "nmi": np.zeros((n_sources, 0)), "active": active}
    z = latents[:, active]
    if discrete_latents:
        z_codes = np.stack([_labels(z[:, j]) for j in range(z.shape[1])], axis=1)
        features = _one_hot(z_codes)
    else:
        features = (z - z.mean(axis=0)) / z.std(axis=0)
    nmi = np.empty((n_sources, z.shape[1]))
    infoe = np.empty(n_sources)
    for i in range(n_sources):
        s = sources[:, i]
        entropy = _entropy(s)
        if discrete_latents:
            mi = np.array([mutual_info_score(s, z_codes[:, j]) for j in range(z.shape[1])])
        else:
            mi = mutual_info_classif(features, s, discrete_features=False, n_neighbors=10, random_state=seed)
        nmi[i] = mi / entropy
        infoe[i] = (entropy - _logistic_log_loss(features, s)) / entropy
    infom = float(np.mean(_rescale(_concentration(nmi, axis=0), n_sources)))
    infoc = float(np.mean(_rescale(_concentration(nmi, axis=1), z.shape[1])))
    return {"infom": infom, "infoc": infoc, "infoe": float(np.mean(infoe)), "nmi": nmi, "active": active}


def _one_hot(codes: np.ndarray) -> sparse.csr_matrix:
    """Sparse one-hot encoding of every column of an (n, J) code matrix, side by side."""
    widths = codes.max(axis=0) + 1
    crowded = int(np.argmax(widths))
    if widths[crowded] > MAX_DISCRETE_VALUES:
        raise ConfigError(f"discrete_latents: active latent {crowded} takes {widths[crowded]} distinct values, "
                          f"which looks continuous; pass discrete_latents=False")
    columns = codes + np.concatenate([[0], np.cumsum(widths)[:-1]])[None, :]
    n, j = codes.shape
    return sparse.csr_matrix((np.ones(n * j), (np.repeat(np.arange(n), j), columns.reshape(-1))),
                             shape=(n, int(widths.sum())))


def _logistic_log_loss(features: np.ndarray | sparse.csr_matrix, target: np.ndarray) -> float:
    """In-sample log loss (nats) of an unpenalised multinomial logistic regression (lbfgs, 100 iterations)."""
    model = LogisticRegression(C=np.inf, max_iter=100, tol=1e-4)
    with warnings.catch_warnings():
        # Separable classes drive unpenalised weights to infinity; stopping at max_iter is expected, not an error.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(features, target)
    return float(log_loss(target, model.predict_proba(features), labels=model.classes_))


# ------------------------------------------------------------------------------------------------------------- MIG


def mig_per_factor(factors: np.ndarray, latents: np.ndarray, n_bins: int = 20) -> np.ndarray:
    """Per-factor mutual information gap (K,): (I(v_k; z_(1)) − I(v_k; z_(2))) / H(v_k), latents binned.

    As in disentanglement_lib, each latent is cut into `n_bins` equal-width bins over its range and the discrete
    MI is the plug-in estimate. With a single latent the second-best MI is taken as 0.
    """
    sources, latents = _check(factors, latents)
    if n_bins < 2:
        raise ConfigError(f"n_bins: need at least 2 bins to discretise a latent (got {n_bins})")
    binned = np.stack([np.digitize(z, np.histogram_bin_edges(z, n_bins)[:-1]) for z in latents.T], axis=1)
    gaps = np.empty(sources.shape[1])
    for k in range(sources.shape[1]):
        s = sources[:, k]
        mi = np.sort([mutual_info_score(s, binned[:, j]) for j in range(binned.shape[1])] + [0.0])[::-1]
        gaps[k] = (mi[0] - mi[1]) / _entropy(s)
    return gaps


def mig(factors: np.ndarray, latents: np.ndarray, n_bins: int = 20) -> float:
    """Mutual information gap (Chen et al. 2018), disentanglement_lib's discrete MIG: mean of `mig_per_factor`."""
    return float(np.mean(mig_per_factor(factors, latents, n_bins)))


# ------------------------------------------------------------------------------------------------------------- DCI


def _normalised_entropy(p: np.ndarray, base: int) -> np.ndarray:
    """Entropy of each row of a probability matrix in base `base` (0 log 0 = 0, no smoothing)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -terms.sum(axis=1) / np.log(base)


def dci_from_importance(importance: np.ndarray) -> tuple[float, float]:
    """(disentanglement, completeness) of Eastwood & Williams from an importance matrix R (J latents × K factors).

    D = Σ_j ρ_j (1 − H_K(R_j· / Σ R_j·)) with ρ_j = Σ R_j· / Σ R; C = Σ_k ρ_k (1 − H_J(R_·k / Σ R_·k)) with
    ρ_k = Σ R_·k / Σ R — disentanglement_lib's weighting, which is the plain mean over factors whenever every
    column has the same total (always so for tree importances, which sum to 1 per factor). Entropies use
    0 log 0 = 0 exactly (disentanglement_lib adds 1e-11, shifting scores by ~1e-9). One factor (K = 1) gives D = 1,
    one latent gives C = 1; an all-zero matrix gives (0, 0).
    """
    r = np.abs(np.asarray(importance, dtype=np.float64))
    if r.ndim != 2 or 0 in r.shape or not np.all(np.isfinite(r)):
        raise ShapeError(f"importance: expected a finite (J latents, K factors) matrix; got shape {r.shape}")
    total = r.sum()
    if total == 0:
        return 0.0, 0.0
    n_latents, n_factors = r.shape

    def score(rows: np.ndarray, base: int) -> float:
        weight = rows.sum(axis=1)
        if base == 1:
            return 1.0
        p = rows / np.where(weight > 0, weight, 1.0)[:, None]
        return float(np.sum((weight / total) * (1.0 - _normalised_entropy(p, base))))

    return score(r, n_factors), score(r.T, n_latents)


def dci(factors: np.ndarray, latents: np.ndarray, seed: int = 0, train_fraction: float = 0.8,
        n_estimators: int = 100) -> dict:
    """DCI of Eastwood & Williams 2018 as in disentanglement_lib: one gradient-boosted classifier per factor.

    The importance matrix R (J × K) holds |feature_importances_| of GradientBoostingClassifier (disentanglement_lib
    defaults; pass a smaller `n_estimators` for speed); informativeness is the mean test accuracy on a held-out
    `1 − train_fraction` split. Returns {"disentanglement", "completeness", "informativeness",
    "informativeness_train", "importance"}.
    """
    sources, latents = _check(factors, latents)
    train, test = _split(len(sources), train_fraction, seed, "dci-split")
    importance = np.zeros((latents.shape[1], sources.shape[1]))
    train_accuracy, test_accuracy = [], []
    for k in range(sources.shape[1]):
        y = sources[:, k]
        if len(np.unique(y[train])) < 2:
            raise DataError(f"factors[:, {k}]: only one value in the training split; use more samples")
        model = GradientBoostingClassifier(n_estimators=n_estimators, random_state=seed)
        model.fit(latents[train], y[train])
        importance[:, k] = np.abs(model.feature_importances_)
        train_accuracy.append(np.mean(model.predict(latents[train]) == y[train]))
        test_accuracy.append(np.mean(model.predict(latents[test]) == y[test]))
    disentanglement, completeness = dci_from_importance(importance)
    return {"disentanglement": disentanglement, "completeness": completeness,
            "informativeness": float(np.mean(test_accuracy)), "informativeness_train": float(np.mean(train_accuracy)),
            "importance": importance}


# ------------------------------------------------------------------------------------------------------------- SAP


def sap_score_matrix(factors: np.ndarray, latents: np.ndarray, train_fraction: float = 0.8,
                     seed: int = 0) -> np.ndarray:
    """(J, K) test accuracy of predicting factor k from latent j alone with a 1-D LinearSVC (C=0.01, balanced).

    As disentanglement_lib for discrete factors, except that each latent is standardised with its training mean
    and std first: the strong C=0.01 penalty otherwise makes the score depend on the latent's units.
    """
    sources, latents = _check(factors, latents)
    train, test = _split(len(sources), train_fraction, seed, "sap-split")
    std = latents[train].std(axis=0)
    z = (latents - latents[train].mean(axis=0)) / np.where(std > 0, std, 1.0)
    scores = np.zeros((latents.shape[1], sources.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for j in range(z.shape[1]):
            for k in range(sources.shape[1]):
                y = sources[:, k]
                if len(np.unique(y[train])) < 2:
                    raise DataError(f"factors[:, {k}]: only one value in the training split; use more samples")
                classifier = LinearSVC(C=0.01, class_weight="balanced", random_state=seed)
                classifier.fit(z[train, j : j + 1], y[train])
                scores[j, k] = np.mean(classifier.predict(z[test, j : j + 1]) == y[test])
    return scores


def sap(factors: np.ndarray, latents: np.ndarray, train_fraction: float = 0.8, seed: int = 0) -> float:
    """Separated attribute predictability (Kumar et al. 2018): mean over factors of the gap between the two
    latents that predict it best (see `sap_score_matrix`); with a single latent the runner-up scores 0."""
    scores = sap_score_matrix(factors, latents, train_fraction, seed)
    ranked = np.sort(np.vstack([scores, np.zeros((1, scores.shape[1]))]), axis=0)[::-1]
    return float(np.mean(ranked[0] - ranked[1]))


# ----------------------------------------------------------------------------------------------- total correlation


def gaussian_total_correlation(z: np.ndarray) -> float:
    """Total correlation (nats) of the Gaussian fit to samples z (n, J): ½ (Σ_j log Var z_j − log det Σ).

    Equal to −½ log det of the correlation matrix, which is how it is computed (better conditioned). Linearly
    dependent latents give +inf; a constant latent has no defined correlation and is refused.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or len(z) < 2:
        raise ShapeError(f"z: expected an (n, J) array with n ≥ 2 samples; got shape {z.shape}")
    if not np.all(np.isfinite(z)):
        raise DataError("z: contains NaN or Inf")
    if z.shape[1] < 2:
        return 0.0
    covariance = np.cov(z, rowvar=False)
    variance = np.diag(covariance)
    if np.any(variance <= 0):
        raise DataError(f"z[:, {int(np.argmin(variance))}]: the latent is constant, so its correlation with the "
                        f"others is undefined; drop constant latents first")
    scale = np.sqrt(variance)
    sign, logdet = np.linalg.slogdet(covariance / scale[:, None] / scale[None, :])
    return float(-0.5 * logdet) if sign > 0 else float("inf")
