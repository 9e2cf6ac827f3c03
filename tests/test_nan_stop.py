"""A non-finite loss stops training at once and records where it happened."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotionkit.data.pipeline import build_dataset
from emotionkit.data.sources import SplitData
from emotionkit.models import build_model
from emotionkit.recipe import ModelSpec, TrainSpec
from emotionkit.train import compile_model, fit_model


def test_nan_in_the_data_stops_training_with_its_location(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (32, 32, 32, 1)).astype(np.float32)
    images[20] = np.nan  # lands in the third batch of 8 (no shuffle below: training=False)
    split = SplitData(images, (np.arange(32) % 7).astype(np.int32), [str(i) for i in range(32)])
    train = build_dataset(split, 7, 8, training=False, seed=0)
    model = build_model(
        ModelSpec(width=0.125, stage_blocks=[1, 1, 1, 1]), image_size=32, channels=1, num_classes=7
    )
    spec = TrainSpec(epochs=3, schedule={"name": "constant"})  # type: ignore[arg-type]
    compile_model(model, spec, steps_per_epoch=4)
    result = fit_model(model, train, train, spec, tmp_path, steps_per_epoch=4, batch_size=8)
    assert result.failure is not None
    assert (result.failure["epoch"], result.failure["step"]) == (1, 3)
    assert not np.isfinite(result.failure["loss"])
    history = (tmp_path / "history.csv").read_text().splitlines()
    assert len(history) <= 2  # stopped in the first epoch, not after all three
