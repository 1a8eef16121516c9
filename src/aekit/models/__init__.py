"""Complete autoencoders, each with a config dataclass and a loss.

Importing every model module registers its kind, so `load_model` and `aekit info` read any saved model.
"""

from .base import FORMAT_VERSION, MODEL_KINDS, Autoencoder, Output, load_model
from .cca import StochasticCCA, StochasticCCAConfig
from .cktgen import CktGen, CktGenConfig
from .crate_mae import MAE, CrateMAE, CrateMAEConfig, MAEConfig
from .ddmi import D2CVAE, D2CVAEConfig, LatentDiffusion, LatentDiffusionConfig
from .epg import EPGDenoiser, EPGDenoiserConfig, EPGPretrainConfig, EPGPretrainer
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
from .lvrae import LatentNoiseAE, LatentNoiseAEConfig
from .psvae import PSVAE, PSVAEConfig
from .qlae import QLAE, QLAEConfig
from .sae import SAEConfig, SparseAutoencoder
from .stacked import LayerAutoencoder, LayerAutoencoderConfig, StackedAutoencoder, StackedAutoencoderConfig
from .stackvae import StackVAE, StackVAEConfig
from .video_vae import VideoVAE, VideoVAEConfig
from .vlsae import VLSAE, VLSAEConfig
from .xfactors import XFactors, XFactorsConfig

__all__ = [
    "FORMAT_VERSION", "MODEL_KINDS", "QLAE", "VQVAE", "Autoencoder", "BetaTCVAE", "BetaTCVAEConfig", "BetaVAE",
    "BetaVAEConfig", "ImageAEConfig", "ImageAutoencoder", "LowRankDenoiser", "LowRankDenoiserConfig", "Output",
    "QLAEConfig", "SAEConfig", "SparseAutoencoder", "StochasticCCA", "StochasticCCAConfig",
    "VQVAEConfig", "XFactors", "XFactorsConfig", "load_model",
]

__all__ += ["StackVAE", "StackVAEConfig"]
__all__ += ["VideoVAE", "VideoVAEConfig"]
__all__ += ["CktGen", "CktGenConfig"]
__all__ += ["LatentNoiseAE", "LatentNoiseAEConfig", "PSVAE", "PSVAEConfig"]
__all__ += ["MAE", "CrateMAE", "CrateMAEConfig", "MAEConfig"]
__all__ += ["VLSAE", "VLSAEConfig"]
__all__ += ["LayerAutoencoder", "LayerAutoencoderConfig", "StackedAutoencoder", "StackedAutoencoderConfig"]
__all__ += ["D2CVAE", "D2CVAEConfig", "LatentDiffusion", "LatentDiffusionConfig"]
__all__ += ["EPGDenoiser", "EPGDenoiserConfig", "EPGPretrainConfig", "EPGPretrainer"]
