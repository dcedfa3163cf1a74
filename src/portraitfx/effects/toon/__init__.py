"""The ``toon`` effect: a trained student network (ONNX) on every face, or on the whole frame."""

from portraitfx.effects.toon.effect import DEFAULT_MODEL, ToonEffect, ToonOptions

__all__ = ["DEFAULT_MODEL", "ToonEffect", "ToonOptions"]
