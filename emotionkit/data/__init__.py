"""Data stage: sources -> split -> in-memory arrays -> tf.data pipeline.

`load_data(spec, seed)` reads the source named by `data.source.kind` into uint8 arrays per
split (`train`, `val`, optional `test`); `build_dataset(...)` turns one split into a batched,
shuffled, augmented `tf.data.Dataset`. Normalisation is not done here: it is a layer at the
model's input, so exported models take raw 0-255 pixels.
"""

from __future__ import annotations

from emotionkit.data.sources import load_data, load_source
from emotionkit.data.types import LoadedData, SplitData

__all__ = ["LoadedData", "SplitData", "load_data", "load_source"]
