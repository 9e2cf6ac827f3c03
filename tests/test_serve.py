"""`emotionkit serve`: the HTTP API on the bundled model, through Starlette's TestClient.

With the Haar detector (the app here is made with `detector="haar"`, which needs no extra
package), the bundled FER2013 model finds one face in tests/data/face_photo.png (box
(260, 101, 161, 161)) and calls it "happy": the same answer as `Predictor`. The default
detector (MTCNN when installed) is checked against `emotionkit predict` in
tests/test_faces_detectors.py.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.testclient import TestClient
from typer.testing import CliRunner

import emotionkit.serve.app as serve_app
from emotionkit.bundled import bundled_model_path
from emotionkit.cli import app as cli_app
from emotionkit.errors import DataError, EmotionkitError
from emotionkit.predict import read_image
from emotionkit.serve import create_app, run_server
from emotionkit.serve.images import header_size

FACE_PHOTO = Path(__file__).parent / "data" / "face_photo.png"
FACE_BOX = [260, 101, 161, 161]
CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
HEAVY = ("tensorflow", "keras", "jax")
MAX_UPLOAD = 64 * 1024  # small, so the 413 tests send little


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    # The context manager keeps one event loop for all requests, as uvicorn does.
    with TestClient(create_app(max_upload_bytes=MAX_UPLOAD, detector="haar")) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def photo() -> bytes:
    return FACE_PHOTO.read_bytes()


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk declaring `width` x `height`, with no pixel data."""
    fields = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    crc = zlib.crc32(b"IHDR" + fields).to_bytes(4, "big")
    return b"\x89PNG\r\n\x1a\n" + len(fields).to_bytes(4, "big") + b"IHDR" + fields + crc


def assert_one_happy_face(answer: dict[str, Any]) -> None:
    assert answer["image"] == {"width": 480, "height": 360}
    assert answer["model"]["name"] == "fer2013-cpu"
    assert answer["model"]["file"] == "fer2013_cpu.onnx"
    assert len(answer["model"]["recipe_sha256"]) == 64
    [face] = answer["faces"]
    assert face["box"] == FACE_BOX and face["label"] == "happy"
    assert list(face["probabilities"]) == CLASSES
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert max(face["probabilities"], key=face["probabilities"].get) == "happy"


def test_multipart_upload_finds_one_happy_face(client: TestClient, photo: bytes) -> None:
    response = client.post("/v1/predict", files={"file": ("face.png", photo, "image/png")})
    assert response.status_code == 200, response.text
    assert_one_happy_face(response.json())


def test_raw_body_gives_the_same_answer(client: TestClient, photo: bytes) -> None:
    raw = client.post("/v1/predict", content=photo, headers={"content-type": "image/png"})
    multipart = client.post("/v1/predict", files={"file": ("face.png", photo)})
    assert raw.status_code == 200, raw.text
    assert_one_happy_face(raw.json())
    assert raw.json() == multipart.json()


def test_faces_none_classifies_the_whole_image(client: TestClient, photo: bytes) -> None:
    answer = client.post("/v1/predict?faces=none", content=photo).json()
    [face] = answer["faces"]
    assert face["box"] is None and set(face["probabilities"]) == set(CLASSES)


def test_model_endpoint_describes_the_bundled_model(client: TestClient) -> None:
    model = client.get("/v1/model").json()
    assert model["name"] == "fer2013-cpu" and model["classes"] == CLASSES
    assert model["input"] == {"height": 48, "width": 48, "channels": 1, "range": "0-255"}
    assert model["provenance"]["val_accuracy"] == "0.6643"
    assert model["provenance"]["tta"] == "hflip"  # the shipped model mirrors inside
    assert model["limits"]["max_upload_bytes"] == MAX_UPLOAD
    assert "recipe_yaml" not in model["provenance"]


def test_healthz_and_demo_page(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "model": "fer2013-cpu"}
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="result-label"' in page.text
    # Offline: nothing is loaded from another host (no CDN, no web fonts).
    assert not re.search(r"""(src|href|url|import)\s*[=(]\s*["']?(https?:)?//""", page.text)


