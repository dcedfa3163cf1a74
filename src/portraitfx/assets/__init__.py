"""Data files shipped with portraitfx (the canonical face, the sample portrait)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def sample_path(name: str = "astronaut.jpg") -> Path:
    """Path of a built-in sample image (see ``portraitfx/assets/samples/README.md``)."""
    return Path(str(resources.files(__name__).joinpath("samples", name)))
