"""Face swap: the model-free, shape-aware swap and its pipeline."""

from .effect import SourceFace, SwapEffect, SwapOptions, load_sources

__all__ = ["SourceFace", "SwapEffect", "SwapOptions", "load_sources"]
