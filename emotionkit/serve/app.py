"""`create_app`: the Starlette app behind `emotionkit serve`.

Starlette rather than FastAPI: /v1/predict takes *either* a multipart upload or a raw
JPEG/PNG body, which FastAPI's typed parameters cannot declare on one route (the handler
would take the raw `Request` anyway), and FastAPI's remaining extra, the /docs page, loads
Swagger UI from a CDN, which the offline demo page must not. Starlette is what FastAPI
runs on: same TestClient, same uvicorn, one dependency fewer.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import cast

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from emotionkit.bundled import DEFAULT_MODEL
from emotionkit.predict import Predictor
from emotionkit.predict.predictor import FaceMode
from emotionkit.serve.images import MAX_IMAGE_PIXELS, ImageError, quiet_decoder_warnings
from emotionkit.serve.inference import (
    classify_upload,
    load_predictor,
    model_description,
    model_id,
)
from emotionkit.serve.uploads import read_image_bytes

logger = logging.getLogger("emotionkit.serve")
DEFAULT_MAX_UPLOAD_BYTES = 5 * 2**20
# Requests classified at once. ORT already spreads one run over the cores, so more threads
# than cores only add decoded images held in memory; the rest wait, off the event loop.
MAX_CONCURRENT_INFERENCES = min(8, os.cpu_count() or 1)


@dataclass
class _Server:
    """What the endpoints share: the one Predictor, the limits and the thread limiter."""

    predictor: Predictor
    max_upload_bytes: int
    max_image_pixels: int
    page: str
    limiter: anyio.CapacityLimiter | None = field(default=None)

    def thread_limiter(self) -> anyio.CapacityLimiter:
        """Created on first use: anyio limiters belong to the running event loop."""
        if self.limiter is None:
            self.limiter = anyio.CapacityLimiter(MAX_CONCURRENT_INFERENCES)
        return self.limiter

    async def predict(self, request: Request) -> Response:
        """POST /v1/predict: the faces of an uploaded image (multipart `file` or raw body)."""
        faces = request.query_params.get("faces", "auto")
        if faces not in ("auto", "none"):
            raise HTTPException(400, f"faces must be auto or none, got {faces!r}.")
        uncertain_below = _probability(request.query_params.get("uncertain_below"))
        data = await read_image_bytes(request, self.max_upload_bytes)
        try:
            answer = await anyio.to_thread.run_sync(
                classify_upload,
                self.predictor,
                data,
                cast(FaceMode, faces),
                self.max_image_pixels,
                uncertain_below,
                limiter=self.thread_limiter(),
            )
        except ImageError as error:
            raise HTTPException(400, str(error)) from None
        except Exception:
            # A bug or a model failure, not bad input: log the traceback once, answer 500,
            # keep serving.
            logger.exception("%s: inference failed", _describe(request))
            return JSONResponse({"error": "internal error while classifying"}, 500)
        return JSONResponse(answer)

    async def model(self, request: Request) -> Response:
        """GET /v1/model: classes, input, provenance and limits."""
        limits = {
            "max_upload_bytes": self.max_upload_bytes,
            "max_image_pixels": self.max_image_pixels,
        }
        return JSONResponse(model_description(self.predictor, limits))

    async def healthz(self, request: Request) -> Response:
        """GET /healthz: the model is loaded and the event loop answers."""
        return JSONResponse({"status": "ok", "model": model_id(self.predictor)["name"]})

    async def index(self, request: Request) -> Response:
        """GET /: the demo page (webcam or photo), one self-contained HTML file."""
        return HTMLResponse(self.page)


def create_app(
    model_path: str | Path | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    detector: str = "auto",
) -> Starlette:
    """The HTTP app serving one ONNX model (the bundled FER2013 model by default).

    The model is opened here, so a bad model file fails at startup, not on the first
    request (`emotionkit.DataError`).

    Args:
        model_path: An exported `.onnx` file, a run directory or a bundled model's name
            (`emotionkit models list`); None for the default bundled model.
        max_upload_bytes: Larger request bodies are refused with 413.
        max_image_pixels: Images whose header declares more pixels are refused with 400.
        detector: The face detector, as `emotionkit predict --detector` (auto, mtcnn, haar,
            none): the same detector and crop policy as the command.

    Example:
        >>> import uvicorn
        >>> uvicorn.run(create_app(), host="127.0.0.1", port=8000)  # doctest: +SKIP
    """
    quiet_decoder_warnings()
    model = DEFAULT_MODEL if model_path is None else model_path
    page = (resources.files("emotionkit.serve") / "static" / "index.html").read_text("utf-8")
    server = _Server(load_predictor(model, detector), max_upload_bytes, max_image_pixels, page)
    routes = [
        Route("/", server.index, methods=["GET"]),
        Route("/healthz", server.healthz, methods=["GET"]),
        Route("/v1/model", server.model, methods=["GET"]),
        Route("/v1/predict", server.predict, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})


async def _http_error(request: Request, error: Exception) -> Response:
    """Every refused request (400, 404, 405, 413): one log line, a JSON `error` message."""
    assert isinstance(error, HTTPException)
    logger.warning("%s -> %d: %s", _describe(request), error.status_code, error.detail)
    return JSONResponse({"error": error.detail}, error.status_code, headers=error.headers)


def _probability(text: str | None) -> float | None:
    """The `uncertain_below` query parameter: a probability in (0, 1], or absent."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise HTTPException(400, f"uncertain_below must be a number in (0, 1], got {text!r}.")
    return value


def _describe(request: Request) -> str:
    client = f"{request.client.host}:{request.client.port}" if request.client else "?"
    return f"{client} {request.method} {request.url.path}"
