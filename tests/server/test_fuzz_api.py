"""Fuzz the HTTP API from its own OpenAPI spec with schemathesis, in process (no network).

Every generated request (valid or malformed) must get an answer below 500; error answers
are ``{"error": code, "detail": one line}``; and the server keeps serving (``/healthz``).
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from portraitfx.server import ServerSettings, create_app

KB = 1024


# Built at import: schemathesis parametrizes the test from the schema at collection time
# (``schemathesis.pytest.from_fixture`` does not work with pytest 9: it sets ``node._nodeid``).
_DATA_DIR = Path(tempfile.mkdtemp(prefix="pfx-fuzz-srv-"))
atexit.register(shutil.rmtree, _DATA_DIR, ignore_errors=True)
APP = create_app(
    ServerSettings(
        data_dir=_DATA_DIR,
        run_jobs=False,  # submitted jobs stay queued: nothing long runs
        max_image_bytes=256 * KB,
        max_video_bytes=256 * KB,
        max_image_pixels=1_000_000,
        max_video_seconds=5.0,
        request_timeout=20.0,
        upload_timeout=20.0,
        queue_size=2,
    )
)
# Loading the schema through the app starts its lifespan (workers, job store, data-folder lock).
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _stop_app() -> Iterator[None]:
    yield
    asgi.shutdown_lifespans()  # stop the app's workers and release its data folder
    shutil.rmtree(_DATA_DIR, ignore_errors=True)


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _assert_clear_error(response: schemathesis.Response) -> None:
    """A 4xx answer carries ``{"error": code, "detail": message}`` with a one-line message."""
    if not 400 <= response.status_code < 500:
        return
    body = json.loads(response.content)
    assert isinstance(body, dict) and set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str) and body["error"], body
    assert isinstance(body["detail"], str) and body["detail"].strip(), body
    assert "\n" not in body["detail"], body


@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_fails_on_garbage(case: schemathesis.Case) -> None:
    response = case.call()
    case.validate_response(response, checks=CHECKS)
    _assert_clear_error(response)


def test_damaged_video_uploads_get_4xx(tmp_path: Path) -> None:
    """Cut-off and garbled MP4 uploads to ``POST /v1/jobs``: 4xx (or 202 for a readable one), never 5xx.

    Regression: a header cut inside the audio track's description made ``probe_video`` raise
    ``AttributeError`` (no ``rate`` on a stream without codec context), and a garbled tag made
    ``av.open`` raise ``UnicodeDecodeError``; both were answered 500.
    """
    from portraitfx.testing import clips as clipmaker

    frames = clipmaker.moving_crop_frames(clipmaker.synthetic_still(96, 128), 6, size=(64, 48))
    data = clipmaker.make_clip(tmp_path / "tiny.mp4", frames, fps=12).read_bytes()
    bodies = [data[:cut] + tail for cut in range(300, 1400, 23) for tail in (b"", b"\x80")]
    with asgi.get_client(APP) as client:
        for body in bodies:
            response = client.post(
                "/v1/jobs", data={"effect": "stylize"}, files={"video": ("clip.mp4", body, "video/mp4")}
            )
            assert response.status_code < 500, (len(body), response.text)
            if response.status_code != 202:
                _assert_clear_error(response)
                assert 400 <= response.status_code < 500


def test_server_still_serves_after_fuzzing() -> None:
    """Runs after the fuzz test (same module, same app): the server is alive and healthy."""
    with asgi.get_client(APP) as client:
        response = client.get("/healthz")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
        assert client.get("/v1/effects").status_code == 200
        assert client.get("/v1/jobs/" + "0" * 32).status_code == 404
    assert APP.state.pfx.started
