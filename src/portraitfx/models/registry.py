"""The model registry: what each model file is, where it comes from, and where it is found.

A :class:`ModelCard` describes one model file (its name, file name, sha256, licence,
source, format and preprocessing). :func:`resolve_model` turns a registry name (or an
explicit path) into a verified local file, looking in this order:

1. inside the installed package that ships the file (``card.package`` /
   ``card.package_path``), located with :func:`importlib.util.find_spec` without
   importing the package;
2. ``$PORTRAITFX_HOME/models`` (default ``~/.cache/portraitfx/models``);
3. every folder of ``$PORTRAITFX_MODEL_PATH`` (an ``os.pathsep``-separated list).

The sha256 of each file is computed once per process (cached by path, size and
modification time) and compared with the card.

The built-in cards describe models that ship inside pip packages portraitfx already
depends on (``mediapipe``, ``face_recognition_models``); they live in
:data:`BUILTIN_CARDS` as plain data.

Example:
    >>> card = get_card("mediapipe/face_detection_short_range")
    >>> card.format, card.input_size
    ('tflite', (128, 128))
    >>> "dlib/shape_predictor_5" in list_models("dlib/*")
    True
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from portraitfx._home import HOME_ENV, home_dir
from portraitfx.errors import ChecksumError, ConfigError, ModelNotFoundError

__all__ = [
    "BUILTIN_CARDS",
    "HOME_ENV",
    "MODEL_FORMATS",
    "MODEL_PATH_ENV",
    "ModelCard",
    "file_sha256",
    "get_card",
    "list_models",
    "model_dirs",
    "register_model",
    "resolve_model",
]

"""Environment variable: portraitfx's data folder (models go in its ``models`` sub-folder)."""

MODEL_PATH_ENV = "PORTRAITFX_MODEL_PATH"
"""Environment variable: extra folders searched for model files (``os.pathsep``-separated)."""

MODEL_FORMATS = ("onnx", "safetensors", "tflite", "dlib", "torch")
"""Allowed values of :attr:`ModelCard.format`."""


@dataclass(frozen=True)
class ModelCard:
    """Everything portraitfx knows about one model file.

    Attributes:
        name: registry name, ``"<family>/<model>"``, e.g. ``"dlib/shape_predictor_5"``.
        filename: the file's base name, searched for in the model folders.
        sha256: expected hex digest of the file, or ``None`` to skip verification.
        licence: licence of the weights, including any restriction of the training data.
        source: where to get the file: a URL, or ``"package:<dist>"`` when a pip
            package ships it.
        format: ``"onnx"``, ``"safetensors"``, ``"tflite"``, ``"dlib"`` or ``"torch"``.
        input_size: network input as ``(height, width)`` in pixels, or ``None``.
        mean: per-channel value subtracted from RGB pixels in 0..255 units, or ``None``.
        std: per-channel divisor applied after ``mean`` (0..255 units), or ``None``.
            ``mean=127.5, std=127.5`` maps pixels to [-1, 1]; ``mean=0, std=255`` to [0, 1].
        alignment: name of the face alignment/crop template the model expects, or ``None``.
        description: one line on what the model does and outputs.
        package: importable package that ships the file (``"mediapipe"``), or ``None``.
        package_path: path of the file inside that package, with ``/`` separators.
    """

    name: str
    filename: str
    sha256: str | None
    licence: str
    source: str
    format: str
    input_size: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    alignment: str | None = None
    description: str = ""
    package: str | None = None
    package_path: str | None = None

    def __post_init__(self) -> None:
        if self.format not in MODEL_FORMATS:
            raise ConfigError(f"model {self.name!r}: format must be one of {', '.join(MODEL_FORMATS)}")
        if self.sha256 is not None and (
            len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256)
        ):
            raise ConfigError(f"model {self.name!r}: sha256 must be 64 lowercase hex digits")
        if (self.package is None) != (self.package_path is None):
            raise ConfigError(f"model {self.name!r}: give both package and package_path, or neither")
        if Path(self.filename).name != self.filename:
            raise ConfigError(f"model {self.name!r}: filename must be a bare file name")


# --------------------------------------------------------------------------- built-in data

_MP_LICENCE = "Apache-2.0 (MediaPipe model, shipped in the mediapipe wheel)"
_MP_SOURCE = "package:mediapipe"
_MINUS1_1 = ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5))  # pixels -> [-1, 1]
_ZERO_1 = ((0.0, 0.0, 0.0), (255.0, 255.0, 255.0))  # pixels -> [0, 1]
_DLIB_SOURCE = "package:face_recognition_models"

