"""Grad-CAM: a model with a known answer, a NumPy reference on either backend, files.

Hand-built models get their weights from a seeded NumPy generator (not Keras initializers,
which differ by backend), so the NumPy reference and therefore the expected heatmap are the
same under JAX and TensorFlow: passing on both backends means both give the same Grad-CAM
for the same saved `.keras` model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from PIL import Image

from emotionkit.data.decode import resize_pixels
from emotionkit.errors import DataError, ModelError
from emotionkit.evaluate.gradcam import (
    _pick_per_class,
    explain_files,
    grad_cam,
    overlay,
    plot_gradcam_grid,
)
from emotionkit.models import build_model
from emotionkit.models.resnet import ResNetSpec

CLASSES = ["angry", "happy", "sad"]


def bilinear(maps: np.ndarray, size: int) -> np.ndarray:
    """Reference resize, half-pixel centres and clamped edges, as one matrix per axis."""
    low = maps.shape[1]
    source = np.clip((np.arange(size) + 0.5) * low / size - 0.5, 0, low - 1)
    lower = np.floor(source).astype(int)
    upper = np.minimum(lower + 1, low - 1)
    matrix = np.zeros((size, low))
    matrix[np.arange(size), lower] += 1 - (source - lower)
    matrix[np.arange(size), upper] += source - lower
    return np.einsum("Hh,nhw,Ww->nHW", matrix, maps, matrix)


def unit(maps: np.ndarray) -> np.ndarray:
    return maps / maps.max(axis=(1, 2), keepdims=True)


def zero_initialised(layer_class: Any, *args: Any, **kwargs: Any) -> Any:
    # Zeros, not random: the weights are set below, and JAX compiles every random init shape.
    return layer_class(*args, kernel_initializer="zeros", **kwargs)


def region_model() -> Any:
    """Two input channels passed through unchanged; class 0 = mean(ch0) - mean(ch1), class 1
    the opposite. Its Grad-CAM for class k is exactly where channel k outweighs the other."""
    inputs = keras.Input((8, 8, 2), name="image")
    x = zero_initialised(keras.layers.Conv2D, 2, 1, use_bias=False, name="features")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    logits = zero_initialised(keras.layers.Dense, 2, name="logits")(x)
    model = keras.Model(inputs, logits)
    model.get_layer("features").set_weights([np.eye(2, dtype=np.float32)[None, None]])
    model.get_layer("logits").set_weights([np.array([[1, -1], [-1, 1]], np.float32), np.zeros(2)])
    return model


def test_each_class_lights_the_region_that_drives_it() -> None:
    top_left, bottom_right = np.zeros((8, 8)), np.zeros((8, 8))
    top_left[:3, :3], bottom_right[5:, 5:] = 1.0, 1.0
    image = np.stack([200 * top_left, 100 * bottom_right], axis=-1)
    images = np.stack([image, np.zeros_like(image)]).astype(np.float32)
    predicted = grad_cam(region_model(), images)  # class 0 wins on the first image
    assert predicted.shape == (2, 8, 8) and predicted.dtype == np.float32
    np.testing.assert_allclose(predicted[0], top_left, atol=1e-6)
    np.testing.assert_array_equal(predicted[1], 0.0)  # no evidence: zeros, not NaN
    other = grad_cam(region_model(), images[:1], class_indices=[1])
    np.testing.assert_allclose(other[0], bottom_right, atol=1e-6)


def mlp_head_model(rng: np.random.Generator) -> tuple[Any, dict[str, np.ndarray]]:
    """conv3x3+relu (8x8) -> avg-pool 2 (4x4) -> avg_pool -> dense+relu -> logits."""
    inputs = keras.Input((8, 8, 2), name="image")
    x = zero_initialised(keras.layers.Conv2D, 3, 3, padding="same", activation="relu", name="conv")(
        inputs
    )
    x = keras.layers.AveragePooling2D(2, name="pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = zero_initialised(keras.layers.Dense, 4, activation="relu", name="hidden")(x)
    logits = zero_initialised(keras.layers.Dense, 3, name="logits")(x)
    model = keras.Model(inputs, logits)
    weights = {
        "conv": rng.normal(0, 0.01, (3, 3, 2, 3)),
        "conv_b": rng.normal(0, 0.3, 3),
        "hidden": rng.normal(0, 1, (3, 4)),
        "hidden_b": rng.normal(0, 0.3, 4),
        "logits": rng.normal(0, 1, (4, 3)),
        "logits_b": np.zeros(3),
    }
    for name in ("conv", "hidden", "logits"):
        model.get_layer(name).set_weights([weights[name], weights[f"{name}_b"]])
    return model, weights


def numpy_gradcam(
    images: np.ndarray, w: dict[str, np.ndarray], cut: str, classes: list[int] | None
) -> np.ndarray:
    """The same Grad-CAM by hand: forward pass and chain rule in NumPy."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
    conv = np.maximum(np.einsum("nhwcij,ijco->nhwo", windows, w["conv"]) + w["conv_b"], 0)
    pooled = conv.reshape(-1, 4, 2, 4, 2, 3).mean(axis=(2, 4))
    hidden = pooled.mean(axis=(1, 2)) @ w["hidden"] + w["hidden_b"]
    logits = np.maximum(hidden, 0) @ w["logits"] + w["logits_b"]
    chosen = logits.argmax(-1) if classes is None else np.array(classes)
    upstream = w["logits"].T[chosen]  # d logit[class] / d relu(hidden)
    # d logit / d channel mean; the gradient on the map is this over the map's pixels, the
    # same at every pixel (global average pooling), so it is also the channel weight.
    channel = (upstream * (hidden > 0)) @ w["hidden"].T
    if cut == "conv":
        return unit(np.maximum(np.einsum("nhwc,nc->nhw", conv, channel / 64), 0))
    return unit(bilinear(np.maximum(np.einsum("nhwc,nc->nhw", pooled, channel / 16), 0), 8))


