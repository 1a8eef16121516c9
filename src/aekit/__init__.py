"""aekit: interpretable latent codes with autoencoders."""

__version__ = "0.1.0"

from .errors import AekitError, ConfigError, DataError, FormatError, ShapeError, StoreError  # noqa: E402
from .models import Autoencoder, SAEConfig, SparseAutoencoder, load_model  # noqa: E402

__all__ = [
    "AekitError",
    "Autoencoder",
    "ConfigError",
    "DataError",
    "FormatError",
    "SAEConfig",
    "ShapeError",
    "SparseAutoencoder",
    "StoreError",
    "__version__",
    "load_model",
]
