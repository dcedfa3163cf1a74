"""Example-based face stylization (FaceBlit on StyleBlit): guides, synthesis, style packs, the effect."""

from .effect import StylizeEffect, StylizeOptions
from .pack import StylePack, build_style, list_styles, load_style, save_style
from .styleblit import SynthesisParams

__all__ = [
    "StylePack",
    "StylizeEffect",
    "StylizeOptions",
    "SynthesisParams",
    "build_style",
    "list_styles",
    "load_style",
    "save_style",
]
