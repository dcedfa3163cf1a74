"""The portrait studio's models, from local files only: a Stable Diffusion pipeline, an
identity adapter, style LoRAs, an optional ControlNet.

* **Base model**: a diffusers pipeline folder (``model_index.json``; SD 1.5-class or
  SDXL, picked from the folder's own class name) or a single ``.safetensors``
  checkpoint (read with diffusers' ``from_single_file``). Weights must be safetensors:
  a folder with only ``.bin``/``.ckpt`` weights, or a pickled file, is refused.
* **Identity adapter**: IP-Adapter weights (and its Face variants that diffusers'
  ``load_ip_adapter`` reads) as one ``.safetensors`` file; the CLIP image encoder comes
  from the pipeline folder's ``image_encoder`` or from a folder given beside it.
* **LoRAs**: ``.safetensors`` files loaded with ``load_lora_weights``, several at once
  with their weights; :func:`unload_loras` takes them off again.
* ``models.yaml`` maps names to files with their sha256, so styles and commands can
  say ``base: sd15`` and the file is checked before it is used.

Example:
    >>> pipe = load_pipeline("models/sd15", ip_adapter="models/ip-adapter_sd15.safetensors")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portraitfx.errors import ChecksumError, ConfigError, InputNotFoundError, ModelError, UnsafeModelError

__all__ = [
    "ModelEntry",
    "adapter_kind",
    "load_identity_adapter",
    "load_loras",
    "load_models_yaml",
    "load_pipeline",
    "resolve",
    "unload_loras",
]

_PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")


@dataclass(frozen=True)
class ModelEntry:
    """One ``models.yaml`` entry: a name, its file or folder, the sha256 of the file (optional for folders)."""

    name: str
    path: Path
    sha256: str | None = None
    kind: str = ""


def load_models_yaml(path: str | os.PathLike[str]) -> dict[str, ModelEntry]:
    """Read ``models.yaml``: ``NAME: {path: ..., sha256: ..., kind: base|ip_adapter|lora|controlnet}``.

    Relative paths are relative to the YAML file.
    """
    from portraitfx._yaml import read_yaml_mapping

    p = Path(path)
    data = read_yaml_mapping(p, "models file", "model names to {path, sha256}")
    out = {}
    for name, entry in data.items():
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict) or "path" not in entry:
            raise ConfigError(f"'{p}': model {name!r} needs a path")
        unknown = set(entry) - {"path", "sha256", "kind"}
        if unknown:
            raise ConfigError(f"'{p}': model {name!r} has unknown keys {', '.join(sorted(unknown))}")
        sha = entry.get("sha256")
        if sha is not None and not (
            isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdefABCDEF" for c in sha)
        ):
            raise ConfigError(f"'{p}': model {name!r} needs a 64-digit hex sha256 in quotes, got {sha!r}")
        target = Path(str(entry["path"]))
        out[str(name)] = ModelEntry(
            str(name),
            target if target.is_absolute() else (p.parent / target),
            entry.get("sha256"),
            str(entry.get("kind", "")),
        )
    return out


def resolve(name_or_path: str | os.PathLike[str], models: dict[str, ModelEntry] | None = None) -> Path:
    """A ``models.yaml`` name (checked against its sha256) or a path, as an existing local path."""
    entry = (models or {}).get(str(name_or_path))
    path = entry.path if entry is not None else Path(name_or_path)
    if not path.exists():
        known = f"; known names: {', '.join(sorted(models))}" if models and entry is None else ""
        raise InputNotFoundError(f"model '{name_or_path}' not found ({path} does not exist{known})")
    if entry is not None and entry.sha256:
        if path.is_dir():
            raise ConfigError(f"model {entry.name!r}: a sha256 is for a file, '{path}' is a folder")
        from portraitfx.models.registry import file_sha256

        got = file_sha256(path)
        if got.lower() != entry.sha256.lower():
            raise ChecksumError(
                f"model {entry.name!r}: '{path}' has sha256 {got[:16]}..., expected {entry.sha256[:16]}..."
            )
    return path


def _check_weights_file(path: Path, what: str) -> None:
    from portraitfx.models.load import sniff_model_format

    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise UnsafeModelError(f"{what} '{path}' is a pickle-based file; give its .safetensors version")
    kind = sniff_model_format(path)
    if kind == "pickle":
        raise UnsafeModelError(f"{what} '{path}' is a pickle; only .safetensors files load")
    if kind != "safetensors":
        raise ModelError(f"{what} '{path}' is not a safetensors file (it looks like {kind})")


def _check_folder(folder: Path) -> str:
    """The pipeline class a diffusers folder names; refuse folders whose weights are pickles only."""
    index = folder / "model_index.json"
    if not index.is_file():
        raise ModelError(f"'{folder}' is not a diffusers pipeline folder (no model_index.json)")
    try:
        cls = str(json.loads(index.read_text(encoding="utf-8")).get("_class_name", ""))
    except json.JSONDecodeError:
        raise ModelError(f"'{folder}/model_index.json' is not valid JSON") from None
    weights = [p for p in folder.rglob("*") if p.suffix.lower() in (".safetensors", *_PICKLE_SUFFIXES)]
    if weights and not any(p.suffix.lower() == ".safetensors" for p in weights):
        raise UnsafeModelError(
            f"'{folder}' holds only pickle-based weights (.bin/.ckpt); convert them to safetensors"
        )
    for p in weights:
        if p.suffix.lower() == ".safetensors":
            _check_weights_file(p, "weights")
    return cls


def load_pipeline(
    base: str | os.PathLike[str],
    *,
    ip_adapter: str | os.PathLike[str] | None = None,
    image_encoder: str | os.PathLike[str] | None = None,
    controlnet: str | os.PathLike[str] | None = None,
    models: dict[str, ModelEntry] | None = None,
    device: str = "cpu",
    dtype: Any = None,
) -> Any:
    """Load a Stable Diffusion pipeline (and its identity adapter) from local files.

    Raises:
        InputNotFoundError: a file is missing. UnsafeModelError: pickled weights.
        ModelError: a file of the wrong kind, or one diffusers cannot read.
    """
    import torch

    path = resolve(base, models)
    extra: dict[str, Any] = {} if dtype in (None, torch.float32) else {"torch_dtype": dtype}
    try:
        if path.is_dir():
            cls_name = _check_folder(path)
            import diffusers

            if controlnet is not None:
                from diffusers import ControlNetModel

                cn_path = resolve(controlnet, models)
                if cn_path.is_dir():
                    _check_folder_weights(cn_path)
                net = ControlNetModel.from_pretrained(
                    cn_path, local_files_only=True, use_safetensors=True, **extra
                )
                cls = (
                    diffusers.StableDiffusionXLControlNetPipeline
                    if "XL" in cls_name
                    else diffusers.StableDiffusionControlNetPipeline
                )
                pipe = cls.from_pretrained(
                    path,
                    controlnet=net,
                    local_files_only=True,
                    use_safetensors=True,
                    **extra,
                    safety_checker=None,
                )
            else:
                cls = getattr(diffusers, cls_name, None) or diffusers.StableDiffusionPipeline
                kwargs = {"safety_checker": None} if "XL" not in cls_name else {}
                pipe = cls.from_pretrained(
                    path, local_files_only=True, use_safetensors=True, **kwargs, **extra
                )
        else:
            _check_weights_file(path, "checkpoint")
            from diffusers import StableDiffusionPipeline

            pipe = StableDiffusionPipeline.from_single_file(str(path), local_files_only=True, **extra)
    except (ModelError, InputNotFoundError):
        raise
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as err:
        raise ModelError(
            f"cannot load the Stable Diffusion model '{path}': {' '.join(str(err).split())[:200]}"
        ) from None
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    if ip_adapter is not None:
        load_identity_adapter(pipe, ip_adapter, image_encoder=image_encoder, models=models)
    return pipe


def _check_folder_weights(folder: Path) -> None:
    for p in folder.rglob("*"):
        if p.suffix.lower() in _PICKLE_SUFFIXES:
            raise UnsafeModelError(f"'{p}' is a pickle-based file; give the safetensors version")


def load_identity_adapter(
    pipe: Any,
    weights: str | os.PathLike[str],
    *,
    image_encoder: str | os.PathLike[str] | None = None,
    models: dict[str, ModelEntry] | None = None,
) -> None:
    """Load IP-Adapter weights (one ``.safetensors``) into ``pipe`` with diffusers' own loader."""
    path = resolve(weights, models)
    _check_weights_file(path, "identity adapter")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        keys = set(fh.keys())
    faceid = "image_proj.norm.weight" in keys and "image_proj.proj.0.weight" in keys
    if faceid and any(k.startswith("image_proj.perceiver_resampler") for k in keys):
        raise ModelError(
            f"'{path}' is IP-Adapter FaceID Plus, which needs CLIP and face features together; not supported yet"
        )
    if faceid:  # FaceID: the identity comes as a face-recognition vector, no image encoder
        try:
            pipe.load_ip_adapter(
                str(path.parent), subfolder="", weight_name=path.name, image_encoder_folder=None
            )
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise ModelError(
                f"'{path}' is not FaceID weights this model takes: {' '.join(str(err).split())[:200]}"
            ) from None
        return
    if image_encoder is not None:
        from transformers import CLIPVisionModelWithProjection

        enc = resolve(image_encoder, models)
        _check_folder_weights(enc)
        pipe.register_modules(
            image_encoder=CLIPVisionModelWithProjection.from_pretrained(
                enc, local_files_only=True, use_safetensors=True
            )
        )
    if getattr(pipe, "image_encoder", None) is None:
        raise ModelError(
            "the identity adapter needs a CLIP image encoder: the pipeline has none; give --image-encoder"
        )
    try:
        pipe.load_ip_adapter(str(path.parent), subfolder="", weight_name=path.name, image_encoder_folder=None)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelError(
            f"'{path}' is not IP-Adapter weights this model takes: {' '.join(str(err).split())[:200]}"
        ) from None


