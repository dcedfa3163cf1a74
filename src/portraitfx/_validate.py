"""Validation of arguments at API entry points (messages name what was received)."""

from __future__ import annotations

from typing import Any

import numpy as np

from portraitfx.errors import ConfigError, InputError

__all__ = ["check_choice", "check_image", "with_overrides"]


def check_image(image: Any, name: str = "image") -> np.ndarray:
    """Return ``image`` as a C-contiguous ``H x W x 3`` uint8 RGB array.

    Raises:
        InputError: not a 3-channel uint8 array, or empty.
    """
    if not isinstance(image, np.ndarray):
        raise InputError(f"{name} must be a numpy array (H x W x 3 uint8 RGB), got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(
            f"{name} must be an H x W x 3 uint8 RGB array, got {image.dtype} {tuple(image.shape)}; "
            "use portraitfx.load_image() to convert files and other layouts"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputError(f"{name} is empty: {tuple(image.shape)}")
    return np.ascontiguousarray(image)


def check_choice(value: str, choices: tuple[str, ...] | list[str], name: str) -> str:
    """Return ``value`` if it is one of ``choices``, else raise :class:`ConfigError`."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def with_overrides(options: Any, overrides: dict[str, Any]) -> Any:
    """``dataclasses.replace`` that names unknown option keys instead of a bare ``TypeError``."""
    from dataclasses import fields, replace

    known = {f.name for f in fields(options)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(sorted(known))}"
        )
    return replace(options, **overrides)
