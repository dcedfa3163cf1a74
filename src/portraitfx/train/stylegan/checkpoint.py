"""StyleGAN checkpoints as safetensors: the weights, with the network's shape as JSON metadata.

A generator file holds ``G.*`` tensors (the weights to sample with: the EMA copy
when training) and the header ``{"portraitfx": "stylegan2-generator", "config": ...}``.
Nothing is ever unpickled; official network pickles go through the explicit
``portraitfx convert`` step instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from portraitfx.errors import ConfigError, ModelError
from portraitfx.train.stylegan.networks import Generator, GeneratorConfig

__all__ = ["build_generator", "config_from_dict", "load_generator", "read_config", "save_generator"]

KIND = "stylegan2-generator"


def save_generator(
    path: str | os.PathLike[str], generator: Generator, *, extra: dict[str, Any] | None = None
) -> Path:
    """Write ``generator`` (weights and buffers) to a safetensors file, atomically.

    ``extra``: JSON-serialisable notes kept in the header (e.g. how it was made).
    """
    from portraitfx.models.load import save_safetensors

    tensors = {f"G.{k}": v.detach() for k, v in generator.state_dict().items()}
    meta = {"portraitfx": KIND, "config": json.dumps(generator.cfg.to_dict(), sort_keys=True)}
    if extra:
        meta["extra"] = json.dumps(extra, sort_keys=True)
    return save_safetensors(path, tensors, meta)


def config_from_dict(data: dict[str, Any]) -> Any:
    """A :class:`GeneratorConfig`, or a StyleGAN3 ``Generator3Config`` when the dict says ``architecture: stylegan3``."""
    if data.get("architecture") == "stylegan3":
        from portraitfx.train.stylegan.networks3 import Generator3Config

        return Generator3Config.from_dict(data)
    return GeneratorConfig.from_dict(data)


def build_generator(cfg: Any) -> Any:
    """An (untrained) generator of the config's architecture."""
    if getattr(cfg, "architecture", "stylegan2") == "stylegan3":
        from portraitfx.train.stylegan.networks3 import Generator3

        return Generator3(cfg)
    return Generator(cfg)


def read_config(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any]]:
    """The network shape and the ``extra`` notes of a generator file, without loading weights."""
    from safetensors import safe_open

    from portraitfx.models.load import _wrong_kind, resolve_model, sniff_model_format

    p = resolve_model(path)
    kind = sniff_model_format(p)
    if kind != "safetensors":  # a pickle is refused as unsafe, before anything reads it
        raise _wrong_kind(p, kind, "a safetensors StyleGAN generator")
    try:
        with safe_open(str(p), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as err:
        raise ModelError(f"cannot read '{p}': {' '.join(str(err).split())}") from err
    if meta.get("portraitfx") != KIND or "config" not in meta:
        raise ModelError(f"'{p}' is not a portraitfx StyleGAN generator (no '{KIND}' header)")
    try:
        cfg = config_from_dict(json.loads(meta["config"]))
        extra = json.loads(meta.get("extra", "{}"))
    except (ValueError, TypeError, ConfigError) as err:
        raise ModelError(f"'{p}' has a damaged StyleGAN header: {err}") from err
    return cfg, extra


def load_generator(path: str | os.PathLike[str], device: str = "cpu") -> Generator:
    """Rebuild a generator saved by :func:`save_generator` (strict: every tensor must match).

    A StyleGAN3 file (converted from an official pickle) gives a ``Generator3``, which
    samples, fuses, inverts and makes pairs the same way.
    """
    from portraitfx.models.load import load_safetensors

    cfg, _ = read_config(path)
    tensors = load_safetensors(path, device=device)
    state = {k[2:]: v for k, v in tensors.items() if k.startswith("G.")}
    generator = build_generator(cfg).to(device)
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ModelError(f"'{path}' does not fit its own StyleGAN config: {first}") from err
    return generator.eval()
