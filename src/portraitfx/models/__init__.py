"""Model registry and safe model loading.

* :mod:`portraitfx.models.registry`: :class:`ModelCard`, :func:`register_model`,
  :func:`get_card`, :func:`list_models` and :func:`resolve_model` (find + verify sha256).
* :mod:`portraitfx.models.load`: :func:`sniff_model_format`, :func:`load_safetensors`,
  :func:`load_state_dict` (weights only), :func:`save_safetensors`,
  :func:`open_onnx_session` and :func:`release_sessions`.

Importing this package is cheap: torch, safetensors and onnxruntime are imported only
when a loader needs them.

Example:
    >>> from portraitfx.models import list_models, resolve_model
    >>> "dlib/shape_predictor_5" in list_models()
    True
"""

from portraitfx.models.load import (
    MODEL_KINDS,
    load_safetensors,
    load_state_dict,
    open_onnx_session,
    release_sessions,
    save_safetensors,
    sniff_model_format,
)
from portraitfx.models.registry import (
    BUILTIN_CARDS,
    ModelCard,
    file_sha256,
    get_card,
    list_models,
    model_dirs,
    register_model,
    resolve_model,
)

__all__ = [
    "BUILTIN_CARDS",
    "MODEL_KINDS",
    "ModelCard",
    "file_sha256",
    "get_card",
    "list_models",
    "load_safetensors",
    "load_state_dict",
    "model_dirs",
    "open_onnx_session",
    "register_model",
    "release_sessions",
    "resolve_model",
    "save_safetensors",
    "sniff_model_format",
]
