"""Complete autoencoders, each with a config dataclass and a loss.

Importing every model module registers its kind, so `load_model` and `aekit info` read any saved model.
"""

from .base import FORMAT_VERSION, MODEL_KINDS, Autoencoder, Output, load_model
from .cca import StochasticCCA, StochasticCCAConfig
from .image_ae import (
    VQVAE,
    BetaTCVAE,
    BetaTCVAEConfig,
    BetaVAE,
    BetaVAEConfig,
    ImageAEConfig,
    ImageAutoencoder,
    VQVAEConfig,
)
from .low_rank import LowRankDenoiser, LowRankDenoiserConfig
from .qlae import QLAE, QLAEConfig
from .sae import SAEConfig, SparseAutoencoder
from .stacked import LayerAutoencoder, LayerAutoencoderConfig, StackedAutoencoder, StackedAutoencoderConfig
from .stackvae import StackVAE, StackVAEConfig
from .xfactors import XFactors, XFactorsConfig

__all__ = [
    "FORMAT_VERSION", "MODEL_KINDS", "QLAE", "VQVAE", "Autoencoder", "BetaTCVAE", "BetaTCVAEConfig", "BetaVAE",
    "BetaVAEConfig", "ImageAEConfig", "ImageAutoencoder", "LowRankDenoiser", "LowRankDenoiserConfig", "Output",
    "QLAEConfig", "SAEConfig", "SparseAutoencoder", "StochasticCCA", "StochasticCCAConfig",
    "VQVAEConfig", "XFactors", "XFactorsConfig", "load_model",
]

__all__ += ["StackVAE", "StackVAEConfig"]
__all__ += ["LayerAutoencoder", "LayerAutoencoderConfig", "StackedAutoencoder", "StackedAutoencoderConfig"]
