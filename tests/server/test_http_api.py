"""The HTTP API: every endpoint, limits, auth, hostile uploads, back-pressure, jobs, restarts, load."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from portraitfx.io.images import load_image


def wait_for_job(client, job_id: str, statuses: tuple[str, ...], timeout: float = 90.0) -> dict:
    """Poll ``GET /v1/jobs/{id}`` until its status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job.get("status") in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.get('status')} after {timeout} s: {job}")
        time.sleep(0.1)


def run_threads(fn, n: int) -> list:
    """Call ``fn(i)`` for ``i < n`` in ``n`` threads started together; the results in order."""
    results: list = [None] * n
    barrier = threading.Barrier(n)

    def one(i: int) -> None:
        barrier.wait()
        results[i] = fn(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def assert_error(response, status: int, *words: str) -> dict:
    """A JSON error with ``status``, a code and a one-line message containing ``words``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert "\n" not in body["detail"] and body["detail"]
    for word in words:
        assert word in body["detail"], body
    return body


def tmp_files(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "tmp").iterdir()]


def wait_empty_tmp(data_dir: Path, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while tmp_files(data_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tmp_files(data_dir) == [], "temporary upload/result files were left behind"


# --------------------------------------------------------------------------- basics


def test_healthz_effects_and_openapi(client):
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"

    effects = {e["name"]: e for e in client.get("/v1/effects").json()["effects"]}
    assert {"stylize", "swap"} <= set(effects)
    stylize = {o["name"]: o for o in effects["stylize"]["options"]}
    assert "pencil" in stylize["style"]["choices"]
    assert stylize["strength"]["type"] == "number" and stylize["strength"]["default"] == 1.0
    assert stylize["region"]["choices"] == ["face", "head", "frame"]
    assert "synthesis" not in stylize, "nested settings are not form fields"
    swap = effects["swap"]
    assert swap["identity_changing"] and not effects["stylize"]["identity_changing"]
    assert {u["name"]: u["required"] for u in swap["uploads"]} == {"source": True, "reference": False}
    swap_options = {o["name"] for o in swap["options"]}
    assert {"shape", "skin", "select"} <= swap_options
    assert not swap_options & {"provenance", "model", "restore", "providers"}, "server-side choices stay so"

    assert client.get("/v1/effects/stylize").json()["name"] == "stylize"
    assert_error(client.get("/v1/effects/stylise"), 404, "stylize")
    assert_error(client.get("/v1/nothing"), 404)

    assert "swagger" in client.get("/docs").text.lower()
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/healthz", "/v1/effects", "/v1/effects/stylize", "/v1/effects/swap", "/v1/jobs",
                 "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/result"):  # fmt: skip
        assert path in paths, path
    assert "delete" in paths["/v1/jobs/{job_id}"]
    form = paths["/v1/effects/stylize"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"image", "style", "strength", "format"} <= set(form["properties"]) and form["required"] == [
        "image"
    ]
    swap_form = paths["/v1/effects/swap"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(swap_form["required"]) == {"image", "source"}
    assert {"JobInfo", "EffectList", "ErrorResponse"} <= set(spec["components"]["schemas"])


def test_stylize_image(client, obama_jpg, obama):
    r = client.post("/v1/effects/stylize", files={"image": ("me.jpg", obama_jpg, "image/jpeg")},
                    data={"style": "pencil", "strength": "1"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-portraitfx-provenance"] == "none" and r.headers["x-portraitfx-faces"] == "1"
    out = load_image(r.content)
    assert out.shape == obama.shape
    diff = np.abs(out.astype(int) - obama.astype(int)).sum(axis=2)
    assert diff[100:220, 230:320].mean() > 10, "the face is stylized"
    assert diff[-60:, :60].max() == 0 and diff[:40, -60:].max() == 0, "far from the face nothing changes"

    jpeg = client.post("/v1/effects/stylize", files={"image": ("me.jpg", obama_jpg)}, data={"format": "jpeg"})
    assert jpeg.status_code == 200 and jpeg.headers["content-type"] == "image/jpeg"
    assert load_image(jpeg.content).shape == obama.shape
    wait_empty_tmp(client.data_dir)


def test_swap_result_is_marked(client, obama_jpg, biden_jpg, tmp_path):
    from portraitfx.provenance import read_provenance

    r = client.post(
        "/v1/effects/swap",
        files=[("image", ("target.jpg", obama_jpg)), ("source", ("source.jpg", biden_jpg))],
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-portraitfx-provenance"] == "swap"
    saved = tmp_path / "swapped.png"
    saved.write_bytes(r.content)
    record = read_provenance(saved)
    assert record["effect"] == "swap" and record["watermark"]
    # switching marks off is not offered over HTTP
    off = client.post("/v1/effects/swap", files=[("image", ("t.jpg", obama_jpg)), ("source", ("s.jpg", biden_jpg))],
                      data={"provenance": "false"})  # fmt: skip
    assert_error(off, 422, "unknown option 'provenance'")
    wait_empty_tmp(client.data_dir)


def test_option_validation(client, obama_jpg, biden_jpg):
    def post(data, name="stylize", files=None):
        return client.post(f"/v1/effects/{name}", files=files or {"image": ("a.jpg", obama_jpg)}, data=data)

    body = assert_error(post({"colour": "red"}), 422, "unknown option 'colour'", "strength")
    assert body["error"] == "config"
    assert_error(post({"strength": "strong"}), 422, "'strength' must be a number")
    assert_error(post({"strength": "2"}), 422, "strength must be within [0, 1]")
    assert_error(post({"region": "torso"}), 422, "'region' must be one of face, head, frame")
    assert_error(post({"style": "../../etc/passwd"}), 422, "'style' must be one of")
    assert_error(post({"style": "/tmp/x.pfxstyle"}), 422, "'style' must be one of")
    assert_error(post({"format": "gif"}), 422, "format must be one of png, jpeg, webp")
    assert_error(post({"max_faces": "0"}), 422, "max_faces must be within 1..32")
    assert_error(post({"temporal": "maybe"}), 422, "true or false")
    assert_error(client.post("/v1/effects/stylize", data={"style": "pencil"}, files={"x": ("", b"")}), 422)
    assert_error(post({}, "swap"), 422, "needs a 'source' upload")
    too_many = [("image", ("a.jpg", obama_jpg))] + [("source", (f"s{i}.jpg", biden_jpg)) for i in range(5)]
    assert_error(post({}, "swap", too_many), 422, "at most 4 files")
    assert_error(
        post({}, "stylize", [("image", ("a.jpg", obama_jpg)), ("source", ("s.jpg", biden_jpg))]), 422
    )
    wait_empty_tmp(client.data_dir)


def test_no_face_is_422(client, tmp_path):
    from portraitfx.io.images import encode_image

    flat = encode_image(np.full((200, 300, 3), 120, np.uint8), "PNG")
    assert_error(client.post("/v1/effects/stylize", files={"image": ("f.png", flat)}), 422, "no face found")


# --------------------------------------------------------------------------- auth and limits


def test_auth(make_client, small_face_png, slow_effect):
    token = "s3cret-token-for-tests"
    with make_client(token=token, run_jobs=False) as c:
        assert c.get("/healthz").status_code == 200, "health needs no token"
        for path in ("/v1/effects", "/v1/jobs"):
            r = c.get(path)
            assert_error(r, 401, "API token")
            assert r.headers["www-authenticate"] == "Bearer"
        # the spec and Swagger UI are open, and the spec declares the token for "Authorize"
        spec = c.get("/openapi.json").json()
        assert spec["components"]["securitySchemes"]["apiToken"]["name"] == "X-API-Token"
        assert {"bearer": []} in spec["security"]
        assert "swagger" in c.get("/docs").text.lower()
        assert c.get("/v1/effects", headers={"Authorization": "Bearer wrong-token-123"}).status_code == 401
        assert c.get("/v1/effects", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert c.get("/v1/effects", headers={"X-API-Token": token}).status_code == 200
        files = {"image": ("a.png", small_face_png)}
        assert_error(c.post(f"/v1/effects/{slow_effect}", files=files), 401)
        assert_error(c.post("/v1/jobs", files={"video": ("v.mp4", b"x")}, data={"effect": "stylize"}), 401)
        ok = c.post(f"/v1/effects/{slow_effect}", files=files, headers={"X-API-Token": token})
        assert ok.status_code == 200
        wait_empty_tmp(c.data_dir)


def test_size_limits(make_client, obama_jpg, small_face_png, slow_effect):
    with make_client(max_image_bytes=50_000, run_jobs=False) as c:
        assert len(obama_jpg) > 50_000
        body = assert_error(
            c.post("/v1/effects/stylize", files={"image": ("a.jpg", obama_jpg)}), 413, "50,000 bytes"
        )
        assert body["error"] == "upload_too_large"
        huge = b"\xff\xd8\xff" + b"\0" * 3_000_000  # over the whole-body limit: refused from Content-Length
        assert_error(c.post("/v1/effects/stylize", files={"image": ("a.jpg", huge)}), 413, "request body")
        assert_error(c.post("/v1/effects/stylize", files={"image": ("a.jpg", small_face_png)},
                            data={"strength": "1" * 20_000}), 413, "longer than")  # fmt: skip
        assert (
            c.post(f"/v1/effects/{slow_effect}", files={"image": ("a.png", small_face_png)}).status_code
            == 200
        )
        wait_empty_tmp(c.data_dir)


def _multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "pfxboundary") -> bytes:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (
            f'; filename="{filename}"' if filename is not None else ""
        )
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def test_hostile_uploads_get_clear_4xx(client, obama_jpg, bomb_png, talking_clip):
    cases = [
        (b"", 400, "empty (0 bytes)"),
        (b"%PDF-1.7\n1 0 obj", 415, "PDF document, not an image"),
        (b"hello, this is not a picture\n" * 10, 415, "not an image"),
        (b"<html><body>hi</body></html>", 415, "HTML"),
        (obama_jpg[: len(obama_jpg) // 3], 400, "damaged or truncated"),
        (bomb_png, 413, "900,000,000 pixels"),
        (talking_clip.read_bytes(), 415, "POST /v1/jobs"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, 400, ""),
    ]
    for content, status, words in cases:
        r = client.post("/v1/effects/stylize", files={"image": ("photo.jpg", content, "image/jpeg")})
        assert_error(r, status, words)
        assert client.get("/healthz").status_code == 200
    # wrong request types and broken bodies
    assert_error(client.post("/v1/effects/stylize", json={"image": "x"}), 415, "multipart/form-data")
    assert_error(client.post("/v1/effects/stylize", content=b"abc",
                             headers={"content-type": "multipart/form-data"}), 400, "boundary")  # fmt: skip
    body = _multipart([("image", "a.jpg", obama_jpg)])
    cut = body[: len(body) // 2]
    headers = {"content-type": "multipart/form-data; boundary=pfxboundary"}
    assert_error(client.post("/v1/effects/stylize", content=cut, headers=headers), 400, "ended before")
    assert_error(client.post("/v1/effects/stylize", content=b"", headers=headers), 400)
    twice = _multipart([("image", "a.jpg", obama_jpg), ("style", None, b"ink"), ("style", None, b"oil")])
    assert_error(client.post("/v1/effects/stylize", content=twice, headers=headers), 422, "given twice")
    assert client.get("/healthz").status_code == 200
    wait_empty_tmp(client.data_dir)


def test_client_file_names_are_never_paths(client, obama_jpg, tmp_path):
    names = ["../../etc/passwd", "/etc/passwd", "..\\..\\windows\\win.ini", "a\x00b.jpg", "%2e%2e%2fx.jpg"]
    before = set(client.data_dir.rglob("*"))
    for name in names:
        r = client.post("/v1/effects/stylize", files={"image": (name, obama_jpg, "image/jpeg")})
        assert r.status_code == 200, (name, r.text)
        assert "passwd" not in r.headers.get("content-disposition", "")
    r = client.post(
        "/v1/effects/stylize", files={"image": ("../../etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n")}
    )
    assert_error(r, 415, "text file")
    assert "passwd" not in r.json()["detail"], "client names are not echoed"
    wait_empty_tmp(client.data_dir)
    assert set(client.data_dir.rglob("*")) == before, "nothing was written under a client-chosen name"


# --------------------------------------------------------------------------- back-pressure and timeouts


def test_full_queue_answers_429(make_client, small_face_png, slow_effect):
    with make_client(queue_size=1, workers=1, run_jobs=False) as c:

        def post(_i: int):
            return c.post(
                f"/v1/effects/{slow_effect}",
                files={"image": ("a.png", small_face_png)},
                data={"delay": "1.0"},
            )

        responses = run_threads(post, 4)
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 200, 429, 429], codes
        busy = next(r for r in responses if r.status_code == 429)
        assert_error(busy, 429, "busy")
        assert int(busy.headers["retry-after"]) >= 1
        assert (
            c.post(f"/v1/effects/{slow_effect}", files={"image": ("a.png", small_face_png)}).status_code
            == 200
        )
        wait_empty_tmp(c.data_dir)


def test_timeout_answers_504_and_work_does_not_pile_up(make_client, small_face_png, slow_effect):
    with make_client(queue_size=1, workers=1, request_timeout=0.4, run_jobs=False) as c:
        files = {"image": ("a.png", small_face_png)}
        t0 = time.monotonic()
        assert_error(c.post(f"/v1/effects/{slow_effect}", files=files, data={"delay": "1.5"}), 504, "0.4 s")
        assert time.monotonic() - t0 < 1.4, "the client is answered at the timeout, not when the work ends"
        # the abandoned task still runs and holds its slot: one more may wait, the next is refused
        results = run_threads(lambda _i: c.post(f"/v1/effects/{slow_effect}", files=files), 2)
        assert sorted(r.status_code for r in results) == [429, 504]
        time.sleep(1.3)
        assert c.post(f"/v1/effects/{slow_effect}", files=files).status_code == 200
        wait_empty_tmp(c.data_dir)


def test_concurrent_uploads_good_and_bad(client, small_face_png, bomb_png):
    bodies = [small_face_png, b"", bomb_png, b"%PDF-1.4", small_face_png, small_face_png[:200]]
    expected = [200, 400, 413, 415, 200, 400]

    def post(i: int):
        return client.post("/v1/effects/stylize", files={"image": (f"{i}.png", bodies[i])})

    responses = run_threads(post, len(bodies))
    assert [r.status_code for r in responses] == expected, [r.text[:100] for r in responses]
    assert client.get("/healthz").status_code == 200
    wait_empty_tmp(client.data_dir)


# --------------------------------------------------------------------------- video jobs


def test_video_job_lifecycle(make_client, talking_clip):
    from portraitfx.io.video import probe_video

    with make_client() as c:
        r = c.post("/v1/jobs", files={"video": ("clip.mp4", talking_clip.read_bytes(), "video/mp4")},
                   data={"effect": "stylize", "style": "pencil", "strength": "0.9"})  # fmt: skip
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["status"] in ("queued", "running") and job["options"] == {
            "style": "pencil",
            "strength": 0.9,
        }
        assert r.headers["location"] == f"/v1/jobs/{job['id']}" and job["has_audio"]
        early = c.get(f"/v1/jobs/{job['id']}/result")
        if early.status_code != 200:  # the job may not be done yet
            assert_error(early, 409, job["id"])
        done = wait_for_job(c, job["id"], ("done", "failed", "cancelled"))
        assert done["status"] == "done", done
        assert (
            done["progress"] == 1.0 and done["frames"] == 15 and done["faces"] >= 13 and done["attempts"] == 1
        )
        assert [j["id"] for j in c.get("/v1/jobs").json()["jobs"]] == [job["id"]]
        result = c.get(done["result_url"])
        assert result.status_code == 200 and result.headers["content-type"] == "video/mp4"
        out = c.data_dir / "out.mp4"
        out.write_bytes(result.content)
        info, src = probe_video(out), probe_video(talking_clip)
        assert (info.width, info.height, info.frame_count) == (src.width, src.height, src.frame_count)
        assert info.has_audio, "the audio is kept"
        folder = c.data_dir / "jobs" / job["id"]
        assert sorted(p.name for p in folder.iterdir() if p.name != "job.log") == ["result.mp4"], (
            "inputs removed"
        )
        out.unlink()
        # deleting a finished job removes it and its files
        assert c.delete(f"/v1/jobs/{job['id']}").json()["status"] == "done"
        assert_error(c.get(f"/v1/jobs/{job['id']}"), 404)
        assert not folder.exists()
        assert_error(c.get("/v1/jobs/../../etc"), 404)
        assert_error(c.get("/v1/jobs/not-a-job"), 404)


def test_swap_video_job_is_marked(make_client, talking_clip, biden_jpg):
    from portraitfx.provenance import read_provenance

    with make_client() as c:
        r = c.post("/v1/jobs", files=[("video", ("c.mp4", talking_clip.read_bytes())), ("source", ("s.jpg", biden_jpg))],
                   data={"effect": "swap", "select": "largest"})  # fmt: skip
        assert r.status_code == 202, r.text
        done = wait_for_job(c, r.json()["id"], ("done", "failed"))
        assert done["status"] == "done" and done["faces"] >= 13, done
        out = c.data_dir / "swapped.mp4"
        out.write_bytes(c.get(done["result_url"]).content)
        assert read_provenance(out)["effect"] == "swap"


def test_job_submission_errors(make_client, talking_clip, obama_jpg):
    with make_client(run_jobs=False, max_video_seconds=0.5) as c:
        video = ("clip.mp4", talking_clip.read_bytes(), "video/mp4")
        assert_error(c.post("/v1/jobs", files={"video": video}), 422, "effect")
        assert_error(
            c.post("/v1/jobs", files={"video": video}, data={"effect": "nope"}), 404, "unknown effect"
        )
        assert_error(
            c.post("/v1/jobs", data={"effect": "stylize", "style": "pencil"}, files={"x": ("", b"")}), 422
        )
        assert_error(c.post("/v1/jobs", files={"video": ("a.jpg", obama_jpg)}, data={"effect": "stylize"}), 415,
                     "not a video")  # fmt: skip
        assert_error(
            c.post("/v1/jobs", files={"video": ("a.mp4", b"")}, data={"effect": "stylize"}), 400, "empty"
        )
        assert_error(c.post("/v1/jobs", files={"video": video}, data={"effect": "swap"}), 422, "'source'")
        assert_error(c.post("/v1/jobs", files={"video": video}, data={"effect": "stylize", "size": "1"}), 422,
                     "unknown option 'size'")  # fmt: skip
        assert_error(
            c.post("/v1/jobs", files={"video": video}, data={"effect": "stylize"}), 413, "over the limit"
        )
        cut = talking_clip.read_bytes()[:3000]
        r = c.post("/v1/jobs", files={"video": ("c.mp4", cut)}, data={"effect": "stylize"})
        assert 400 <= r.status_code < 500 and str(c.data_dir) not in r.text, r.text
        assert c.get("/v1/jobs").json()["jobs"] == []
        wait_empty_tmp(c.data_dir)
    with make_client(data_dir=c.data_dir, run_jobs=False, max_queued_jobs=1) as c:
        assert c.post("/v1/jobs", files={"video": video}, data={"effect": "stylize"}).status_code == 202
        busy = c.post("/v1/jobs", files={"video": video}, data={"effect": "stylize"})
        assert_error(busy, 429, "waiting")
        assert busy.headers["retry-after"]


def test_failed_job_says_why(make_client, tmp_path):
    from portraitfx.testing import clips as clipmaker

    still = clipmaker.synthetic_still(240, 320)
    clip = clipmaker.make_clip(
        tmp_path / "noface.mp4", clipmaker.moving_crop_frames(still, 10, size=(160, 120))
    )
    with make_client() as c:
        job = c.post(
            "/v1/jobs", files={"video": ("n.mp4", clip.read_bytes())}, data={"effect": "stylize"}
        ).json()
        failed = wait_for_job(c, job["id"], ("done", "failed"))
        assert failed["status"] == "failed" and failed["error_type"] == "NoFaceError", failed
        assert failed["error"] == "no face found in any frame of the video", "one line, no server paths"
        assert_error(c.get(f"/v1/jobs/{job['id']}/result"), 409, "failed: no face")
        assert not list((c.data_dir / "jobs" / job["id"]).glob("input*")), "its input is removed"


def test_cancel_queued_and_running_jobs(make_client, talking_clip, long_clip):
    with make_client(run_jobs=False) as c:
        job = c.post(
            "/v1/jobs", files={"video": ("c.mp4", talking_clip.read_bytes())}, data={"effect": "stylize"}
        ).json()
        cancelled = c.delete(f"/v1/jobs/{job['id']}").json()
        assert cancelled["status"] == "cancelled" and cancelled["error"]
        assert_error(c.get(f"/v1/jobs/{job['id']}/result"), 409, "cancelled")
        assert not (c.data_dir / "jobs" / job["id"]).exists(), "its files are removed"
        data_dir = c.data_dir
    with make_client(data_dir=data_dir) as c:  # a runner now: the cancelled job must never start
        running = c.post(
            "/v1/jobs", files={"video": ("l.mp4", long_clip.read_bytes())}, data={"effect": "stylize"}
        ).json()
        wait_for_job(c, running["id"], ("running",))
        deadline = time.monotonic() + 30
        while c.get(f"/v1/jobs/{running['id']}").json()["progress"] <= 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        t0 = time.monotonic()
        assert c.delete(f"/v1/jobs/{running['id']}").json()["status"] == "cancelled"
        assert time.monotonic() - t0 < 5, "a running job stops at once"
        time.sleep(0.5)
        assert c.get(f"/v1/jobs/{running['id']}").json()["status"] == "cancelled"
        assert c.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
        assert not (c.data_dir / "jobs" / running["id"]).exists()
        assert not _job_processes(c.data_dir)


def _job_processes(data_dir: Path) -> list[int]:
    """Job child processes whose working folder is inside ``data_dir``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if b"portraitfx.server._jobproc" in cmd and cwd.startswith(str(data_dir)):
            found.append(int(entry.name))
    return found


def test_restart_resumes_or_fails_interrupted_jobs(make_client, talking_clip):
    video = talking_clip.read_bytes()
    with make_client(run_jobs=False) as a:
        ids = [a.post("/v1/jobs", files={"video": ("c.mp4", video)}, data={"effect": "stylize"}).json()["id"]
               for _ in range(3)]  # fmt: skip
        data_dir = a.data_dir
    # what a crash in the middle of the jobs leaves: rows marked running, no process
    with sqlite3.connect(data_dir / "jobs.sqlite3") as db:
        db.execute("UPDATE jobs SET status = 'running', attempts = 1, progress = 0.5 WHERE id = ?", (ids[0],))
        db.execute("UPDATE jobs SET status = 'running', attempts = 2 WHERE id = ?", (ids[1],))
        db.execute("UPDATE jobs SET status = 'running', attempts = 1 WHERE id = ?", (ids[2],))
    next((data_dir / "jobs" / ids[2]).glob("input.*")).unlink()
    with make_client(data_dir=data_dir) as b:
        resumed = wait_for_job(b, ids[0], ("done", "failed"))
        assert resumed["status"] == "done" and resumed["attempts"] == 2, resumed
        assert b.get(resumed["result_url"]).status_code == 200
        given_up = b.get(f"/v1/jobs/{ids[1]}").json()
        assert (
            given_up["status"] == "failed" and "stopped while running this job 2 time(s)" in given_up["error"]
        )
        gone = b.get(f"/v1/jobs/{ids[2]}").json()
        assert gone["status"] == "failed" and "input files are gone" in gone["error"]


def test_mounted_in_another_app(tmp_path, small_face_png, talking_clip, slow_effect):
    import contextlib

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from portraitfx.server import ServerSettings, create_app

    api = create_app(ServerSettings(data_dir=tmp_path / "mounted", run_jobs=False))

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        async with api.router.lifespan_context(api):  # a mounted app's lifespan is the parent's to run
            yield

    parent = FastAPI(lifespan=lifespan)
    parent.mount("/api", api)
    with TestClient(parent) as c:
        assert c.get("/api/healthz").status_code == 200
        r = c.post(f"/api/v1/effects/{slow_effect}", files={"image": ("a.png", small_face_png)})
        assert r.status_code == 200 and load_image(r.content).shape == (160, 128, 3)
        job = c.post(
            "/api/v1/jobs", files={"video": ("c.mp4", talking_clip.read_bytes())}, data={"effect": "stylize"}
        )
        assert job.status_code == 202 and job.headers["location"].startswith("/api/v1/jobs/")
        assert c.get(job.headers["location"]).json()["status"] == "queued"
        assert c.get("/api/openapi.json").json()["servers"] == [{"url": "/api"}]
        assert "/api/openapi.json" in c.get("/api/docs").text


def test_data_folder_is_locked(make_client, tmp_path):
    with (
        make_client(run_jobs=False) as a,
        pytest.raises(Exception, match="in use by another running server"),
        make_client(data_dir=a.data_dir, run_jobs=False),
    ):
        pass


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(data_dir: Path, port: int, home: Path) -> subprocess.Popen:
    env = dict(os.environ, PORTRAITFX_HOME=str(home))
    return subprocess.Popen(
        [sys.executable, "-m", "portraitfx.cli.main", "serve", "--port", str(port), "--data", str(data_dir),
         "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server exited"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not come up")


@pytest.mark.slow
def test_kill_server_during_a_job_and_restart(tmp_path, long_clip):
    """A real `portraitfx serve` killed with SIGKILL while a video job runs: after a restart
    the job runs again and ends done; it is never lost."""
    import httpx

    home = Path(os.environ["PORTRAITFX_HOME"])
    data_dir, port = tmp_path / "srv", _free_port()
    url = f"http://127.0.0.1:{port}"
    server = _start_server(data_dir, port, home)
    try:
        _wait_healthy(url, server)
        r = httpx.post(f"{url}/v1/jobs", files={"video": ("l.mp4", long_clip.read_bytes())},
                       data={"effect": "stylize"}, timeout=30)  # fmt: skip
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        deadline = time.monotonic() + 60
        while httpx.get(f"{url}/v1/jobs/{job_id}").json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert _job_processes(data_dir)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _job_processes(data_dir) and time.monotonic() < deadline:  # the orphan notices and exits
            time.sleep(0.1)
        assert not _job_processes(data_dir), "the job process outlived its server"
    finally:
        if server.poll() is None:
            server.kill()
    server = _start_server(data_dir, port, home)
    try:
        _wait_healthy(url, server)
        deadline = time.monotonic() + 120
        while (job := httpx.get(f"{url}/v1/jobs/{job_id}").json())["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
        assert job["status"] == "done" and job["attempts"] == 2, job
        assert httpx.get(f"{url}/v1/jobs/{job_id}/result", timeout=30).status_code == 200
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


# --------------------------------------------------------------------------- load, CLI


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.slow
def test_load_200_requests_at_concurrency_8(make_client, small_face_png, slow_effect, tmp_path):
    import httpx

    from portraitfx.server import ServerSettings, create_app
    from portraitfx.server.local import serve_in_thread

    app = create_app(ServerSettings(data_dir=tmp_path / "load", queue_size=4, run_jobs=False))
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        for _ in range(5):  # warm up: models, allocator
            assert (
                http.post(
                    f"/v1/effects/{slow_effect}", files={"image": ("a.png", small_face_png)}
                ).status_code
                == 200
            )
        rss0 = _rss_mb()
        codes: list[int] = []
        lock = threading.Lock()

        def worker(i: int) -> None:
            # as a client should: a 429 (queue full) is retried after a short pause; how
            # many are refused first depends on the machine's speed, but all get served
            for _ in range(25):
                for _attempt in range(200):
                    r = http.post(f"/v1/effects/{slow_effect}", files={"image": ("a.png", small_face_png)})
                    with lock:
                        codes.append(r.status_code)
                    if r.status_code != 429:
                        break
                    assert r.headers.get("Retry-After")
                    time.sleep(0.01)
                assert r.status_code == 200, r.status_code
                assert load_image(io.BytesIO(r.content).getvalue()).shape == (160, 128, 3)

        t0 = time.monotonic()
        run_threads(worker, 8)
        seconds = time.monotonic() - t0
        assert set(codes) <= {200, 429}, sorted(set(codes))
        assert codes.count(200) == 200, f"{codes.count(200)} of 200 served"
        assert http.get("/healthz").status_code == 200
        growth = _rss_mb() - rss0
        assert growth < 200, f"memory grew by {growth:.0f} MB"
        print(f"200 requests in {seconds:.1f} s, {codes.count(429)} refused (429), RSS +{growth:.0f} MB")
        deadline = time.monotonic() + 5
        while list((tmp_path / "load" / "tmp").iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list((tmp_path / "load" / "tmp").iterdir()) == []


def test_dropped_connections_leave_nothing(tmp_path, obama_jpg):
    import socket

    import httpx

    from portraitfx.server import ServerSettings, create_app
    from portraitfx.server.local import serve_in_thread

    app = create_app(ServerSettings(data_dir=tmp_path / "drop", run_jobs=False))
    body = _multipart([("image", "a.jpg", obama_jpg)])
    with serve_in_thread(app) as url:
        host, port = url.removeprefix("http://").split(":")
        for cut in (0, 100, len(body) // 2):  # the client goes away mid-upload
            with socket.create_connection((host, int(port))) as sock:
                head = (f"POST /v1/effects/stylize HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                        "Content-Type: multipart/form-data; boundary=pfxboundary\r\n\r\n")  # fmt: skip
                sock.sendall(head.encode() + body[:cut])
        assert httpx.get(f"{url}/healthz").status_code == 200
        deadline = time.monotonic() + 5
        while list((tmp_path / "drop" / "tmp").iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list((tmp_path / "drop" / "tmp").iterdir()) == [], "partial uploads are removed"
        r = httpx.post(f"{url}/v1/effects/stylize", files={"image": ("a.jpg", obama_jpg)}, timeout=60)
        assert r.status_code == 200


def test_serve_command(capsys):
    from portraitfx.cli.main import main

    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--token" in out and "--host" in out and "--queue" in out
    assert main(["serve", "--host", "0.0.0.0", "--port", "8765"]) == 2
    assert "refusing to listen on 0.0.0.0 without a token" in capsys.readouterr().err
    assert main(["serve", "--token", "short"]) == 2
    assert "at least 8 characters" in capsys.readouterr().err


def test_serve_refuses_a_data_folder_in_use(make_client, capsys):
    from portraitfx.cli.main import main

    with make_client(run_jobs=False) as running:
        assert main(["serve", "--data", str(running.data_dir), "--port", "8766"]) == 2
        assert "in use by another running server" in capsys.readouterr().err


def test_settings_are_checked(tmp_path):
    from portraitfx.errors import ConfigError
    from portraitfx.server import ServerSettings, create_app

    with pytest.raises(ConfigError, match="at least 8 characters"):
        ServerSettings(token="short")
    with pytest.raises(ConfigError, match="queue_size"):
        ServerSettings(queue_size=-1)
    with pytest.raises(ConfigError, match="request_timeout"):
        ServerSettings(request_timeout=0)
    if os.environ.get("NUMBA_THREADING_LAYER", "workqueue") == "workqueue":
        with pytest.raises(ConfigError, match="NUMBA_THREADING_LAYER"):
            create_app(ServerSettings(data_dir=tmp_path, workers=2))
