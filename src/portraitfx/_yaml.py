"""Reading the small YAML files portraitfx takes (training configs, styles, models.yaml) with one set of errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from portraitfx.errors import ConfigError, InputNotFoundError

__all__ = ["read_yaml_mapping"]


def read_yaml_mapping(path: str | os.PathLike[str], what: str, shape: str) -> dict[str, Any]:
    """The mapping in a YAML file (an empty file is ``{}``).

    Args:
        what: what the file is, for messages ("config", "style", "models file").
        shape: what the mapping should hold, for the message when it is not a mapping.

    Raises:
        InputNotFoundError: no such file. ConfigError: not YAML, or not a mapping.
    """
    import yaml

    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"{what} '{p}' does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} '{p}' is not valid YAML: {' '.join(str(err).split())[:160]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} '{p}' must hold a mapping ({shape})")
    return data
