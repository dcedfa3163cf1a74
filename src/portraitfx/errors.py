"""The one error hierarchy of portraitfx.

Every error a user can cause (a bad file, a missing face, a missing model, a bad
option) is a :class:`PortraitFxError`. The CLI prints ``error: <message>`` on one
line and exits with :attr:`PortraitFxError.exit_code`; library code never calls
``sys.exit``.

Example:
    >>> from portraitfx.errors import NoFaceError, PortraitFxError
    >>> try:
    ...     raise NoFaceError("no face found in 'cat.jpg'")
    ... except PortraitFxError as err:
    ...     print(err.exit_code, err)
    3 no face found in 'cat.jpg'
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "ChecksumError",
    "ConfigError",
    "CorruptInputError",
    "HairNotFoundError",
    "ImageTooLargeError",
    "InputError",
    "InputNotFoundError",
    "ModelError",
    "ModelNotFoundError",
    "NoFaceError",
    "NoVideoStreamError",
    "OutputError",
    "PortraitFxError",
    "TruncatedVideoError",
    "UnsafeModelError",
    "UnsupportedFormatError",
    "VideoError",
]


class PortraitFxError(Exception):
    """Base class of every error portraitfx raises on purpose.

    Attributes:
        exit_code: process exit status the CLI uses for this error.
    """

    exit_code: int = 1


class ConfigError(PortraitFxError, ValueError):
    """An option or configuration value is invalid."""

    exit_code = 2


class InputError(PortraitFxError):
    """An input file or array cannot be used."""

    exit_code = 2


class InputNotFoundError(InputError, FileNotFoundError):
    """An input path does not exist or is not a file."""


class UnsupportedFormatError(InputError):
    """The content is of a kind portraitfx cannot read (e.g. a PDF given as an image)."""


class CorruptInputError(InputError):
    """The file claims a known format but its content is damaged or truncated."""


class ImageTooLargeError(InputError):
    """The image has more pixels than allowed (also decompression bombs)."""


class VideoError(InputError):
    """A video cannot be read or written."""


class NoVideoStreamError(VideoError):
    """The container has no video stream (e.g. an audio-only file)."""


class TruncatedVideoError(VideoError):
    """The video ended early; the frames decoded so far were kept.

    Attributes:
        frames_decoded: how many frames were read before the damage.
        output: path of the output written from those frames, if any.
    """

    def __init__(self, message: str, *, frames_decoded: int = 0, output: str | None = None) -> None:
        super().__init__(message)
        self.frames_decoded = frames_decoded
        self.output = output


class NoFaceError(PortraitFxError):
    """No usable face was found where one is required."""

    exit_code = 3


class HairNotFoundError(NoFaceError):
    """A face was found but its hair cannot be edited (none found, face too small, profile)."""


class ModelError(PortraitFxError):
    """A model file is missing, damaged or unsafe."""

    exit_code = 4


class ModelNotFoundError(ModelError, LookupError):
    """A model name or path is unknown; the message suggests close matches."""

    @classmethod
    def for_name(cls, name: str, known: Iterable[str], what: str = "model") -> ModelNotFoundError:
        """Build the error for an unknown ``name``, naming the closest known names."""
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = f" Known: {', '.join(known)}." if known and not close else ""
        return cls(f"unknown {what} {name!r}{hint}{listing}")


class ChecksumError(ModelError):
    """A model file's sha256 does not match its registry entry."""


class UnsafeModelError(ModelError):
    """A model file would need unpickling; only safetensors/ONNX/weights-only files load."""


class OutputError(PortraitFxError):
    """An output cannot be written (bad folder, would overwrite an input, ...)."""

    exit_code = 5