@pytest.mark.parametrize(
    "headers",
    [{}, {"content-length": "100"}],
    ids=["true-content-length", "lying-content-length"],
)
def test_body_over_the_limit_is_413(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/v1/predict", content=b"\xff" * (MAX_UPLOAD + 1), headers=headers)
    assert response.status_code == 413 and "limit is 65,536 bytes" in response.json()["error"]


def test_chunked_body_over_the_limit_is_413(client: TestClient) -> None:
    chunks = (b"\x00" * 16384 for _ in range(5))  # a generator: no Content-Length is sent
    response = client.post("/v1/predict", content=chunks)
    assert response.status_code == 413


def test_multipart_over_the_limit_is_413(client: TestClient) -> None:
    big = b"\x89PNG\r\n\x1a\n" + b"\x00" * MAX_UPLOAD
    response = client.post("/v1/predict", files={"file": ("big.png", big)})
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "no image"),
        (b"hello, this is text", "not an image (unknown file signature)"),
        (FACE_PHOTO.read_bytes()[:2000], "corrupt PNG"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 100, "corrupt JPEG"),
        (png_header(100_000, 100_000), "at most 40,000,000 pixels"),
        (png_header(0, 10), "empty image"),
    ],
    ids=["empty", "text", "truncated-png", "jpeg-without-frame", "pixel-bomb", "zero-width"],
)
def test_bad_image_is_400_with_a_message(client: TestClient, body: bytes, message: str) -> None:
    response = client.post("/v1/predict", content=body)
    assert response.status_code == 400 and message in response.json()["error"]


def test_bad_requests_are_400(client: TestClient, photo: bytes) -> None:
    wrong_field = client.post("/v1/predict", files={"image": ("face.png", photo)})
    assert wrong_field.status_code == 400 and "'file'" in wrong_field.json()["error"]
    bad_mode = client.post("/v1/predict?faces=some", content=photo)
    assert bad_mode.status_code == 400 and "faces must be" in bad_mode.json()["error"]
    bad_length = client.post("/v1/predict", content=photo, headers={"content-length": "x1"})
    assert bad_length.status_code == 400


WRONG_METHODS = [("GET", "/v1/predict"), ("PUT", "/v1/predict"), ("POST", "/v1/model"),
                 ("DELETE", "/healthz")]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), WRONG_METHODS)
def test_wrong_method_is_405(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 405 and "allow" in response.headers


def test_each_bad_request_logs_one_line_and_the_server_keeps_going(
    client: TestClient, photo: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    bad = [b"text", photo[:500], b"\x00" * (MAX_UPLOAD + 1)]
    with caplog.at_level(logging.INFO, logger="emotionkit.serve"):
        statuses = [client.post("/v1/predict", content=body).status_code for body in bad]
        statuses.append(client.get("/v1/predict").status_code)
    assert statuses == [400, 400, 413, 405]
    records = [r for r in caplog.records if r.name == "emotionkit.serve"]
    assert [r.getMessage().split(" -> ")[1][:3] for r in records] == ["400", "400", "413", "405"]
    assert all("\n" not in r.getMessage() and r.exc_info is None for r in records)
    assert client.post("/v1/predict", content=photo).status_code == 200


def test_concurrent_requests_share_one_session(client: TestClient, photo: bytes) -> None:
    def post(index: int) -> tuple[int, dict[str, Any]]:
        if index % 2:
            response = client.post("/v1/predict", content=photo)
        else:
            response = client.post("/v1/predict", files={"file": ("f.png", photo)})
        return response.status_code, response.json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, range(8)))
    assert [status for status, _ in results] == [200] * 8
    assert all(answer == results[0][1] for _, answer in results)
    assert_one_happy_face(results[0][1])


