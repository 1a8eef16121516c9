"""aekit: interpretable latent codes with autoencoders."""

__version__ = "0.1.0"

from .errors import AekitError, ConfigError, DataError, FormatError, ShapeError, StoreError  # noqa: E402
from .estimator import SparseCoder  # noqa: E402
from .interop import export_saelens, load_any, load_foreign, load_saelens, load_sparsify  # noqa: E402
from .models import Autoencoder, SAEConfig, SparseAutoencoder, load_model  # noqa: E402
from .train import TrainConfig, Trainer  # noqa: E402

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
