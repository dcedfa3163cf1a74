"""Neural face swap: run a learned swapper exported to ONNX through the swap pipeline.

A swapper model is an ONNX file (never a pickle; safetensors or PyTorch weights
must be exported to ONNX first) opened once with
:func:`portraitfx.models.load.open_onnx_session`, whose sessions are cached per
file and providers, so every :class:`NeuralSwapper` of one file shares one session.
By default the best available of TensorRT, CUDA and CPU is used.

Swapper contract (checked when the model is opened; any mismatch raises
:class:`~portraitfx.errors.ModelError`):

* input ``target``: float32 ``1 x 3 x S x S``, RGB in ``[0, 1]``: the target face
  aligned with a :mod:`portraitfx.face.align` template (``arcface`` by default) at
  side ``S``. ``S`` comes from the input shape; when the spatial dimensions are
  dynamic, from the metadata entry ``portraitfx.size`` (default 128).
* input ``source``: float32 ``1 x D`` identity vector, L2-normalised (``D`` must be
  fixed in the model).
* output 1: float32 ``1 x 3 x S x S``, the swapped crop in ``[0, 1]``.
* output 2 (optional): float32 ``1 x 1 x S x S``, where to paste, in ``[0, 1]``.

Optional ONNX metadata (``onnx.helper.set_model_props``):

* ``portraitfx.template``: ``"arcface"`` (default) or ``"ffhq"``, the crop framing;
* ``portraitfx.identity``: which embedding ``source`` expects (default
  ``"dlib128"``, the descriptor of :mod:`portraitfx.face.identity`);
* ``portraitfx.size``: ``S`` for models with dynamic spatial dimensions.

Restoration contract (optional second model, ``restore=``): one input ``image``,
float32 ``1 x 3 x R x R`` in ``[0, 1]`` (``R`` from the shape, else
``portraitfx.size``, else 512), first output of the same shape. It sees the
swapped crop resized to ``R`` (same framing), and runs only when the target face
is larger in the frame than ``S`` pixels, i.e. when the swap would be upscaled.

Example:
    >>> swapper = NeuralSwapper("swapper.onnx", restore="restore.onnx")        # doctest: +SKIP
    >>> out = swap_face_neural(image, face, swapper, source_face.embedding)    # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np

from portraitfx._validate import check_image
from portraitfx.errors import ConfigError, InputError, ModelError
from portraitfx.face.align import (
    TEMPLATES,
    TemplateName,
    align_face,
    alignment_matrix,
    paste_back,
    transform_points,
)
from portraitfx.face.regions import region_mask
from portraitfx.face.types import Face
from portraitfx.models.load import open_onnx_session, sniff_model_format
from portraitfx.models.registry import resolve_model

__all__ = [
    "DEFAULT_RESTORE_SIZE",
    "DEFAULT_SIZE",
    "META_IDENTITY",
    "META_SIZE",
    "META_TEMPLATE",
    "NeuralSwapper",
    "swap_face_neural",
]

DEFAULT_SIZE = 128
"""Swapper crop side used when the model's spatial dimensions are dynamic and undeclared."""

DEFAULT_RESTORE_SIZE = 512
"""Restoration crop side used when the model's spatial dimensions are dynamic and undeclared."""

META_TEMPLATE = "portraitfx.template"
META_IDENTITY = "portraitfx.identity"
META_SIZE = "portraitfx.size"

_PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_SMOOTH_KEY = "neural_points5"


# --------------------------------------------------------------------------- session helpers