BUILTIN_CARDS: tuple[ModelCard, ...] = (
    ModelCard(
        name="mediapipe/face_detection_short_range",
        filename="face_detection_short_range.tflite",
        sha256="bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
        licence=_MP_LICENCE,
        source=_MP_SOURCE,
        format="tflite",
        input_size=(128, 128),
        mean=_MINUS1_1[0],
        std=_MINUS1_1[1],
        description="BlazeFace short-range face detector (faces within ~2 m); 896 anchors × (box + 6 keypoints)",
        package="mediapipe",
        package_path="modules/face_detection/face_detection_short_range.tflite",
    ),
    ModelCard(
        name="mediapipe/face_detection_full_range_sparse",
        filename="face_detection_full_range_sparse.tflite",
        sha256="2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
        licence=_MP_LICENCE,
        source=_MP_SOURCE,
        format="tflite",
        input_size=(192, 192),
        mean=_MINUS1_1[0],
        std=_MINUS1_1[1],
        description="BlazeFace full-range sparse face detector (faces up to ~5 m); 2304 anchors",
        package="mediapipe",
        package_path="modules/face_detection/face_detection_full_range_sparse.tflite",
    ),
    ModelCard(
        name="mediapipe/face_landmark",
        filename="face_landmark.tflite",
        sha256="1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
        licence=_MP_LICENCE,
        source=_MP_SOURCE,
        format="tflite",
        input_size=(192, 192),
        mean=_ZERO_1[0],
        std=_ZERO_1[1],
        alignment="mediapipe_face_roi",
        description="Face Mesh: 468 3-D landmarks plus a face-presence score from a rotated face crop",
        package="mediapipe",
        package_path="modules/face_landmark/face_landmark.tflite",
    ),
    ModelCard(
        name="mediapipe/face_landmark_with_attention",
        filename="face_landmark_with_attention.tflite",
        sha256="e06a804e0144f9929eda782122916b35d60c697c3c9344013ca2bbe76a6ce2b4",
        licence=_MP_LICENCE,
        source=_MP_SOURCE,
        format="tflite",
        input_size=(192, 192),
        mean=_ZERO_1[0],
        std=_ZERO_1[1],
        alignment="mediapipe_face_roi",
        description="Face Mesh with attention: 468 landmarks refined around lips and eyes, plus 10 iris points",
        package="mediapipe",
        package_path="modules/face_landmark/face_landmark_with_attention.tflite",
    ),
    ModelCard(
        name="mediapipe/selfie_segmentation",
        filename="selfie_segmentation.tflite",
        sha256="9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
        licence=_MP_LICENCE,
        source=_MP_SOURCE,
        format="tflite",
        input_size=(256, 256),
        mean=_ZERO_1[0],
        std=_ZERO_1[1],
        description="Selfie segmentation (general, square input): person/background mask",
        package="mediapipe",
        package_path="modules/selfie_segmentation/selfie_segmentation.tflite",
    ),
    ModelCard(
        name="mediapipe/selfie_segmentation_landscape",
        filename="selfie_segmentation_landscape.tflite",
        sha256="a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd",
        licence=_MP_LICENCE,
        source=_MP_SOURCE,
        format="tflite",
        input_size=(144, 256),
        mean=_ZERO_1[0],
        std=_ZERO_1[1],
        description="Selfie segmentation (landscape 144×256 input, faster): person/background mask",
        package="mediapipe",
        package_path="modules/selfie_segmentation/selfie_segmentation_landscape.tflite",
    ),
    ModelCard(
        name="dlib/face_recognition_resnet_v1",
        filename="dlib_face_recognition_resnet_model_v1.dat",
        sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        licence=(
            "CC0-1.0 / public domain (Davis King, dlib-models; packaged by face_recognition_models 0.3.0); "
            "trained on face images collected from the web (VGG, FaceScrub and others)"
        ),
        source=_DLIB_SOURCE,
        format="dlib",
        input_size=(150, 150),
        alignment="dlib_face_chip_150",
        description="dlib ResNet-29 face descriptor: 128-D identity embedding of a 150×150 aligned face chip",
        package="face_recognition_models",
        package_path="models/dlib_face_recognition_resnet_model_v1.dat",
    ),
    ModelCard(
        name="dlib/shape_predictor_5",
        filename="shape_predictor_5_face_landmarks.dat",
        sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        licence=(
            "CC0-1.0 / public domain (Davis King, dlib-models; packaged by face_recognition_models 0.3.0); "
            "trained on dlib's own CC0 5-point face landmark dataset"
        ),
        source=_DLIB_SOURCE,
        format="dlib",
        description="dlib 5-point face landmarks (eye corners and nose base), used to align face chips",
        package="face_recognition_models",
        package_path="models/shape_predictor_5_face_landmarks.dat",
    ),
    ModelCard(
        name="dlib/shape_predictor_68",
        filename="shape_predictor_68_face_landmarks.dat",
        sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
        licence=(
            "NON-COMMERCIAL USE ONLY: the file is released CC0 by Davis King (dlib-models, packaged by "
            "face_recognition_models 0.3.0), but it was trained on the iBUG 300-W dataset whose licence "
            "excludes commercial use; do not use it in a commercial product without permission from "
            "Imperial College London (iBUG)"
        ),
        source=_DLIB_SOURCE,
        format="dlib",
        description="dlib 68-point face landmarks (iBUG 300-W layout: jaw, brows, eyes, nose, mouth)",
        package="face_recognition_models",
        package_path="models/shape_predictor_68_face_landmarks.dat",
    ),
    ModelCard(
        name="dlib/mmod_face_detector",
        filename="mmod_human_face_detector.dat",
        sha256="4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
        licence=(
            "CC0-1.0 / public domain (Davis King, dlib-models; packaged by face_recognition_models 0.3.0); "
            "trained on images annotated by Davis King"
        ),
        source=_DLIB_SOURCE,
        format="dlib",
        description="dlib CNN (MMOD) face detector; slow on CPU, robust to pose",
        package="face_recognition_models",
        package_path="models/mmod_human_face_detector.dat",
    ),
)
"""Cards of the models that ship inside installed packages (registered at import)."""


