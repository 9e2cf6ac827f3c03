"""Freezing and two-phase fine-tuning: what trains when."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from emotionkit.data import load_data
from emotionkit.data.pipeline import build_dataset
from emotionkit.data.spec import DataSpec
from emotionkit.data.synthetic_source import SyntheticSource
from emotionkit.errors import ModelError
from emotionkit.models import build_model, embedding_model, freeze_layers
from emotionkit.models.resnet import ResNetSpec
from emotionkit.training import compile_model, fit_model
from emotionkit.training.spec import TrainSpec

BATCH = 16


def tiny_model(num_classes: int = 7) -> Any:
    keras.utils.set_random_seed(0)
    spec = ResNetSpec(width=0.125, stage_blocks=[1, 1, 1, 1])
    return build_model(spec, image_size=32, channels=1, num_classes=num_classes)


class WeightRecorder(keras.callbacks.Callback):
    """Copies every layer's weights at the end of each epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.snapshots: list[dict[str, list[np.ndarray]]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.snapshots.append(snapshot(self.model))


def snapshot(model: Any) -> dict[str, list[np.ndarray]]:
    return {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model.layers}


def changed(before: dict[str, list[np.ndarray]], after: dict[str, list[np.ndarray]]) -> set[str]:
    return {
        name
        for name, weights in before.items()
        if any(not np.array_equal(a, b) for a, b in zip(weights, after[name], strict=True))
    }


def test_head_warms_up_then_everything_trains(tmp_path: Path) -> None:
    data = load_data(
        DataSpec(source=SyntheticSource(train_size=64, val_size=16), image_size=32), seed=0
    )
    train, val = (
        build_dataset(data.splits[name], 7, BATCH, training=name == "train", seed=0)
        for name in ("train", "val")
    )
    spec = TrainSpec(
        epochs=3,
        unfreeze_at_epoch=2,
        backbone_lr_scale=0.1,
        schedule={"name": "constant"},  # type: ignore[arg-type]
    )
    model = tiny_model()
    frozen = freeze_layers(model, "backbone")
    assert "logits" not in frozen and "conv1_bn" in frozen
    steps = 64 // BATCH
    compile_model(model, spec, steps)
    initial, recorder = snapshot(model), WeightRecorder()

    result = fit_model(
        model, train, val, spec, tmp_path, steps_per_epoch=steps, batch_size=BATCH,
        extra_callbacks=[recorder],
    )  # fmt: skip

    with_weights = {name for name, weights in initial.items() if weights}
    # phase 1 (epochs 0 and 1): only the head moves; frozen BatchNorm keeps its statistics
    assert changed(initial, recorder.snapshots[1]) == {"logits"}
    # phase 2 (epoch 2): every layer with weights trains
    assert changed(recorder.snapshots[1], recorder.snapshots[2]) == with_weights
    assert all(layer.trainable for layer in model.layers)
    assert result.history["lr"] == pytest.approx([1e-3, 1e-3, 1e-3])  # the head's rate
    assert "conv1_conv/kernel" in model.optimizer.scaled_variables
    assert "logits/kernel" not in model.optimizer.scaled_variables
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 4  # header + 3 epochs
    assert (tmp_path / "checkpoints" / "last.keras").is_file()


@pytest.mark.parametrize(
    ("freeze", "expected"),
    [
        ("none", set()),
        ("stem", {"conv1_conv", "conv1_bn"}),
        (["stack0_*", "conv1_conv"], {"conv1_conv", "stack0_block1_1_conv", "stack0_block1_2_bn"}),
    ],
)
def test_freeze_selects_layers(freeze: str | list[str], expected: set[str]) -> None:
    model = tiny_model()
    frozen = set(freeze_layers(model, freeze))
    assert expected <= frozen
    assert all(not model.get_layer(name).trainable for name in frozen)
    assert "logits" not in frozen and model.get_layer("logits").trainable
    if freeze == "stem":
        assert frozen == expected


def test_freeze_pattern_matching_nothing_is_an_error() -> None:
    with pytest.raises(ModelError, match=r"model\.freeze.*'stak0_\*'"):
        freeze_layers(tiny_model(), ["stak0_*"])


def test_embedding_model_outputs_pooled_features() -> None:
    model = tiny_model()
    features = embedding_model(model).predict(np.zeros((3, 32, 32, 1), np.float32), verbose=0)
    # width 0.125: the last stage has round(512 * 0.125) = 64 channels
    assert features.shape == (3, 64)
    assert embedding_model(model).get_layer("conv1_conv") is model.get_layer("conv1_conv")


def test_phase_two_optimizer_continues_the_schedule() -> None:
    """Phase 2's fresh optimizer starts at step k*steps (no second warmup)."""
    spec = TrainSpec(epochs=4, unfreeze_at_epoch=2, backbone_lr_scale=0.5)
    model = tiny_model()
    compile_model(model, spec, steps_per_epoch=10, initial_epoch=2, lr_scale=0.5)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 20
    # the recipe's schedule (1 warmup epoch, cosine over 4 epochs of 10 steps) at step 20
    unscaled = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=30, warmup_target=1e-3, warmup_steps=10
    )(20)
    rate = keras.ops.convert_to_numpy(model.optimizer.learning_rate)
    assert float(rate) == pytest.approx(float(keras.ops.convert_to_numpy(unscaled)))


def test_scaled_variables_step_at_the_scaled_rate() -> None:
    """Adam's first step moves each weight by ~lr: the backbone's moves by lr * scale."""
    from emotionkit.training.fit import LayerwiseAdamW

    backbone = keras.Variable(np.zeros(4, np.float32), name="kernel")
    head = keras.Variable(np.zeros(4, np.float32), name="bias")
    optimizer = LayerwiseAdamW(
        scaled_variables={backbone.path}, lr_scale=0.1, learning_rate=1e-2, weight_decay=0.0
    )
    ones = keras.ops.ones(4)
    optimizer.apply([ones, ones], [backbone, head])
    backbone_step = np.abs(keras.ops.convert_to_numpy(backbone)).mean()
    head_step = np.abs(keras.ops.convert_to_numpy(head)).mean()
    assert head_step == pytest.approx(1e-2, rel=1e-3)
    assert backbone_step == pytest.approx(1e-3, rel=1e-3)
    assert LayerwiseAdamW.from_config(optimizer.get_config()).lr_scale == 0.1
