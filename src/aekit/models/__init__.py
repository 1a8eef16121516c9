"""Complete autoencoders, each with a config dataclass and a loss."""

from .base import FORMAT_VERSION, MODEL_KINDS, Autoencoder, Output, load_model
from .sae import SAEConfig, SparseAutoencoder

__all__ = ["FORMAT_VERSION", "MODEL_KINDS", "Autoencoder", "Output", "SAEConfig", "SparseAutoencoder", "load_model"]