@pytest.mark.parametrize(("layer_name", "classes"), [(None, None), ("conv", [2, 0, 1, 2])])
def test_matches_numpy_reference_after_save_and_load(
    tmp_path: Path, layer_name: str | None, classes: list[int] | None
) -> None:
    # Seed 1: the images differ in predicted class (1, 2, 1, 2) and in which hidden units
    # are active, and every map has positive evidence (the reference divides by its peak).
    rng = np.random.default_rng(1)
    model, weights = mlp_head_model(rng)
    model.save(tmp_path / "mlp.keras")
    restored = keras.saving.load_model(tmp_path / "mlp.keras")
    images = rng.uniform(0, 255, (4, 8, 8, 2)) * rng.uniform(0, 1, (4, 1, 1, 2))
    expected = numpy_gradcam(images, weights, layer_name or "pool", classes)
    heatmaps = grad_cam(restored, images.astype(np.float32), classes, layer_name)
    np.testing.assert_allclose(heatmaps, expected, atol=2e-5)


@pytest.fixture(scope="module")
def resnet() -> Any:
    """A real emotionkit model (stem, BatchNorm, residual blocks, dropout): 16 px -> 8x8 map."""
    spec = ResNetSpec(width=0.125, stage_blocks=[1], stem="stride2", dropout=0.3)
    return build_model(spec, image_size=16, channels=1, num_classes=3)


def test_resnet_default_layer_and_class(resnet: Any) -> None:
    images = np.random.default_rng(1).uniform(0, 255, (3, 16, 16, 1)).astype(np.float32)
    heatmaps = grad_cam(resnet, images)
    # The head is avg_pool -> dropout -> dense: in inference mode the gradient of logit k on
    # the last block's output is kernel[:, k] / pixels everywhere (dropout would randomise it).
    block = keras.Model(resnet.input, resnet.get_layer("stack0_block1_out").output)
    features = np.asarray(block(images, training=False), np.float64)
    kernel = resnet.get_layer("logits").get_weights()[0]
    predicted = np.asarray(resnet(images, training=False)).argmax(-1)
    weighted = np.einsum("nhwc,cn->nhw", features, kernel[:, predicted])
    expected = unit(bilinear(np.maximum(weighted, 0), 16))
    assert heatmaps.shape == (3, 16, 16) and heatmaps.dtype == np.float32
    assert heatmaps.min() >= 0 and heatmaps.max() == 1
    np.testing.assert_allclose(heatmaps, expected, atol=2e-5)


