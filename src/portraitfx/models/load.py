"""Safe model loading: safetensors, ONNX and weights-only PyTorch checkpoints.

portraitfx never unpickles arbitrary objects. A pickle can run any code while it
loads, so a model file downloaded from the internet must be data only:

* **safetensors** files load with :func:`load_safetensors` (or :func:`load_state_dict`);
* **PyTorch zip checkpoints** (``torch.save`` of a state dict) load with
  ``torch.load(weights_only=True)``, which only rebuilds tensors and plain containers;
  anything else inside them raises :class:`~portraitfx.errors.UnsafeModelError`;
* **ONNX** models open in onnxruntime with :func:`open_onnx_session`;
* raw pickles (``.pkl``/``.pickle``, legacy ``.pth``/``.pt``) are refused.

The format is always sniffed from the content (:func:`sniff_model_format`), never
from the extension. Names from the registry are resolved (and their sha256
verified) with :func:`~portraitfx.models.registry.resolve_model`; explicit paths are
used as given. ``torch``, ``safetensors`` and ``onnxruntime`` are imported on first use.

Example:
    >>> import tempfile, pathlib, torch
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.safetensors"
    >>> _ = save_safetensors(path, {"w": torch.ones(2, 3)}, metadata={"arch": "demo"})
    >>> sniff_model_format(path), load_state_dict(path)["w"].shape
    ('safetensors', torch.Size([2, 3]))
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
import threading
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from portraitfx.errors import ConfigError, ModelError, UnsafeModelError
from portraitfx.io.paths import atomic_output
from portraitfx.models.registry import resolve_model

__all__ = [
    "MODEL_KINDS",
    "load_safetensors",
    "load_state_dict",
    "open_onnx_session",
    "release_sessions",
    "save_safetensors",
    "sniff_model_format",
]

log = logging.getLogger(__name__)

MODEL_KINDS = ("safetensors", "onnx", "torch", "pickle", "tflite", "dlib", "unknown")
"""Values :func:`sniff_model_format` returns."""

_KIND_NAMES = {
    "safetensors": "a safetensors file",
    "onnx": "an ONNX model",
    "torch": "a PyTorch checkpoint",
    "pickle": "a raw Python pickle",
    "tflite": "a TensorFlow Lite model",
    "dlib": "a dlib model",
    "unknown": "not a recognised model file",
}
_PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".pth", ".pt", ".ckpt", ".bin", ".joblib"})
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024

# --------------------------------------------------------------------------- sniffing


def _read_varint(fh: IO[bytes]) -> int | None:
    value = 0
    for shift in range(0, 70, 7):
        byte = fh.read(1)
        if not byte:
            return None
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
    return None


# ModelProto field number -> protobuf wire type (0 = varint, 2 = length-delimited).
_ONNX_FIELDS = {1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 20: 2, 25: 2}


def _looks_like_onnx(fh: IO[bytes], size: int) -> bool:
    """Walk the top-level protobuf fields: an ONNX ModelProto has ir_version (1) and a graph (7)."""
    fh.seek(0)
    seen: set[int] = set()
    for _ in range(256):
        if fh.tell() >= size:
            break
        tag = _read_varint(fh)
        if tag is None:
            return False
        field, wire = tag >> 3, tag & 7
        if _ONNX_FIELDS.get(field) != wire:
            return False
        value = _read_varint(fh)
        if value is None:
            return False
        if wire == 0:
            if field == 1 and not 1 <= value <= 64:
                return False
        else:
            if fh.tell() + value > size:
                return False
            fh.seek(value, os.SEEK_CUR)
        seen.add(field)
        if {1, 7} <= seen:
            return True
    return {1, 7} <= seen


_OLD_PICKLE = re.compile(rb"^(c[A-Za-z_][\w.]*\n[\w.]+\n|\((dp|lp|tp|i[A-Za-z_])|[\]}](q|\()|\(K)")


def _looks_like_pickle(head: bytes) -> bool:
    if len(head) >= 2 and head[0] == 0x80 and 1 <= head[1] <= 5:  # PROTO opcode
        return True
    return bool(_OLD_PICKLE.match(head))


def sniff_model_format(path: str | os.PathLike[str]) -> str:
    """Tell a model file's format from its content (the extension is ignored).

    Args:
        path: the file to inspect.

    Returns:
        one of ``"safetensors"`` (8-byte header length + JSON header), ``"onnx"``
        (protobuf ModelProto), ``"torch"`` (zip archive with a ``data.pkl``),
        ``"pickle"`` (raw pickle, including legacy ``torch.save`` files),
        ``"tflite"`` (``TFL3`` flatbuffer), ``"dlib"`` (dlib serialisation) or
        ``"unknown"``.

    Raises:
        ModelNotFoundError: the file does not exist.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.pth"
        >>> _ = p.write_bytes(b"\\x80\\x04\\x95...")
        >>> sniff_model_format(p)
        'pickle'
    """
    p = resolve_model(Path(os.fspath(path)))
    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(64)
        if len(head) >= 10:
            (n,) = struct.unpack("<Q", head[:8])
            if 2 <= n <= min(size - 8, _MAX_SAFETENSORS_HEADER) and head[8:9] == b"{":
                fh.seek(8)
                try:
                    if isinstance(json.loads(fh.read(n)), dict):
                        return "safetensors"
                except ValueError:
                    pass
        if head[4:8] == b"TFL3":
            return "tflite"
        if head[:4] == b"PK\x03\x04":
            try:
                with zipfile.ZipFile(p) as zf:
                    names = zf.namelist()
            except (zipfile.BadZipFile, OSError):
                return "unknown"
            if any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
                return "torch"
            return "unknown"
        if _looks_like_pickle(head):
            return "pickle"
        if head[:3] == b"\x01\x01\x01" and head[4:9] == b"loss_":  # dlib DNN (version, "loss_...")
            return "dlib"
        if head[:2] == b"\x01\x01" and p.suffix.lower() == ".dat":  # dlib shape predictor etc.
            return "dlib"
        if size and _looks_like_onnx(fh, size):
            return "onnx"
    return "unknown"


# --------------------------------------------------------------------------- errors


def _unsafe(path: Path, why: str) -> UnsafeModelError:
    return UnsafeModelError(
        f"refusing to load '{path}': {why}. Only safetensors and ONNX files (and PyTorch checkpoints "
        "that hold nothing but tensors) are accepted, because unpickling can run arbitrary code. "
        "Convert it once, in a trusted environment: "
        "safetensors.torch.save_file(state_dict, 'model.safetensors')"
    )


def _wrong_kind(path: Path, kind: str, expected: str) -> ModelError:
    if kind == "pickle" or (kind == "unknown" and path.suffix.lower() in _PICKLE_SUFFIXES):
        return _unsafe(path, "it is a raw Python pickle")
    if path.stat().st_size == 0:
        return ModelError(f"model file '{path}' is empty")
    if kind == "unknown":
        return ModelError(f"'{path}' is not {expected} (damaged, truncated or another format)")
    return ModelError(f"'{path}' is {_KIND_NAMES[kind]}, not {expected}")


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return (text[:197] + "...") if len(text) > 200 else (text or type(err).__name__)


# --------------------------------------------------------------------------- torch / safetensors


def load_safetensors(
    path: str | os.PathLike[str], device: str = "cpu", *, verify: bool = True
) -> dict[str, Any]:
    """Load a safetensors file as ``{name: torch.Tensor}``.

    Args:
        path: a registry name or a file path.
        device: torch device for the tensors (``"cpu"``, ``"cuda:0"``, ...).
        verify: check the registry sha256 when ``path`` is a name.

    Returns:
        a dict of tensors.

    Raises:
        ModelNotFoundError: unknown name or missing file.
        UnsafeModelError: the file is a pickle.
        ModelError: the file is not a (valid) safetensors file.
    """
    p = resolve_model(path, verify=verify)
    kind = sniff_model_format(p)
    if kind != "safetensors":
        raise _wrong_kind(p, kind, "a safetensors file")
    from safetensors.torch import load_file

    try:
        return load_file(str(p), device=device)
    except Exception as err:
        raise ModelError(f"cannot load safetensors file '{p}': {_short(err)}") from err


def _as_state_dict(obj: Any, path: Path) -> dict[str, Any]:
    import torch

    def tensors_only(m: Any) -> bool:
        return isinstance(m, Mapping) and all(isinstance(k, str) and torch.is_tensor(v) for k, v in m.items())

    if tensors_only(obj):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict"):
            if tensors_only(obj.get(key)):
                return dict(obj[key])
    raise ModelError(f"'{path}' holds a {type(obj).__name__} rather than a state dict of tensors")


def load_state_dict(
    path: str | os.PathLike[str], *, device: str = "cpu", verify: bool = True
) -> dict[str, Any]:
    """Load model weights as ``{name: torch.Tensor}`` from safetensors or a weights-only checkpoint.

    PyTorch zip checkpoints are read with ``torch.load(path, weights_only=True,
    map_location="cpu")``; a checkpoint dict with a ``"state_dict"`` (or
    ``"model_state_dict"``) entry is unwrapped.

    Args:
        path: a registry name or a file path.
        device: torch device to move the tensors to.
        verify: check the registry sha256 when ``path`` is a name.

    Returns:
        a dict of tensors, ready for ``module.load_state_dict``.

    Raises:
        UnsafeModelError: the file is a raw pickle, or the checkpoint contains
            anything but tensors and plain containers.
        ModelError: the file is damaged or of another kind (ONNX, TFLite, ...).

    Example:
        >>> import tempfile, pathlib, torch
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "ckpt.pt"
        >>> torch.save({"state_dict": {"w": torch.zeros(1)}, "epoch": 3}, p)
        >>> list(load_state_dict(p))
        ['w']
    """
    p = resolve_model(path, verify=verify)
    kind = sniff_model_format(p)
    if kind == "safetensors":
        return load_safetensors(p, device=device, verify=False)
    if kind != "torch":
        raise _wrong_kind(p, kind, "a safetensors file or a PyTorch checkpoint")
    import pickle

    import torch

    try:
        obj = torch.load(p, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        # Not chained: torch's own message suggests weights_only=False, which is exactly what not to do.
        found = re.search(r"Unsupported global: GLOBAL [\w.]+|Unsupported operand \d+", str(err))
        detail = f" ({found.group(0).strip()})" if found else ""
        raise _unsafe(p, f"the checkpoint contains Python objects besides tensors{detail}") from None
    except Exception as err:
        raise ModelError(
            f"cannot load PyTorch checkpoint '{p}' (damaged or truncated?): {_short(err)}"
        ) from err
    state = _as_state_dict(obj, p)
    if device != "cpu":
        state = {k: v.to(device) for k, v in state.items()}
    return state


def save_safetensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, Any],
    metadata: Mapping[str, str] | None = None,
    *,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Write ``{name: tensor}`` to a safetensors file atomically.

    Tensors are moved to the CPU and made contiguous; tensors that share memory
    (tied weights) are copied, since safetensors stores each one separately. NumPy
    arrays are accepted too.

    Args:
        path: destination file (its folder must exist).
        tensors: mapping of names to ``torch.Tensor`` (or ``numpy.ndarray``).
        metadata: optional ``{str: str}`` stored in the file header.
        inputs: input paths that must not be overwritten.

    Returns:
        the destination path.

    Raises:
        ConfigError: bad names, values or metadata.
        OutputError: the destination cannot be written.
    """
    import numpy as np
    import torch
    from safetensors.torch import save_file

    if not isinstance(tensors, Mapping) or not tensors:
        raise ConfigError("tensors must be a non-empty mapping of names to tensors")
    if metadata is not None and (
        not isinstance(metadata, Mapping)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise ConfigError("safetensors metadata must be a dict of str to str")
    prepared: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise ConfigError(f"tensor names must be strings, got {type(name).__name__}")
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        if not torch.is_tensor(value):
            raise ConfigError(f"{name!r} is a {type(value).__name__}, not a tensor")
        t = value.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in storages and t.numel():
            t = t.clone()
        storages.add(t.untyped_storage().data_ptr())
        prepared[name] = t
    with atomic_output(path, inputs=tuple(inputs)) as tmp:
        save_file(prepared, str(tmp), metadata=dict(metadata) if metadata else None)
    return Path(path)


# --------------------------------------------------------------------------- ONNX

_PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "gpu": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "directml": "DmlExecutionProvider",
    "dml": "DmlExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
_CPU = "CPUExecutionProvider"
_session_lock = threading.Lock()
_sessions: dict[tuple[Any, ...], Any] = {}


def _choose_providers(
    providers: str | Iterable[str] | None, available: list[str], known: list[str]
) -> list[str]:
    if providers is None:
        return [_CPU]
    requested = [providers] if isinstance(providers, str) else list(providers)
    names = []
    for item in requested:
        if not isinstance(item, str):
            raise ConfigError(f"providers must be names such as 'cpu' or 'cuda', got {item!r}")
        name = _PROVIDER_ALIASES.get(item.lower(), item)
        if name not in known:
            raise ConfigError(
                f"unknown onnxruntime provider {item!r}; use cpu, cuda, tensorrt or a full provider name"
            )
        names.append(name)
    chosen = [n for n in names if n in available]
    missing = [n for n in names if n not in available]
    if missing:
        log.warning(
            "onnxruntime provider(s) %s not available here; using %s", ", ".join(missing), chosen or [_CPU]
        )
    if _CPU not in chosen:
        chosen.append(_CPU)  # always keep the CPU fallback
    return list(dict.fromkeys(chosen))


def open_onnx_session(
    path: str | os.PathLike[str],
    providers: str | Iterable[str] | None = None,
    *,
    threads: int | None = None,
    verify: bool = True,
) -> Any:
    """Open (or reuse) an onnxruntime ``InferenceSession`` for an ONNX model.

    Sessions are cached per (file, providers, threads) so repeated calls are free;
    :func:`release_sessions` drops them. ``InferenceSession.run`` is thread-safe.

    Args:
        path: a registry name or a file path.
        providers: ``None`` for CPU, or names in priority order such as
            ``["cuda", "cpu"]`` / ``"tensorrt"`` (aliases or full onnxruntime names).
            Providers not available in this onnxruntime build are skipped with a
            warning; the CPU provider is always kept as the fallback.
        threads: intra-op thread count (``None`` = onnxruntime's default).
        verify: check the registry sha256 when ``path`` is a name.

    Returns:
        an ``onnxruntime.InferenceSession``.

    Raises:
        ModelNotFoundError: unknown name or missing file.
        UnsafeModelError: the file is a pickle.
        ModelError: the file is not a valid ONNX model.
        ConfigError: unknown provider or bad ``threads``.

    Example:
        >>> sess = open_onnx_session("model.onnx", providers=["cuda", "cpu"])  # doctest: +SKIP
        >>> sess.run(None, {sess.get_inputs()[0].name: batch})  # doctest: +SKIP
    """
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be a positive integer or None, got {threads!r}")
    p = resolve_model(path, verify=verify)
    kind = sniff_model_format(p)
    if kind != "onnx":
        raise _wrong_kind(p, kind, "an ONNX model")
    import onnxruntime as ort

    chosen = _choose_providers(providers, ort.get_available_providers(), ort.get_all_providers())
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, tuple(chosen), threads)
    with _session_lock:
        session = _sessions.get(key)
        if session is not None:
            return session
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(str(p), sess_options=options, providers=chosen)
        except Exception as err:
            raise ModelError(f"cannot load ONNX model '{p}' (damaged or unsupported): {_short(err)}") from err
        _sessions[key] = session
        return session


def release_sessions() -> int:
    """Drop every cached ONNX session (freeing their memory); return how many there were."""
    with _session_lock:
        count = len(_sessions)
        _sessions.clear()
    return count
