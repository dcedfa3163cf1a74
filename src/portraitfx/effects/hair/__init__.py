"""Hair editing: analysis (matte, hairline, density), model-free edits and the learned-model runner.

Example:
    >>> from portraitfx.effects.hair import analyze_hair, recolor     # doctest: +SKIP
    >>> a = analyze_hair(image, face)                                  # doctest: +SKIP
    >>> out = recolor(image, a, rgb_to_lab(parse_colour("auburn"))).image  # doctest: +SKIP
"""

from portraitfx.effects.hair.analysis import HairAnalysis, analyze_hair, edit_region
from portraitfx.effects.hair.colors import HAIR_COLOURS, parse_colour, rgb_to_lab
from portraitfx.effects.hair.edits import HairEdit, add_bangs, adjust_hairline, fill_sparse, recolor
from portraitfx.effects.hair.effect import EDITS, HairEffect, HairOptions

__all__ = [
    "EDITS",
    "HAIR_COLOURS",
    "HairAnalysis",
    "HairEdit",
    "HairEffect",
    "HairOptions",
    "add_bangs",
    "adjust_hairline",
    "analyze_hair",
    "edit_region",
    "fill_sparse",
    "parse_colour",
    "recolor",
    "rgb_to_lab",
]
