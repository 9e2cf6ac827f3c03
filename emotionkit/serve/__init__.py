"""`emotionkit serve`: an HTTP API and a demo page for an exported ONNX model.

Starlette on uvicorn, onnxruntime and OpenCV: like `emotionkit.predict`, nothing here
imports Keras, TensorFlow or JAX. Needs the `serve` extra
(`pip install 'emotionkit[serve]'`). See docs/serve.md.

Example:
    >>> from emotionkit.serve import create_app
    >>> app = create_app()  # the bundled FER2013 model  # doctest: +SKIP
"""

from __future__ import annotations

from emotionkit.serve.app import create_app
from emotionkit.serve.server import run_server

__all__ = ["create_app", "run_server"]