def _default_providers() -> list[str]:
    """TensorRT, then CUDA, then CPU: whichever this onnxruntime build has."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    return [p for p in _PREFERRED_PROVIDERS if p in available] or ["CPUExecutionProvider"]


def _open_onnx(model: str | os.PathLike[str], providers: Sequence[str] | None, what: str) -> tuple[Any, str]:
    """Resolve ``model`` and open its (shared) session; non-ONNX weights are refused."""
    path = resolve_model(model)
    kind = sniff_model_format(path)
    if kind in ("safetensors", "torch"):
        raise ModelError(
            f"the {what} '{path}' is {'a safetensors file' if kind == 'safetensors' else 'a PyTorch checkpoint'}; "
            "the neural swap runs ONNX models only, export it first (torch.onnx.export)"
        )
    # pickles (UnsafeModelError), damaged and other files are refused here
    session = open_onnx_session(path, list(providers) if providers is not None else _default_providers())
    return session, str(path)


def _metadata(session: Any) -> dict[str, str]:
    try:
        return dict(session.get_modelmeta().custom_metadata_map)
    except Exception:  # pragma: no cover - onnxruntime always provides it
        return {}


def _fixed(dim: Any) -> int | None:
    """A static dimension as an int, or ``None`` when it is symbolic/unknown."""
    return int(dim) if isinstance(dim, int) and dim > 0 else None


def _meta_size(meta: Mapping[str, str], where: str) -> int | None:
    raw = meta.get(META_SIZE)
    if raw is None:
        return None
    try:
        size = int(str(raw).strip())
    except ValueError:
        size = 0
    if size < 8:
        raise ModelError(f"{where}: metadata {META_SIZE}={raw!r} must be an integer of at least 8")
    return size


def _image_size(arg: Any, meta: Mapping[str, str], default: int, where: str) -> int:
    """Side ``S`` of a ``1 x 3 x S x S`` input (checked), from its shape or the metadata."""
    shape = list(arg.shape) if arg.shape is not None else []
    if len(shape) != 4:
        raise ModelError(
            f"{where}: input {arg.name!r} must be 4-D (1 x 3 x S x S), the model declares shape {shape}"
        )
    batch, channels, h, w = (_fixed(d) for d in shape)
    if channels != 3 and w == 3:
        raise ModelError(
            f"{where}: input {arg.name!r} has shape {shape}, which looks channels-last (NHWC); "
            "the contract is channels-first 1 x 3 x S x S"
        )
    if channels not in (3, None):
        raise ModelError(
            f"{where}: input {arg.name!r} must have 3 (RGB) channels, the model declares {shape}"
        )
    if batch not in (1, None):
        raise ModelError(f"{where}: input {arg.name!r} must have batch size 1, the model declares {shape}")
    declared = _meta_size(meta, where)
    fixed = {d for d in (h, w) if d is not None}
    if len(fixed) > 1:
        raise ModelError(f"{where}: input {arg.name!r} must be square, the model declares {shape}")
    if fixed:
        size = fixed.pop()
        if declared is not None and declared != size:
            raise ModelError(
                f"{where}: metadata {META_SIZE}={declared} contradicts input {arg.name!r} of shape {shape}"
            )
    else:
        size = declared if declared is not None else default
    if size < 8:
        raise ModelError(f"{where}: input {arg.name!r} is too small ({size} px); at least 8 px are needed")
    return size


def _check_float(arg: Any, where: str, role: str) -> None:
    if arg.type != "tensor(float)":
        raise ModelError(f"{where}: {role} {arg.name!r} must be float32, the model declares {arg.type}")


def _check_output(arg: Any, channels: int, where: str, role: str) -> None:
    _check_float(arg, where, role)
    shape = list(arg.shape) if arg.shape else []
    if shape and (len(shape) != 4 or _fixed(shape[1]) not in (channels, None)):
        raise ModelError(
            f"{where}: {role} {arg.name!r} must be 1 x {channels} x S x S, the model declares {shape}"
        )


def _to_nchw(crop: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(crop.astype(np.float32).transpose(2, 0, 1)[None] / np.float32(255.0))


def _from_nchw(out: np.ndarray, size: int, channels: int, where: str, what: str) -> np.ndarray:
    """``1 x C x S x S`` model output -> ``S x S x C`` float32 in [0, 1] (checked)."""
    arr = np.asarray(out)
    if arr.shape != (1, channels, size, size):
        raise ModelError(
            f"{where}: {what} has shape {tuple(arr.shape)}, expected (1, {channels}, {size}, {size})"
        )
    arr = arr[0].astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ModelError(f"{where}: {what} contains NaN or infinite values")
    return np.clip(arr.transpose(1, 2, 0), 0.0, 1.0)


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.round(img * 255.0).astype(np.uint8))


def _run(session: Any, feeds: dict[str, np.ndarray], names: list[str], where: str) -> list[np.ndarray]:
    try:
        return list(session.run(names, feeds))
    except Exception as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"{where}: inference failed: {text[:200]}") from err


# --------------------------------------------------------------------------- restoration


class _Restorer:
    """An image-to-image ONNX model ``image (1x3xRxR) -> 1x3xRxR``, all in [0, 1]."""

    def __init__(self, model: str | os.PathLike[str], providers: Sequence[str] | None) -> None:
        self.session, self.path = _open_onnx(model, providers, "restoration model")
        where = f"restoration model '{self.path}'"
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != ["image"]:
            raise ModelError(
                f"{where}: expected one input named 'image' (1 x 3 x R x R), "
                f"found {', '.join(repr(i.name) for i in inputs) or 'none'}"
            )
        _check_float(inputs[0], where, "input")
        self.size = _image_size(inputs[0], _metadata(self.session), DEFAULT_RESTORE_SIZE, where)
        if not outputs:
            raise ModelError(f"{where}: the model has no output")
        _check_output(outputs[0], 3, where, "output")
        self._output = outputs[0].name
        self._where = where

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        if crop.shape[:2] != (self.size, self.size):
            crop = cv2.resize(crop, (self.size, self.size), interpolation=cv2.INTER_CUBIC)
        (out,) = _run(self.session, {"image": _to_nchw(crop)}, [self._output], self._where)
        return _to_uint8(_from_nchw(out, self.size, 3, self._where, "the restored image"))


# --------------------------------------------------------------------------- swapper


class NeuralSwapper:
    """A learned face swapper in ONNX (see the module docstring for the model contract).

    Args:
        model: registry name or path of the swapper's ONNX file.
        restore: optional registry name or path of a face-restoration ONNX model,
            run on the swapped crop when the face is larger than the swapper's
            resolution.
        providers: onnxruntime providers in priority order (``"tensorrt"``,
            ``"cuda"``, ``"cpu"`` or full names); ``None`` picks the best available
            of TensorRT, CUDA and CPU.

    Raises:
        ModelNotFoundError: unknown name or missing file.
        UnsafeModelError: the file is a pickle.
        ModelError: not an ONNX file (safetensors/PyTorch weights need an ONNX
            export), damaged, or not following the contract.
        ConfigError: unknown provider name.

    Attributes:
        session: the (shared) onnxruntime session of the swapper.
        path: the resolved model file.
        template: the alignment template the model expects (``"arcface"``/``"ffhq"``).
        identity_kind: the identity embedding the model expects (e.g. ``"dlib128"``).
        metadata: the model's custom ONNX metadata.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        restore: str | os.PathLike[str] | None = None,
        providers: Sequence[str] | None = None,
    ) -> None:
        if isinstance(providers, str):
            providers = [providers]
        self.session, self.path = _open_onnx(model, providers, "swapper model")
        self._where = where = f"swapper model '{self.path}'"
        self.metadata: dict[str, str] = _metadata(self.session)
        inputs = {i.name: i for i in self.session.get_inputs()}
        if set(inputs) != {"target", "source"}:
            raise ModelError(
                f"{where}: expected inputs named 'target' (1 x 3 x S x S) and 'source' (1 x D), "
                f"found {', '.join(repr(n) for n in inputs) or 'none'}"
            )
        target, source = inputs["target"], inputs["source"]
        for arg in (target, source):
            _check_float(arg, where, "input")
        self._size = _image_size(target, self.metadata, DEFAULT_SIZE, where)
        src_shape = list(source.shape) if source.shape is not None else []
        if len(src_shape) != 2 or _fixed(src_shape[0]) not in (1, None):
            raise ModelError(f"{where}: input 'source' must be 1 x D, the model declares shape {src_shape}")
        dim = _fixed(src_shape[1])
        if dim is None:
            raise ModelError(
                f"{where}: input 'source' must have a fixed identity size D (1 x D), "
                f"the model declares shape {src_shape}"
            )
        self._dim = dim
        outputs = self.session.get_outputs()
        if not 1 <= len(outputs) <= 2:
            raise ModelError(
                f"{where}: expected 1 output (swapped crop) or 2 (swapped crop, mask), found {len(outputs)}"
            )
        _check_output(outputs[0], 3, where, "output")
        if len(outputs) == 2:
            _check_output(outputs[1], 1, where, "mask output")
        self._outputs = [o.name for o in outputs]
        template = self.metadata.get(META_TEMPLATE, "arcface").strip().lower()
        if template not in TEMPLATES:
            raise ModelError(
                f"{where}: metadata {META_TEMPLATE}={template!r} must be one of {', '.join(map(repr, TEMPLATES))}"
            )
        self.template: TemplateName = cast(TemplateName, template)
        self.identity_kind: str = self.metadata.get(META_IDENTITY, "dlib128").strip() or "dlib128"
        self._id_session: Any = None
        if self.identity_kind.startswith("onnx:"):  # the model's own identity encoder, beside it
            id_path = Path(self.path).parent / self.identity_kind[len("onnx:") :]
            self._id_session, _ = _open_onnx(id_path, providers, "identity encoder")
            self._id_size = _image_size(self._id_session.get_inputs()[0], {}, self._size, f"'{id_path}'")
        self._restorer = _Restorer(restore, providers) if restore is not None else None

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The identity vector of ``face`` with the model's own identity encoder (``onnx:`` kinds only)."""
        if self._id_session is None:
            raise ConfigError(f"{self._where} takes {self.identity_kind} identities, computed elsewhere")
        crop = align_face(check_image(image), face, self._id_size, self.template).image
        name = self._id_session.get_inputs()[0].name
        vec = np.asarray(self._id_session.run(None, {name: _to_nchw(crop)})[0], np.float32).reshape(-1)
        return vec / max(float(np.linalg.norm(vec)), 1e-12)

    # -- properties -------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Side ``S`` of the model's square crop, in pixels."""
        return self._size

    @property
    def identity_dim(self) -> int:
        """Length ``D`` of the identity vector the model expects."""
        return self._dim

    @property
    def has_mask(self) -> bool:
        """Whether the model outputs its own paste mask."""
        return len(self._outputs) == 2

    @property
    def providers(self) -> list[str]:
        """The onnxruntime providers of the swapper's session, in priority order."""
        return list(self.session.get_providers())

    @property
    def restore_size(self) -> int | None:
        """Side ``R`` of the restoration model's crop, or ``None`` without one."""
        return None if self._restorer is None else self._restorer.size

    def __repr__(self) -> str:
        extra = f", restore_size={self.restore_size}" if self._restorer is not None else ""
        return (
            f"NeuralSwapper('{self.path}', size={self.size}, identity_dim={self.identity_dim}, "
            f"template={self.template!r}{extra}, providers={self.providers})"
        )

    # -- inference --------------------------------------------------------------------
    def _identity(self, identity: np.ndarray) -> np.ndarray:
        vec = np.asarray(identity, np.float32)
        if vec.ndim == 2 and vec.shape[0] == 1:
            vec = vec[0]
        if vec.ndim != 1 or vec.shape[0] != self._dim:
            raise ModelError(
                f"{self._where} expects a {self._dim}-d identity vector ({self.identity_kind}), "
                f"got shape {tuple(vec.shape)}"
            )
        norm = float(np.linalg.norm(vec))
        if not np.isfinite(norm) or norm < 1e-12:
            raise InputError("the identity vector is zero or not finite")
        return (vec / norm)[None]

    def __call__(self, crop: np.ndarray, identity: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Swap the identity of one aligned crop.

        Args:
            crop: ``S x S x 3`` uint8 RGB target face, aligned with :attr:`template`.
            identity: ``(D,)`` identity vector (normalised here to unit length).

        Returns:
            ``(swapped, mask)``: the ``S x S x 3`` uint8 swapped crop and the model's
            ``S x S`` float32 mask in ``[0, 1]``, or ``None`` when it has none.

        Raises:
            InputError: the crop is not ``S x S x 3`` uint8, or the identity is zero.
            ModelError: the identity has the wrong length, or the model fails or
                returns outputs that break the contract.
        """
        crop = check_image(crop, "crop")
        if crop.shape[:2] != (self._size, self._size):
            raise InputError(
                f"crop must be {self._size}x{self._size} (the model's size), got {crop.shape[0]}x{crop.shape[1]}"
            )
        feeds = {"target": _to_nchw(crop), "source": self._identity(identity)}
        outs = _run(self.session, feeds, self._outputs, self._where)
        swapped = _to_uint8(_from_nchw(outs[0], self._size, 3, self._where, "the swapped crop"))
        mask = None
        if len(outs) > 1:
            mask = np.ascontiguousarray(_from_nchw(outs[1], self._size, 1, self._where, "the mask")[..., 0])
        return swapped, mask

    def restore(self, crop: np.ndarray) -> np.ndarray:
        """Run the restoration model on a crop (resized to :attr:`restore_size` first).

        Args:
            crop: square uint8 RGB crop.

        Returns:
            the restored ``R x R x 3`` uint8 crop.

        Raises:
            ConfigError: the swapper has no restoration model.
            ModelError: the restoration model fails or breaks its contract.
        """
        if self._restorer is None:
            raise ConfigError("this NeuralSwapper has no restoration model (pass restore=...)")
        return self._restorer(check_image(crop, "crop"))


# --------------------------------------------------------------------------- pipeline


def _scale(matrix: np.ndarray) -> float:
    return float(np.sqrt(abs(np.linalg.det(np.asarray(matrix, np.float64)[:, :2]))))


def _steady_points(face: Face, scratch: dict[str, Any] | None) -> np.ndarray:
    """The five alignment points, with small (jitter-sized) motion damped in video."""
    pts = np.asarray(face.five_points, np.float64)
    if scratch is None:
        return pts
    prev = scratch.get(_SMOOTH_KEY)
    if isinstance(prev, np.ndarray) and prev.shape == pts.shape:
        move = float(np.linalg.norm(pts - prev, axis=1).max()) / max(face.eye_distance, 1.0)
        alpha = float(np.clip(move / 0.05, 0.3, 1.0))  # full speed from 5 % of the eye distance
        pts = prev + alpha * (pts - prev)
    scratch[_SMOOTH_KEY] = pts
    return pts


def swap_face_neural(
    frame: np.ndarray,
    face: Face,
    swapper: NeuralSwapper,
    identity: np.ndarray,
    *,
    feather: float = 0.12,
    scratch: dict[str, Any] | None = None,
) -> np.ndarray:
    """Swap one face of a frame with a :class:`NeuralSwapper`.

    The face is aligned to the model's template at its size ``S``, swapped, (when
    the face is larger than ``S`` in the frame and the swapper has a restoration
    model) restored at its size ``R``, and pasted back into a copy of the frame
    under the model's mask, or the face-oval mask of the landmarks when the model
    has none. Pixels outside the feathered mask are untouched.

    Args:
        frame: ``H x W x 3`` uint8 RGB frame.
        face: the target face (its 478-point mesh places the crop and the mask).
        swapper: the model.
        identity: ``(D,)`` source identity vector (see :attr:`NeuralSwapper.identity_kind`).
        feather: softness of the mask edge, Gaussian sigma as a fraction of the
            eye distance (0 = hard edge).
        scratch: per-track dict in video (damps landmark jitter); ``None`` for stills.

    Returns:
        a new frame.

    Raises:
        ConfigError: negative ``feather``.
        InputError: bad frame or identity.
        ModelError: the identity has the wrong length or the model fails.
    """
    frame = check_image(frame, "frame")
    if not np.isfinite(feather) or feather < 0:
        raise ConfigError(f"feather must be >= 0, got {feather}")
    pts = _steady_points(face, scratch)
    size = swapper.size
    aligned = align_face(frame, pts, size, swapper.template)
    swapped, mask = swapper(aligned.image, identity)
    matrix = aligned.matrix
    upscaled = _scale(matrix) < 1.0  # the face spans more than S frame pixels at this framing
    if swapper.restore_size is not None and upscaled:
        size = swapper.restore_size
        swapped = swapper.restore(swapped)
        matrix = alignment_matrix(pts, size, swapper.template)
        if mask is not None:
            mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_LINEAR)
    if mask is None:
        lm = transform_points(face.landmarks, matrix)
        mask = region_mask((size, size), lm, "face")
    mask = np.array(mask, np.float32)
    edge = max(1, size // 64)  # the crop's border never shows
    mask[:edge], mask[-edge:], mask[:, :edge], mask[:, -edge:] = 0, 0, 0, 0
    sigma = feather * face.eye_distance * _scale(matrix)
    if sigma > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, sigmaY=sigma)
    return paste_back(frame, swapped, matrix, mask)