def adapter_kind(pipe: Any) -> tuple[str, int | None]:
    """``("clip", None)`` for an IP-Adapter on CLIP image features, ``("faceid", D)`` for a FaceID
    adapter taking ``D``-d face-recognition vectors, ``("none", None)`` without one."""
    proj = getattr(getattr(pipe, "unet", None), "encoder_hid_proj", None)
    if proj is None:
        return "none", None
    layer = proj.image_projection_layers[0]
    if type(layer).__name__ == "IPAdapterFaceIDImageProjection":
        return "faceid", int(layer.ff.net[0].proj.in_features)
    return "clip", None


def load_loras(
    pipe: Any, loras: list[tuple[str | os.PathLike[str], float]], models: dict[str, ModelEntry] | None = None
) -> list[str]:
    """Load style LoRAs (``.safetensors``) with their weights; returns their adapter names."""
    names = []
    for k, (lora, _weight) in enumerate(loras):
        path = resolve(lora, models)
        _check_weights_file(path, "LoRA")
        name = f"lora{k}_{path.stem}".replace(".", "_").replace("-", "_")
        try:
            pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise ModelError(
                f"'{path}' is not a LoRA for this model: {' '.join(str(err).split())[:200]}"
            ) from None
        names.append(name)
    if names:
        pipe.set_adapters(names, [float(w) for _, w in loras])
    return names


def unload_loras(pipe: Any) -> None:
    """Take every LoRA off again (the base weights come back exactly)."""
    pipe.unload_lora_weights()
