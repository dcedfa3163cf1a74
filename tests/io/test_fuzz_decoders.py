"""Fuzz the image and video decoders with damaged copies of real files.

Each example takes a real file (``obama.jpg``, a PNG encoded from it, a tiny MP4 made
with :mod:`portraitfx.testing.clips`), damages it (truncation, flipped or overwritten
bytes, inserted garbage, bytes before or after) and reads it. The property: the reader
either succeeds with valid pixels, or raises a :class:`~portraitfx.errors.PortraitFxError`
with a one-line message. Any other exception type is a bug.
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portraitfx.errors import PortraitFxError
from portraitfx.io.images import encode_image, load_image
from portraitfx.io.video import VideoReader, probe_video
from portraitfx.testing import clips as clipmaker

DATA = Path(__file__).resolve().parents[1] / "data"
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- inputs


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pfx-fuzz-") as d:
        yield Path(d)


@pytest.fixture(scope="module")
def jpeg_bytes() -> bytes:
    return (DATA / "obama.jpg").read_bytes()


@pytest.fixture(scope="module")
def png_bytes(jpeg_bytes: bytes) -> bytes:
    """A small PNG (96x120) encoded from the portrait."""
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg_bytes, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return encode_image(cv2.resize(rgb, (96, 120), interpolation=cv2.INTER_AREA), "PNG")


@pytest.fixture(scope="module")
def mp4_bytes(workdir: Path) -> bytes:
    """A 6-frame 64x48 H.264 MP4 with an AAC tone (a few kB)."""
    still = clipmaker.synthetic_still(96, 128)
    frames = clipmaker.moving_crop_frames(still, 6, size=(64, 48))
    return clipmaker.make_clip(workdir / "tiny.mp4", frames, fps=12).read_bytes()


# --------------------------------------------------------------------------- mutations


@st.composite
def mutations(draw: st.DrawFn) -> list[tuple]:
    """A list of 1-3 damage operations, applied in order by :func:`damage`."""
    op = st.one_of(
        st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
        st.tuples(st.just("flip"), st.floats(0.0, 1.0), st.integers(1, 255)),
        st.tuples(st.just("overwrite"), st.floats(0.0, 1.0), st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("insert"), st.floats(0.0, 1.0), st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("prepend"), st.binary(min_size=1, max_size=32)),
        st.tuples(st.just("append"), st.binary(min_size=1, max_size=256)),
        st.tuples(st.just("zero_run"), st.floats(0.0, 1.0), st.integers(1, 512)),
    )
    return draw(st.lists(op, min_size=1, max_size=3))


def _at(data: bytearray, where: float) -> int:
    return min(len(data), int(where * len(data)))


def damage(original: bytes, ops: list[tuple]) -> bytes:
    data = bytearray(original)
    for kind, *args in ops:
        if kind == "truncate":
            del data[_at(data, args[0]) :]
        elif kind == "flip" and data:
            i = min(_at(data, args[0]), len(data) - 1)
            data[i] ^= args[1]
        elif kind == "overwrite":
            i = _at(data, args[0])
            data[i : i + len(args[1])] = args[1]
        elif kind == "insert":
            i = _at(data, args[0])
            data[i:i] = args[1]
        elif kind == "prepend":
            data[:0] = args[0]
        elif kind == "append":
            data += args[0]
        elif kind == "zero_run":
            i = _at(data, args[0])
            data[i : i + args[1]] = bytes(len(data[i : i + args[1]]))
    return bytes(data)


_counter = itertools.count()


def _write(workdir: Path, content: bytes, suffix: str) -> Path:
    path = workdir / f"case{next(_counter)}{suffix}"
    path.write_bytes(content)
    return path


def _assert_clean_error(err: PortraitFxError) -> None:
    message = str(err)
    assert message.strip(), f"{type(err).__name__} with an empty message"
    assert "\n" not in message and "\r" not in message, f"multi-line message: {message!r}"


# --------------------------------------------------------------------------- images


def _check_image(path: Path) -> None:
    try:
        rgb = load_image(path)
    except PortraitFxError as err:
        _assert_clean_error(err)
        return
    assert isinstance(rgb, np.ndarray)
    assert rgb.dtype == np.uint8
    assert rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.shape[0] > 0 and rgb.shape[1] > 0


@FUZZ
@given(ops=mutations())
def test_damaged_jpeg(workdir: Path, jpeg_bytes: bytes, ops: list[tuple]) -> None:
    path = _write(workdir, damage(jpeg_bytes, ops), ".jpg")
    try:
        _check_image(path)
    finally:
        path.unlink()


@FUZZ
@given(ops=mutations())
def test_damaged_png(workdir: Path, png_bytes: bytes, ops: list[tuple]) -> None:
    path = _write(workdir, damage(png_bytes, ops), ".png")
    try:
        _check_image(path)
    finally:
        path.unlink()


@settings(max_examples=30, deadline=None)
@given(content=st.binary(max_size=2048))
def test_random_bytes_as_image(workdir: Path, content: bytes) -> None:
    path = _write(workdir, content, ".png")
    try:
        _check_image(path)
    finally:
        path.unlink()


# --------------------------------------------------------------------------- videos


def _check_video(path: Path) -> None:
    try:
        info = probe_video(path)
    except PortraitFxError as err:
        _assert_clean_error(err)
    else:
        assert info.width >= 0 and info.height >= 0
    try:
        with VideoReader(path) as reader:
            for frame in itertools.islice(reader, 3):
                img = frame.image
                assert isinstance(img, np.ndarray)
                assert img.dtype == np.uint8
                assert img.ndim == 3 and img.shape[2] == 3
    except PortraitFxError as err:
        _assert_clean_error(err)


@FUZZ
@given(ops=mutations())
def test_damaged_mp4(workdir: Path, mp4_bytes: bytes, ops: list[tuple]) -> None:
    path = _write(workdir, damage(mp4_bytes, ops), ".mp4")
    try:
        _check_video(path)
    finally:
        path.unlink()


@settings(max_examples=30, deadline=None)
@given(head=st.binary(max_size=64), cut=st.integers(0, 4096))
def test_video_header_then_garbage(workdir: Path, mp4_bytes: bytes, head: bytes, cut: int) -> None:
    """A real MP4's start followed by random bytes, or random bytes before a real MP4."""
    path = _write(workdir, mp4_bytes[:cut] + head, ".mp4")
    other = _write(workdir, head + mp4_bytes, ".mov")
    try:
        _check_video(path)
        _check_video(other)
    finally:
        path.unlink()
        other.unlink()


def test_pristine_inputs_decode(workdir: Path, jpeg_bytes: bytes, png_bytes: bytes, mp4_bytes: bytes) -> None:
    """The undamaged originals read fine (so the fuzzing starts from valid files)."""
    assert load_image(_write(workdir, jpeg_bytes, ".jpg")).shape[2] == 3
    assert load_image(_write(workdir, png_bytes, ".png")).shape == (120, 96, 3)
    path = _write(workdir, mp4_bytes, ".mp4")
    assert probe_video(path).width == 64
    with VideoReader(path) as reader:
        assert len(list(reader)) == 6
