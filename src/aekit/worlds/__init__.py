"""Synthetic worlds with known ground truth."""

from .features import FeatureSample, FeatureWorld, FeatureWorldConfig
from .scoring import recovery_scores

__all__ = ["FeatureSample", "FeatureWorld", "FeatureWorldConfig", "recovery_scores"]

from .dsprites import DSpritesWorld
from .factors import FactorSample, FactorWorld
from .language import Document, LanguageConfig, LanguageWorld, TaskSet, task_set
from .low_rank import LowRankMixture, LowRankMixtureConfig, optimal_denoiser
from .shapes3d import Shapes3DWorld
from .toy_lm import ToyLMConfig, bundled_toy_lm_path, evaluate_toy_lm, train_toy_lm

__all__ += ["DSpritesWorld", "FactorSample", "FactorWorld", "Shapes3DWorld"]

__all__ += ["Document", "LanguageConfig", "LanguageWorld", "TaskSet", "ToyLMConfig", "bundled_toy_lm_path",
            "evaluate_toy_lm", "task_set", "train_toy_lm"]

__all__ += ["LowRankMixture", "LowRankMixtureConfig", "optimal_denoiser"]

from .raster import RasterScene, RasterWorldConfig, make_raster  # noqa: E402

__all__ += ["RasterScene", "RasterWorldConfig", "make_raster"]

from .multiview import MultiViewConfig, MultiViewWorld  # noqa: E402

__all__ += ["MultiViewConfig", "MultiViewWorld"]
