"""Effects: stylize (and, to come, hair, swap, toon). See :mod:`portraitfx.effects.base`."""

from portraitfx.effects.base import Effect, EffectState, create_effect, list_effects, register_effect

__all__ = ["Effect", "EffectState", "create_effect", "list_effects", "register_effect"]
