"""TFDS source (being written; see issue 4)."""

from __future__ import annotations

from emotionkit.data.sources import LoadedData
from emotionkit.recipe import DataSpec


def load_tfds(spec: DataSpec, seed: int) -> LoadedData:
    raise NotImplementedError
