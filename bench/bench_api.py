"""HTTP API latency: stylize on a 640x480 portrait through a real server, against the same work in-process.

    .venv/bin/python bench/bench_api.py [--requests 40]

Figures (interfaces issue): image-effect latency p50/p95 at concurrency 1 and 4,
through `portraitfx serve` (uvicorn, its own process, one effect worker) on
loopback, with httpx clients in threads.
Baseline in the same run: the same steps called in-process (decode the JPEG, find
the face, stylize, encode the PNG), and the effect alone.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _portrait_jpeg() -> bytes:
    from portraitfx.io.images import encode_image, load_image

    img = load_image(ROOT / "tests/data/obama.jpg")  # 512x640 (w x h)
    wide = cv2.copyMakeBorder(img, 0, 0, 64, 64, cv2.BORDER_REFLECT_101)  # 640 wide
    frame = wide[40:520]  # 640x480, the face in the upper middle
    return encode_image(frame, "JPEG", 92)


def bench_in_process(jpeg: bytes, n: int) -> tuple[list[float], dict[str, list[float]]]:
    """Per-call seconds of the whole in-process pipeline, and of its steps."""
    from portraitfx.effects import create_effect
    from portraitfx.face.analyze import FaceAnalyzer, require_face
    from portraitfx.io.images import encode_image, read_image

    effect = create_effect("stylize", style="pencil")
    pipeline: list[float] = []
    steps: dict[str, list[float]] = {"decode": [], "faces": [], "effect": [], "encode": []}
    with FaceAnalyzer() as analyzer:
        for i in range(n + 5):
            t = [time.perf_counter()]
            loaded = read_image(jpeg)
            t.append(time.perf_counter())
            faces = require_face(analyzer.run(loaded.rgb))
            t.append(time.perf_counter())
            out = effect.apply(loaded.rgb, faces)
            t.append(time.perf_counter())
            encode_image(out, "PNG")
            t.append(time.perf_counter())
            if i >= 5:  # warm-up: models, numba caches
                pipeline.append(t[-1] - t[0])
                for k, name in enumerate(steps):
                    steps[name].append(t[k + 1] - t[k])
    effect.close()
    return pipeline, steps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_http(
    url: str, jpeg: bytes, concurrency: int, n: int, fmt: str = "png"
) -> tuple[list[float], float, list[int]]:
    """Latencies (s) of ``n`` requests from ``concurrency`` clients; wall time; status codes."""
    import httpx

    latencies: list[float] = []
    codes: list[int] = []
    lock = threading.Lock()
    per_client = n // concurrency

    def client() -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            for _ in range(per_client):
                t0 = time.perf_counter()
                r = http.post("/v1/effects/stylize", files={"image": ("p.jpg", jpeg, "image/jpeg")},
                              data={"style": "pencil", "format": fmt})  # fmt: skip
                dt = time.perf_counter() - t0
                with lock:
                    codes.append(r.status_code)
                    if r.status_code == 200:
                        latencies.append(dt)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - t0, codes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=40, help="requests per concurrency level")
    args = ap.parse_args()
    home = os.environ.setdefault("PORTRAITFX_HOME", tempfile.mkdtemp(prefix="pfx-bench-"))
    import httpx

    jpeg = _portrait_jpeg()
    pipeline, steps = bench_in_process(jpeg, args.requests)
    base = statistics.median(pipeline) * 1000
    split = ", ".join(f"{k} {statistics.median(v) * 1000:.1f}" for k, v in steps.items())
    print(f"in_process_stylize_640x480_ms: p50 {base:.1f}  p95 {_pct(pipeline, 0.95) * 1000:.1f}  "
          f"(the server's steps without HTTP; p50 per step: {split})")  # fmt: skip

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen(
            [sys.executable, "-m", "portraitfx.cli.main", "serve", "--port", str(port), "--data", data,
             "--queue", "16", "--log-level", "warning"],
            env=dict(os.environ, PORTRAITFX_HOME=home),
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    print("error: the server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.1)
            bench_http(url, jpeg, 1, 3)  # warm up: models load on the first request
            for concurrency in (1, 4):
                latencies, wall, codes = bench_http(url, jpeg, concurrency, args.requests)
                p50, p95 = statistics.median(latencies) * 1000, _pct(latencies, 0.95) * 1000
                refused = sum(c == 429 for c in codes)
                print(f"api_stylize_640x480_c{concurrency}_ms: p50 {p50:.1f}  p95 {p95:.1f}  "
                      f"({len(latencies)} ok, {refused} refused; {len(codes) / wall:.1f} requests/s)")  # fmt: skip
                print(f"  ratio_to_in_process_p50: {p50 / base:.2f}  (one effect worker: at concurrency "
                      f"{concurrency} a request waits for up to {concurrency - 1} others)")  # fmt: skip
            latencies, wall, _ = bench_http(url, jpeg, 1, args.requests, "jpeg")
            print(f"api_stylize_640x480_c1_jpeg_ms: p50 {statistics.median(latencies) * 1000:.1f}  "
                  f"p95 {_pct(latencies, 0.95) * 1000:.1f}  (format=jpeg: PNG encoding is most of a request)")  # fmt: skip
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
