"""Shared test setup: the backend comes from KERAS_BACKEND (nox parametrises it)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from emotionkit.runtime import apply_tensorflow_workarounds

# Must happen before anything imports TensorFlow (see emotionkit.runtime).
apply_tensorflow_workarounds()
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Decoded-image cache in a throwaway folder, not the user's ~/.cache.
os.environ.setdefault("EMOTIONKIT_CACHE_DIR", tempfile.mkdtemp(prefix="emotionkit-cache-"))

REPO = Path(__file__).resolve().parents[1]
BACKEND = os.environ["KERAS_BACKEND"]

TINY_OVERRIDES = [
    "data.source={kind: synthetic, train_size: 280, val_size: 70, test_size: 0}",
    "data.image_size=32",
    "data.batch_size=32",
    "model.width=0.125",
    "model.stage_blocks=[1, 1, 1, 1]",
    "train.epochs=2",
    "train.schedule.warmup_epochs=0.5",
    "export.parity_samples=16",
    f"runtime.backend={BACKEND}",
]


@pytest.fixture
def tiny_overrides() -> list[str]:
    """Overrides that shrink the quickstart recipe to a seconds-long run."""
    return list(TINY_OVERRIDES)


@pytest.fixture
def quickstart() -> Path:
    return REPO / "recipes" / "quickstart.yaml"
