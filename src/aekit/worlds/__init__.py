"""Synthetic worlds with known ground truth."""

from .features import FeatureSample, FeatureWorld, FeatureWorldConfig

__all__ = ["FeatureSample", "FeatureWorld", "FeatureWorldConfig"]