@pytest.mark.parametrize(
    ("layer", "message"),
    [("logits", "spatial"), ("stack0_block1_1_conv", "bypasses"), ("nope", "spatial")],
)
def test_layer_that_is_not_a_spatial_cut_is_refused(resnet: Any, layer: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        grad_cam(resnet, np.zeros((1, 16, 16, 1), np.float32), layer_name=layer)


def test_overlay_blends_the_colormap_over_the_image() -> None:
    gray = np.full((4, 4), 100, np.uint8)
    heatmap = np.zeros((4, 4), np.float32)
    heatmap[0, 0] = 1.0
    np.testing.assert_array_equal(overlay(gray, heatmap, alpha=0.0), 100)
    colour = overlay(gray, heatmap, alpha=1.0)
    assert colour.dtype == np.uint8 and colour.shape == (4, 4, 3)
    assert colour[0, 0, 0] > colour[0, 0, 2] and colour[3, 3, 2] > colour[3, 3, 0]  # hot red
    half = overlay(gray, heatmap, alpha=0.5).astype(int)
    assert np.abs(half - (100 + colour.astype(int)) / 2).max() <= 1
    np.testing.assert_array_equal(overlay(gray[..., None], heatmap), overlay(gray, heatmap))
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    np.testing.assert_array_equal(overlay(rgb, heatmap), overlay(gray, heatmap))
    assert overlay(np.zeros((6, 9)), np.ones((2, 3))).shape == (6, 9, 3)  # heatmap resized


def test_per_class_pick_is_seeded_and_stays_in_class() -> None:
    labels = np.array([0, 2, 0, 0, 2, 0, 0])
    rows = _pick_per_class(labels, num_classes=3, per_class=2, seed=0)
    assert rows == _pick_per_class(labels, num_classes=3, per_class=2, seed=0)
    assert len(rows) == 2 and all(len(row) == 2 for row in rows)  # class 1 has no image
    assert {int(labels[i]) for i in rows[0]} == {0} and sorted(rows[1]) == [1, 4]


def test_grid_png_has_a_row_per_class_present(resnet: Any, tmp_path: Path) -> None:
    images = np.random.default_rng(2).uniform(0, 255, (5, 16, 16, 1)).astype(np.float32)
    one_hot = np.eye(3)[[0, 0, 0, 2, 2]]
    path = plot_gradcam_grid(resnet, images, one_hot, CLASSES, tmp_path / "plots" / "gc.png")
    with Image.open(path) as png:
        assert png.format == "PNG"
        # 2 per class x (image, overlay) columns of 1.7 in, 2 rows of 2.0 in, at 100 dpi
        assert png.size == (680, 400)


def test_explain_files_writes_overlays_and_names_a_bad_file(resnet: Any, tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    resnet.save(run / "checkpoints" / "best.keras")
    (run / "labels_mapping.json").write_text(json.dumps(dict(enumerate(CLASSES))))
    rgb = np.random.default_rng(3).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "face.png")
    Image.fromarray(rgb[:16, :16, 0]).save(tmp_path / "gray.jpg")
    results = explain_files(run, [tmp_path / "face.png", tmp_path / "gray.jpg"], tmp_path / "out")
    assert [Path(r["output"]).name for r in results] == ["face_gradcam.png", "gray_gradcam.png"]
    assert all(Path(r["output"]).stat().st_size > 0 for r in results)
    # the model saw the file as the data pipeline would feed it: grayscale, resized to 16 px
    probabilities = keras.ops.softmax(resnet(resize_pixels(rgb[None], 16, 1).astype(np.float32)))
    expected = np.asarray(probabilities)[0]
    assert results[0]["predicted"] == CLASSES[int(expected.argmax())]
    assert results[0]["probability"] == pytest.approx(float(expected.max()), abs=1e-5)

    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"broken\.png"):
        explain_files(run, [tmp_path / "face.png", tmp_path / "broken.png"], tmp_path / "out")
    with pytest.raises(ModelError, match=r"best\.keras"):
        explain_files(tmp_path / "out", [tmp_path / "face.png"], tmp_path / "out")
