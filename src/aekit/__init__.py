"""aekit: interpretable latent codes with autoencoders."""

from ._version import __version__
from .errors import AekitError, ConfigError, DataError, FormatError, ShapeError, StoreError
from .estimator import SparseCoder
from .interop import export_saelens, load_any, load_foreign, load_saelens, load_sparsify
from .models import Autoencoder, SAEConfig, SparseAutoencoder, load_model
from .train import TrainConfig, Trainer

__all__ = [
    "AekitError",
    "Autoencoder",
    "ConfigError",
    "DataError",
    "FormatError",
    "SAEConfig",
    "ShapeError",
    "SparseAutoencoder",
    "SparseCoder",
    "StoreError",
    "TrainConfig",
    "Trainer",
    "__version__",
    "export_saelens",
    "load_any",
    "load_foreign",
    "load_model",
    "load_saelens",
    "load_sparsify",
]
