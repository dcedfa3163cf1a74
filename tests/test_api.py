"""The public API surface: every exported name resolves; importing the package is light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import portraitfx


@pytest.mark.parametrize("name", portraitfx.__all__)
def test_every_public_name_resolves(name):
    assert getattr(portraitfx, name) is not None


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        portraitfx.nope  # noqa: B018


def test_import_is_light():
    code = (
        "import sys, portraitfx; "
        "heavy = [m for m in ('mediapipe', 'torch', 'cv2', 'av', 'dlib', 'onnxruntime') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"importing portraitfx pulled in {out}"


def test_errors_share_one_base_and_have_exit_codes():
    for name in portraitfx.__all__:
        obj = getattr(portraitfx, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, portraitfx.PortraitFxError)
            assert obj.exit_code in (1, 2, 3, 4, 5)
