# emotionkit serve: the HTTP API and demo page for the bundled FER2013 model (docs/serve.md).
#
#   docker build -t emotionkit-serve .
#   docker run --rm -p 127.0.0.1:8000:8000 emotionkit-serve      # then open http://127.0.0.1:8000
#   docker run --rm -p 127.0.0.1:8000:8000 -v $PWD/runs:/models:ro emotionkit-serve \
#       emotionkit serve /models/my-run/export/model.onnx --host 0.0.0.0
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY emotionkit ./emotionkit
# The serve path imports only onnxruntime, OpenCV, Starlette/uvicorn and the CLI's libraries
# (tests/test_serve.py checks that no TensorFlow, Keras or JAX is imported). The training
# stack the package also depends on (TensorFlow, Keras, tf2onnx: ~2 GB) is left out: the
# package is installed without dependencies, then the serve path's, with pyproject's bounds.
# For the full stack instead: RUN pip install ".[serve]"
RUN pip install --no-deps . \
    && pip install "onnxruntime>=1.20" "opencv-python-headless>=4.8,<5" "numpy>=1.26" \
        "typer>=0.12" "rich>=13.7" "pydantic>=2.6" "pyyaml>=6.0" \
        "starlette>=0.40" "uvicorn>=0.30" "python-multipart>=0.0.18" \
    && rm -rf /src

RUN useradd --create-home --uid 10001 emotionkit
# By number: Kubernetes' runAsNonRoot can only verify a numeric user (hadolint DL3066).
USER 10001
WORKDIR /home/emotionkit
EXPOSE 8000

# python-slim has no curl: the standard library checks /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]

# 0.0.0.0 inside the container, so that -p can publish it; publish it on 127.0.0.1 (as
# above) unless other machines should reach it: the server has no authentication or TLS.
CMD ["emotionkit", "serve", "--host", "0.0.0.0", "--port", "8000"]
