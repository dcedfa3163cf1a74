"""Run the API in a background thread on a loopback port (tests, benchmarks, notebooks).

Example:
    >>> from portraitfx.server import ServerSettings, create_app          # doctest: +SKIP
    >>> with serve_in_thread(create_app(ServerSettings())) as url:         # doctest: +SKIP
    ...     print(url)                                                     # doctest: +SKIP
    http://127.0.0.1:41234
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["serve_in_thread"]


@contextlib.contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", *, log_level: str = "warning") -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port of ``host``; yield its base URL; stop on exit."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level=log_level, timeout_keep_alive=5, server_header=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="pfx-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the API server did not start (see its log)")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()
