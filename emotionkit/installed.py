"""Which frameworks are installed, checked without importing them (a leaf module: the data
stage and the runtime both ask, and neither may import the other for it)."""

from __future__ import annotations

import importlib.util


def backend_installed(backend: str) -> bool:
    """True when the framework of `backend` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec(backend) is not None
    except (ImportError, ValueError):  # an import hook that refuses it
        return False


def tensorflow_available() -> bool:
    """TensorFlow runs `tf.data` and the exporters; a JAX-only host trains without it."""
    return backend_installed("tensorflow")
