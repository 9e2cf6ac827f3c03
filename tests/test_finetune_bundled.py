"""Fine-tuning the shipped model: its ONNX weights read back into Keras, class-matched heads,
frozen BatchNorm, and the packaged `finetune` recipe end to end."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from emotionkit.bundled import bundled_model_path, list_bundled
from emotionkit.errors import RecipeError
from emotionkit.models import build_model, freeze_layers, load_pretrained_weights, unfreeze_all
from emotionkit.models.onnx_weights import layer_of, normalisation_of
from emotionkit.recipe import load_recipe, resolve_recipe

BUNDLED = list_bundled()[0]
FINETUNE = resolve_recipe("finetune")


def bundled_architecture(class_names: list[str]) -> Any:
    """The finetune recipe's model (the bundled model's shape) with the bundled normalisation."""
    recipe = load_recipe(FINETUNE)
    mean, std = normalisation_of(bundled_model_path()) or (0.0, 1.0)
    return build_model(
        recipe.model, image_size=48, channels=1, num_classes=len(class_names),
        pixel_mean=mean, pixel_std=std,
    )  # fmt: skip


def test_bundled_onnx_weights_compute_what_the_shipped_model_computes() -> None:
    import onnxruntime as ort

    model = bundled_architecture(BUNDLED["classes"])
    report = load_pretrained_weights(model, "fer2013-cpu", class_names=BUNDLED["classes"])
    assert not report["missing"] and not report["skipped"] and not report["unused"]
    assert report["head_classes"] == BUNDLED["classes"] and report["folded_batchnorm"]
    images = np.random.default_rng(0).uniform(0, 255, (8, 48, 48, 1)).astype(np.float32)
    mirrored = np.ascontiguousarray(images[:, :, ::-1])
    keras_logits = (model.predict_on_batch(images) + model.predict_on_batch(mirrored)) / 2
    session = ort.InferenceSession(str(bundled_model_path()))
    onnx_logits = session.run(["logits"], {"image": images})[0]
    np.testing.assert_allclose(np.asarray(keras_logits), onnx_logits, atol=1e-4)


def test_head_keeps_the_rows_of_shared_class_names() -> None:
    import keras

    model = bundled_architecture(BUNDLED["classes"])
    load_pretrained_weights(model, "fer2013-cpu", class_names=BUNDLED["classes"])
    full_kernel, full_bias = (np.asarray(w) for w in model.get_layer("logits").weights)
    keras.utils.set_random_seed(0)
    classes = ["sad", "happy", "bored"]  # a reordered subset and a class the model lacks
    subset = bundled_architecture(classes)
    report = load_pretrained_weights(subset, "fer2013-cpu", class_names=classes)
    kernel, bias = (np.asarray(w) for w in subset.get_layer("logits").weights)
    assert report["head_classes"] == ["sad", "happy"]
    for column, name in enumerate(["sad", "happy"]):
        source = BUNDLED["classes"].index(name)
        np.testing.assert_array_equal(kernel[:, column], full_kernel[:, source])
        assert bias[column] == full_bias[source]
    assert not np.allclose(kernel[:, 2], full_kernel[:, 0])  # `bored` starts fresh


def test_frozen_batchnorm_stays_frozen_through_the_unfreeze() -> None:
    import keras

    model = bundled_architecture(["a", "b"])
    frozen = freeze_layers(model, "none", batchnorm=True)
    batchnorms = {
        layer.name for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)
    }
    assert set(frozen) == batchnorms
    freeze_layers(model, "backbone", batchnorm=True)
    unfreeze_all(model, keep_batchnorm=True)
    assert {layer.name for layer in model.layers if not layer.trainable} == batchnorms


def test_onnx_weights_need_frozen_batchnorm() -> None:
    with pytest.raises(RecipeError, match=r"model\.freeze_batchnorm: true"):
        load_recipe(FINETUNE, ["model.freeze_batchnorm=false"])


def test_initializer_names_give_the_keras_layer() -> None:
    name = "resnet18_deep_stride2_3/stack3_block1_1_conv_1/convolution/merged_input:0"
    assert layer_of(name) == "stack3_block1_1_conv"
    assert layer_of("const_fold_opt__473") == ""


def write_faces(root: Path, counts: dict[str, int]) -> None:
    """Tiny 48x48 grayscale class folders, each class its own brightness."""
    rng = np.random.default_rng(0)
    for label, (name, count) in enumerate(counts.items()):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for index in range(count):
            face = rng.integers(0, 60, (48, 48)) + 60 * label
            cv2.imwrite(str(folder / f"{index}.png"), face.astype(np.uint8))


@pytest.mark.slow
def test_packaged_finetune_recipe_adapts_the_bundled_model(tmp_path: Path) -> None:
    """`emotionkit train finetune` on a new class set: BatchNorm untouched, convolutions
    trained after the unfreeze, the shared classes' head rows taken from the bundled model."""
    import keras

    write_faces(tmp_path / "faces", {"happy": 12, "sad": 12, "other": 12})
    backend = os.environ["KERAS_BACKEND"]
    subprocess.run(
        ["emotionkit", "train", "finetune", f"data.source.path={tmp_path / 'faces'}",
         "train.epochs=2", "train.unfreeze_at_epoch=1", "data.batch_size=16",
         "data.val_split=0.25", "export.formats=[]", f"runtime.backend={backend}",
         "--runs-dir", str(tmp_path / "runs")],
        check=True, capture_output=True,
    )  # fmt: skip
    (run_dir,) = (tmp_path / "runs" / "finetune").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["pretrained"]["head_classes"] == ["happy", "sad"]
    assert manifest["data"]["pixel_mean"] == normalisation_of(bundled_model_path())[0]
    trained = keras.saving.load_model(run_dir / "checkpoints" / "last.keras", compile=False)
    start = bundled_architecture(["happy", "other", "sad"])
    load_pretrained_weights(start, "fer2013-cpu", class_names=["happy", "other", "sad"])
    for name in ("conv1_pre_bn", "stack3_block2_2_bn"):
        pairs = zip(trained.get_layer(name).weights, start.get_layer(name).weights, strict=True)
        for after, before in pairs:
            np.testing.assert_array_equal(np.asarray(after), np.asarray(before))
    conv_after = np.asarray(trained.get_layer("stack0_block1_1_conv").weights[0])
    conv_before = np.asarray(start.get_layer("stack0_block1_1_conv").weights[0])
    assert not np.array_equal(conv_after, conv_before)