# --------------------------------------------------------------------------- registry

_lock = threading.Lock()
_cards: dict[str, ModelCard] = {}
_hash_cache: dict[tuple[str, int, int, int], str] = {}


def register_model(card: ModelCard, *, replace: bool = False) -> ModelCard:
    """Add ``card`` to the registry and return it.

    Args:
        card: the model's card.
        replace: allow replacing a different card registered under the same name.

    Raises:
        ConfigError: another card already uses that name (and ``replace`` is false).

    Example:
        >>> card = ModelCard(name="example/tiny", filename="tiny.onnx", sha256=None, licence="MIT",
        ...                  source="https://example.org/tiny.onnx", format="onnx")
        >>> register_model(card)  # doctest: +SKIP
        >>> resolve_model("example/tiny")  # doctest: +SKIP
    """
    if not isinstance(card, ModelCard):
        raise ConfigError(f"register_model expects a ModelCard, got {type(card).__name__}")
    with _lock:
        old = _cards.get(card.name)
        if old is not None and old != card and not replace:
            raise ConfigError(f"a different model is already registered as {card.name!r}; pass replace=True")
        _cards[card.name] = card
    return card


def get_card(name: str) -> ModelCard:
    """Return the card registered as ``name``.

    Raises:
        ModelNotFoundError: unknown name; the message suggests close matches.
    """
    with _lock:
        card = _cards.get(name)
        known = list(_cards)
    if card is None:
        raise ModelNotFoundError.for_name(name, known)
    return card


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models matching an :mod:`fnmatch` ``pattern``.

    Example:
        >>> list_models("mediapipe/selfie*")
        ['mediapipe/selfie_segmentation', 'mediapipe/selfie_segmentation_landscape']
    """
    with _lock:
        names = list(_cards)
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


# --------------------------------------------------------------------------- locations


def model_dirs() -> list[Path]:
    """Folders searched for model files after the shipping package, in order.

    ``$PORTRAITFX_HOME/models`` (default ``~/.cache/portraitfx/models``), then each
    folder of ``$PORTRAITFX_MODEL_PATH``. Folders need not exist.
    """
    dirs = [home_dir() / "models"]
    for entry in os.environ.get(MODEL_PATH_ENV, "").split(os.pathsep):
        if entry.strip():
            dirs.append(Path(entry.strip()).expanduser())
    return dirs


def _package_candidates(card: ModelCard) -> list[Path]:
    """Where ``card``'s file would be inside its installed package (no import of the package)."""
    if not card.package or not card.package_path:
        return []
    try:
        spec = importlib.util.find_spec(card.package)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    roots = list(spec.submodule_search_locations or [])
    if not roots and spec.origin:
        roots = [str(Path(spec.origin).parent)]
    return [Path(root).joinpath(*card.package_path.split("/")) for root in roots]


