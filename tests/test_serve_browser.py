"""The demo page end to end: a real `emotionkit serve`, headless Chromium, the test photo.

`/?image=<data: URL>` makes the page fetch the photo and POST it to /v1/predict on load, so
no driver is needed: `chromium --headless --dump-dom` prints the DOM once the page is idle
(`--virtual-time-budget` waits for the fetches) and `--screenshot` saves what it drew.
Skipped when no Chromium is found (set CHROMIUM to its path); run with `nox -s browser`.
`python -m tests.test_serve_browser` refreshes docs/images/serve.png.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

FACE_PHOTO = Path(__file__).parent / "data" / "face_photo.png"
SCREENSHOT = Path(__file__).parents[1] / "docs" / "images" / "serve.png"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
WINDOW = (1100, 640)


def find_chromium() -> str | None:
    """$CHROMIUM, else the first Chromium-family browser on PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(timeout: float = 60.0) -> Iterator[str]:
    """`emotionkit serve` (bundled model) on a free localhost port; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "emotionkit", "serve", "--port", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    output = server.stdout.read().decode() if server.stdout else ""
                    raise RuntimeError(f"emotionkit serve did not start:\n{output}") from None
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(10)
        if server.stdout:
            server.stdout.close()


def demo_url(base_url: str, image: Path) -> str:
    """The demo page told to classify `image` on load (as a data: URL)."""
    data_url = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()
    return f"{base_url}/?image={quote(data_url, safe='')}"


def run_chromium(chromium: str, url: str, *action: str) -> str:
    """Headless Chromium on `url` with `action` (--dump-dom, --screenshot=...); its stdout."""
    with tempfile.TemporaryDirectory() as profile:
        command = [
            chromium,
            "--headless",
            "--no-sandbox",  # root in containers and CI has no user namespace sandbox
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            "--virtual-time-budget=60000",
            *action,
            url,
        ]
        run = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def element_text(dom: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert match, f"no #{element_id} in the page"
    return match.group(1)


def capture(chromium: str, base_url: str, screenshot: Path) -> str:
    """Classify the test photo in the page; save a screenshot; return the final DOM."""
    url = demo_url(base_url, FACE_PHOTO)
    dom = run_chromium(chromium, url, "--dump-dom")
    run_chromium(chromium, url, f"--screenshot={screenshot}", "--hide-scrollbars")
    return dom


@pytest.mark.browser
def test_demo_page_classifies_the_photo(tmp_path: Path) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium found (set CHROMIUM=/path/to/chromium)")
    screenshot = tmp_path / "serve.png"
    with running_server() as base_url:
        dom = capture(chromium, base_url, screenshot)
    assert re.search(r'<body[^>]*data-state="done"', dom), element_text(dom, "status")
    assert element_text(dom, "result-label") == "happy"
    assert "1 face(s) in 480x360" in element_text(dom, "result-detail")
    answer = json.loads(html.unescape(element_text(dom, "result-json")))
    assert [face["box"] for face in answer["faces"]] == [[260, 101, 161, 161]]
    png = screenshot.read_bytes()
    assert png.startswith(b"\x89PNG") and int.from_bytes(png[16:20], "big") == WINDOW[0]


if __name__ == "__main__":
    browser = find_chromium()
    if browser is None:
        sys.exit("no Chromium found (set CHROMIUM=/path/to/chromium)")
    with running_server() as base:
        label = element_text(capture(browser, base, SCREENSHOT), "result-label")
    print(f"{SCREENSHOT}: label {label}")
