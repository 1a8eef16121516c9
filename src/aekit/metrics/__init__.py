"""Pure metric functions: arrays in, numbers out."""

from .recovery import best_f1_per_feature, cosine_matrix, matched_cosine, mean_best_f1
from .sae import (
    dead_fraction,
    dense_fraction,
    density_histogram,
    feature_density,
    fraction_of_variance_unexplained,
    l0,
    mse,
)

__all__ = [
    "best_f1_per_feature",
    "cosine_matrix",
    "dead_fraction",
    "dense_fraction",
    "density_histogram",
    "feature_density",
    "fraction_of_variance_unexplained",
    "l0",
    "matched_cosine",
    "mean_best_f1",
    "mse",
]

from .disentanglement import (
    dci,
    dci_from_importance,
    gaussian_total_correlation,
    infomec,
    mig,
    mig_per_factor,
    sap,
    sap_score_matrix,
)
from .passive import classify_latents, passive_report

__all__ += [
    "classify_latents",
    "dci",
    "dci_from_importance",
    "gaussian_total_correlation",
    "infomec",
    "mig",
    "mig_per_factor",
    "passive_report",
    "sap",
    "sap_score_matrix",
]
