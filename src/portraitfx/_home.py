"""Where portraitfx keeps caches: ``$PORTRAITFX_HOME`` (default ``~/.cache/portraitfx``)."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "PORTRAITFX_HOME"


def home_dir() -> Path:
    """The cache root; it need not exist yet."""
    home = os.environ.get(HOME_ENV, "").strip()
    return Path(home).expanduser() if home else Path.home() / ".cache" / "portraitfx"
