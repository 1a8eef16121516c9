"""Synthetic worlds with known ground truth."""

from .features import FeatureSample, FeatureWorld, FeatureWorldConfig
from .scoring import recovery_scores

__all__ = ["FeatureSample", "FeatureWorld", "FeatureWorldConfig", "recovery_scores"]

from .dsprites import DSpritesWorld
from .factors import FactorSample, FactorWorld
from .shapes3d import Shapes3DWorld

__all__ += ["DSpritesWorld", "FactorSample", "FactorWorld", "Shapes3DWorld"]
