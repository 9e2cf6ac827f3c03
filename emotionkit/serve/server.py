"""`run_server`: the app on uvicorn, as `emotionkit serve` starts it."""

from __future__ import annotations

import logging
from pathlib import Path

import uvicorn

from emotionkit.serve.app import DEFAULT_MAX_UPLOAD_BYTES, create_app

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def run_server(
    model_path: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    detector: str = "auto",
) -> None:
    """Serve `model_path` (a file, run directory or bundled name; None: the default bundled
    model) until interrupted.

    uvicorn's access log is off: each refused request is already logged once, with its
    reason, by the app (logger `emotionkit.serve`), and a line per frame of the demo
    page's webcam stream would drown those.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(model_path, max_upload_bytes=max_upload_bytes, detector=detector)
    uvicorn.run(app, host=host, port=port, access_log=False)