def test_inference_runs_off_the_event_loop(photo: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """While one request is stuck in inference, /healthz still answers at once."""
    release = threading.Event()
    real_classify = serve_app.classify_upload

    def slow_classify(*args: Any) -> dict[str, Any]:
        release.wait(10)
        return real_classify(*args)

    monkeypatch.setattr(serve_app, "classify_upload", slow_classify)
    with TestClient(create_app()) as test_client, ThreadPoolExecutor(1) as pool:
        pending = pool.submit(test_client.post, "/v1/predict", content=photo)
        time.sleep(0.2)
        started = time.perf_counter()
        assert test_client.get("/healthz").status_code == 200
        assert time.perf_counter() - started < 1.0 and not pending.done()
        release.set()
        assert pending.result(10).status_code == 200


def test_inference_failure_is_500_and_logged_once(
    photo: bytes, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> dict[str, Any]:
        raise RuntimeError("model exploded")

    monkeypatch.setattr(serve_app, "classify_upload", broken)
    with TestClient(create_app()) as test_client, caplog.at_level(logging.ERROR):
        response = test_client.post("/v1/predict", content=photo)
        assert test_client.get("/healthz").status_code == 200
    assert response.status_code == 500 and response.json() == {
        "error": "internal error while classifying"
    }
    [record] = [r for r in caplog.records if r.name == "emotionkit.serve"]
    assert "inference failed" in record.getMessage() and record.exc_info is not None


def test_create_app_takes_a_model_path_and_rejects_a_missing_one(tmp_path: Path) -> None:
    with TestClient(create_app(bundled_model_path())) as test_client:
        assert test_client.get("/v1/model").json()["file"] == "fer2013_cpu.onnx"
    with pytest.raises(DataError, match=r"missing\.onnx not found"):
        create_app(tmp_path / "missing.onnx")


def test_serve_path_imports_no_training_stack() -> None:
    code = "from emotionkit.serve import create_app; create_app()"
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    modules = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if "|" in line}
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert run.returncode == 0 and heavy == [], heavy


def test_serve_command_binds_localhost_and_warns_for_other_hosts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        "emotionkit.serve.server.run_server",
        lambda model, host, port, detector: calls.append((model, host, port, detector)),
    )
    runner = CliRunner()
    local = runner.invoke(cli_app, ["serve"])
    exposed = runner.invoke(
        cli_app,
        ["serve", "model.onnx", "--host", "0.0.0.0", "--port", "9000", "--detector", "haar"],
    )
    assert local.exit_code == 0 and "warning" not in local.output
    assert exposed.exit_code == 0 and "warning: --host 0.0.0.0" in exposed.output
    assert calls == [
        (None, "127.0.0.1", 8000, "auto"),
        (Path("model.onnx"), "0.0.0.0", 9000, "haar"),
    ]


def test_serve_command_explains_a_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "uvicorn" else real_find_spec(name, *args),
    )
    result = CliRunner().invoke(cli_app, ["serve"])
    assert isinstance(result.exception, EmotionkitError)
    assert "pip install 'emotionkit[serve]'" in str(result.exception)
    assert "uvicorn not installed" in str(result.exception)


def test_jpeg_upload_like_a_webcam_frame(client: TestClient) -> None:
    image = cv2.cvtColor(read_image(FACE_PHOTO), cv2.COLOR_RGB2BGR)
    jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
    assert header_size(jpeg) == (480, 360)
    answer = client.post("/v1/predict", content=jpeg, headers={"content-type": "image/jpeg"})
    [face] = answer.json()["faces"]
    assert face["label"] == "happy" and face["box"][0] == pytest.approx(260, abs=8)


def test_run_server_serves_the_app_on_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(
        uvicorn, "run", lambda app, **options: calls.append({"app": app, **options})
    )
    run_server(None, host="127.0.0.1", port=8123)
    [call] = calls
    assert isinstance(call["app"], Starlette) and call["port"] == 8123
    assert call["access_log"] is False  # refused requests are logged by the app, once


def test_uncertain_below_is_a_per_request_option(client: TestClient, photo: bytes) -> None:
    [face] = client.post("/v1/predict?uncertain_below=0.999", content=photo).json()["faces"]
    assert face["label"] == "uncertain" and max(face["probabilities"].values()) < 0.999
    [face] = client.post("/v1/predict?uncertain_below=0.01", content=photo).json()["faces"]
    assert face["label"] == "happy"
    bad = client.post("/v1/predict?uncertain_below=2", content=photo)
    assert bad.status_code == 400 and "uncertain_below must be" in bad.json()["error"]
    described = client.get("/v1/model").json()
    assert described["faces"]["detector"] == "haar" and described["targets"] == "single"
