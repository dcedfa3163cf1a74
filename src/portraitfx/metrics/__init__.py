"""Quality measures: Fréchet distances in pluggable feature spaces, clarity."""

from portraitfx.metrics.clarity import clarity
from portraitfx.metrics.fid import IdentityFeatures, OnnxFeatures, feature_stats, fid, frechet_distance

__all__ = ["IdentityFeatures", "OnnxFeatures", "clarity", "feature_stats", "fid", "frechet_distance"]