def _candidates(card: ModelCard) -> list[Path]:
    return _package_candidates(card) + [d / card.filename for d in model_dirs()]


# --------------------------------------------------------------------------- checksums


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, computed once per process (cached by path, size, mtime, inode)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    with _lock:
        cached = _hash_cache.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    with _lock:
        _hash_cache[key] = value
    return value


def _verify(card: ModelCard, path: Path) -> None:
    if card.sha256 is None:
        return
    got = file_sha256(path)
    if got != card.sha256:
        raise ChecksumError(
            f"model {card.name!r} at '{path}' has the wrong sha256: expected {card.sha256}, got {got}; "
            "the file is damaged or a different version; delete it and get it again from "
            f"{_where_from(card)}"
        )


def _where_from(card: ModelCard) -> str:
    if card.source.startswith("package:"):
        dist = card.source.split(":", 1)[1]
        return f"the '{dist}' package (pip install --force-reinstall {dist})"
    return card.source


# --------------------------------------------------------------------------- resolution


_MODEL_SUFFIXES = frozenset(
    {".onnx", ".safetensors", ".tflite", ".dat", ".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle"}
)


def _looks_like_path(text: str) -> bool:
    """Registry names are ``family/model``; anything else path-like is treated as a path."""
    if text.startswith(("/", ".", "~")) or "\\" in text or text.count("/") > 1:
        return True
    return Path(text).suffix.lower() in _MODEL_SUFFIXES


def resolve_model(name_or_path: str | os.PathLike[str], *, verify: bool = True) -> Path:
    """Turn a registry name or an explicit path into an existing model file.

    Args:
        name_or_path: a registered name (``"dlib/shape_predictor_5"``) or a path to a
            model file (a :class:`~pathlib.Path`, or a string that is an existing file
            or looks like a path).
        verify: check the file's sha256 against the card (names only; computed once
            per process per file).

    Returns:
        the path of the model file.

    Raises:
        ModelNotFoundError: unknown name (with close-match suggestions), a known
            model whose file is missing (the message says where to put it and its
            sha256), or an explicit path that does not exist.
        ChecksumError: the file's sha256 differs from the card's.

    Example:
        >>> resolve_model("mediapipe/selfie_segmentation").name
        'selfie_segmentation.tflite'
    """
    if isinstance(name_or_path, os.PathLike) or not isinstance(name_or_path, str):
        return _explicit_path(Path(os.fspath(name_or_path)))
    text = name_or_path.strip()
    with _lock:
        card = _cards.get(text)
    if card is None:
        if Path(text).expanduser().is_file() or _looks_like_path(text):
            return _explicit_path(Path(text))
        raise ModelNotFoundError.for_name(text, list_models())
    for candidate in _candidates(card):
        if candidate.is_file():
            if verify:
                _verify(card, candidate)
            return candidate
    raise _missing(card)


def _explicit_path(path: Path) -> Path:
    p = path.expanduser()
    if not p.exists():
        raise ModelNotFoundError(f"model file not found: '{p}'")
    if p.is_dir():
        raise ModelNotFoundError(f"model path '{p}' is a folder, expected a model file")
    return p


def _missing(card: ModelCard) -> ModelNotFoundError:
    dirs = model_dirs()
    looked = [str(c) for c in _package_candidates(card)] + [str(d) for d in dirs]
    checksum = f" (sha256 {card.sha256})" if card.sha256 else ""
    if card.source.startswith("package:"):
        dist = card.source.split(":", 1)[1]
        how = (
            f"install the '{dist}' package (pip install {dist}) or put {card.filename!r}{checksum} "
            f"in '{dirs[0]}'"
        )
    else:
        how = f"download {card.filename!r}{checksum} from {card.source} and put it in '{dirs[0]}'"
    return ModelNotFoundError(
        f"model {card.name!r} is not installed: {how} (or in a folder listed in ${MODEL_PATH_ENV}); "
        f"looked in: {', '.join(looked)}"
    )


for _card in BUILTIN_CARDS:
    register_model(_card)
del _card
