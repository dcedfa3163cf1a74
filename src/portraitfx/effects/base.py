"""The effect contract and registry.

An effect turns a frame and its analysed faces into a new frame:

    class Effect(Protocol):
        name: str
        def apply(self, frame, faces, state=None) -> frame

Effects register a factory under a name; ``create_effect(name, **options)`` builds
one, ``list_effects()`` lists them. Heavy resources load in the constructor;
``close()`` releases them. ``state`` carries what video needs between frames
(one :class:`EffectState` per video, keyed inside by track id).

Example:
    >>> import portraitfx.effects as fx
    >>> "stylize" in fx.list_effects()
    True
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from portraitfx.errors import ConfigError, ModelNotFoundError
from portraitfx.face.types import Face

__all__ = ["Effect", "EffectState", "create_effect", "list_effects", "register_effect"]


@dataclass
class EffectState:
    """What an effect keeps between the frames of one video.

    Attributes:
        frame_index: index of the frame being processed.
        tracks: per-track data (e.g. the previous frame's synthesis), keyed by track id.
    """

    frame_index: int = 0
    tracks: dict[int, dict[str, Any]] = field(default_factory=dict)

    def for_face(self, face: Face) -> dict[str, Any]:
        """The scratch dict of ``face``'s track (a fresh one for untracked faces)."""
        if face.track_id is None:
            return {}
        return self.tracks.setdefault(int(face.track_id), {})


@runtime_checkable
class Effect(Protocol):
    """``smooth_landmarks`` (optional attribute, default True) tells video runtimes
    whether to smooth landmarks before they reach the effect."""

    name: str

    def apply(self, frame: np.ndarray, faces: list[Face], state: EffectState | None = None) -> np.ndarray: ...

    def close(self) -> None: ...


_REGISTRY: dict[str, Callable[..., Effect]] = {}


def register_effect(name: str) -> Callable[[Callable[..., Effect]], Callable[..., Effect]]:
    """Class decorator: make ``create_effect(name, ...)`` build this effect."""

    def deco(factory: Callable[..., Effect]) -> Callable[..., Effect]:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ConfigError(f"effect {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory

    return deco


def _load_builtin_effects() -> None:
    from portraitfx.effects import hair, stylize, swap, toon, ugatit  # noqa: F401  (they register themselves)


def list_effects(pattern: str = "*") -> list[str]:
    """Names of the registered effects matching a shell-style ``pattern``."""
    _load_builtin_effects()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def create_effect(name: str, **options: Any) -> Effect:
    """Build the effect registered as ``name`` with ``options``.

    Raises:
        ModelNotFoundError: unknown effect name (with close matches).
    """
    _load_builtin_effects()
    factory = _REGISTRY.get(name)
    if factory is None:
        raise ModelNotFoundError.for_name(name, _REGISTRY, what="effect")
    return factory(**options)
