"""Synthetic worlds with known ground truth."""

from .features import FeatureSample, FeatureWorld, FeatureWorldConfig
from .scoring import recovery_scores

__all__ = ["FeatureSample", "FeatureWorld", "FeatureWorldConfig", "recovery_scores"]
