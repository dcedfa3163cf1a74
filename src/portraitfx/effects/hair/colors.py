"""Hair colours by name or hex code, as target Lab values for :func:`~portraitfx.effects.hair.edits.recolor`."""

from __future__ import annotations

import re

import numpy as np

from portraitfx.errors import ConfigError

__all__ = ["HAIR_COLOURS", "parse_colour", "rgb_to_lab"]

# Typical hair shades (sRGB), picked to read as the name on real hair after the
# texture of the person's own hair is laid over them.
HAIR_COLOURS: dict[str, str] = {
    "black": "#1c1a1a",
    "dark-brown": "#3b2a20",
    "brown": "#5a3c28",
    "chestnut": "#6e3a22",
    "auburn": "#7f3220",
    "copper": "#a8532a",
    "ginger": "#b8652f",
    "strawberry-blonde": "#c48a5e",
    "golden-blonde": "#b8934f",
    "blonde": "#c9ab74",
    "ash-blonde": "#a89f86",
    "platinum": "#ddd6c4",
    "grey": "#8c8a88",
    "silver": "#b7b8bc",
    "burgundy": "#6b1f2e",
    "red": "#a5202a",
    "pink": "#d26a98",
    "rose": "#c02060",
    "purple": "#6a3a8c",
    "lavender": "#a58cc4",
    "blue": "#2f5aa8",
    "teal": "#237a7a",
    "green": "#3c7a3a",
}


def rgb_to_lab(rgb: tuple[int, int, int] | np.ndarray) -> np.ndarray:
    """One sRGB colour (0-255) as float32 Lab."""
    import cv2

    px = np.asarray(rgb, np.float32).reshape(1, 1, 3) / 255.0
    return cv2.cvtColor(px, cv2.COLOR_RGB2Lab).reshape(3)


def parse_colour(text: str) -> tuple[int, int, int]:
    """``'#c02060'``, ``'c02060'``, ``'#c26'`` or a name from :data:`HAIR_COLOURS` as an RGB triple."""
    key = text.strip().lower().replace("_", "-").replace(" ", "-")
    code = HAIR_COLOURS.get(key, key)
    m = re.fullmatch(r"#?([0-9a-f]{6}|[0-9a-f]{3})", code)
    if not m:
        raise ConfigError(
            f"unknown hair colour {text!r}: give a hex code like '#c02060' or one of {', '.join(HAIR_COLOURS)}"
        )
    digits = m.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
