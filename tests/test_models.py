"""ResNet construction: parameter counts, shapes, stock-layer serialisation."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from emotionkit.models import build_model, count_parameters
from emotionkit.models.mobilenet import MobileNetV3SmallSpec
from emotionkit.models.resnet import ResNetSpec


@pytest.mark.parametrize(("depth", "millions"), [(18, 11.18), (34, 21.30)])
def test_full_width_parameter_counts(depth: int, millions: float) -> None:
    model = build_model(ResNetSpec(depth=depth), image_size=48, channels=1, num_classes=7)
    assert model.count_params() / 1e6 == pytest.approx(millions, abs=0.05)


def tiny(**fields: object) -> ResNetSpec:
    return ResNetSpec(width=0.125, stage_blocks=[1, 1, 1, 1], **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("stem", "depth"),
    [("cifar", 18), ("stride2", 18), ("deep_stride2", 18), ("imagenet", 18), ("cifar", 50)],
)
def test_logits_shape_and_stem(stem: str, depth: int) -> None:
    model = build_model(tiny(stem=stem, depth=depth), image_size=32, channels=3, num_classes=5)
    logits = model.predict(np.zeros((2, 32, 32, 3), np.float32), verbose=0)
    assert logits.shape == (2, 5)
    # the CIFAR stem keeps full resolution into stage 0, stride2 halves it, ImageNet quarters it
    stage0 = model.get_layer("stack0_block1_out").output.shape
    assert stage0[1] == {"cifar": 32, "stride2": 16, "deep_stride2": 16, "imagenet": 8}[stem]
    if stem == "deep_stride2":  # a full-resolution, half-width conv before the strided one
        assert model.get_layer("conv1_pre_relu").output.shape[1:] == (32, 32, 8)


@pytest.mark.parametrize(("depth", "millions"), [(18, 11.18), (50, 23.57)])
def test_v2_is_pre_activation_with_a_final_batchnorm(depth: int, millions: float) -> None:
    model = build_model(
        ResNetSpec(depth=depth, version="v2"), image_size=48, channels=1, num_classes=7
    )
    assert model.count_params() / 1e6 == pytest.approx(millions, abs=0.05)
    names = [layer.name for layer in model.layers]
    assert "conv1_bn" not in names and names.index("post_bn") < names.index("avg_pool")
    assert "stack1_block1_use_preactivation_bn" in names


def test_tiny_v2_builds_single_block_stages_and_predicts() -> None:
    model = build_model(tiny(version="v2"), image_size=32, channels=1, num_classes=7)
    logits = model.predict(np.zeros((2, 32, 32, 1), np.float32), verbose=0)
    assert logits.shape == (2, 7) and np.isfinite(logits).all()
    assert model.get_layer("avg_pool").input.shape[1:] == (4, 4, 64)


def test_input_normalisation_is_inside_the_model() -> None:
    model = build_model(
        tiny(), image_size=32, channels=1, num_classes=7, pixel_mean=100.0, pixel_std=50.0
    )
    normalize = keras.Model(model.input, model.get_layer("normalize").output)
    out = normalize.predict(np.full((1, 32, 32, 1), 150.0, np.float32), verbose=0)
    np.testing.assert_allclose(out, 1.0, rtol=1e-6)


def test_width_and_dropout() -> None:
    model = build_model(tiny(dropout=0.3), image_size=32, channels=1, num_classes=7)
    assert model.get_layer("conv1_conv").filters == 8
    assert model.get_layer("head_dropout").rate == pytest.approx(0.3)
    counts = count_parameters(model)
    assert 0 < counts["trainable"] < counts["total"]  # BatchNorm moving stats are not trainable


def test_saved_model_loads_with_stock_keras(tmp_path: Path) -> None:
    model = build_model(tiny(), image_size=32, channels=1, num_classes=7)
    images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 1)).astype(np.float32)
    expected = model.predict(images, verbose=0)
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(restored.predict(images, verbose=0), expected, atol=1e-6)


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("block_type", ["basic_block", "block"])
@pytest.mark.parametrize("blocks", [2, 3])
def test_vendored_stack_matches_keras_cv(version: str, block_type: str, blocks: int) -> None:
    import importlib

    from emotionkit.models import resnet_blocks, resnet_v2_blocks

    upstream = importlib.import_module(
        f"keras_cv.src.models.backbones.resnet_{version}.resnet_{version}_backbone"
    )
    vendored = resnet_blocks if version == "v1" else resnet_v2_blocks

    def stack_model(apply_stack: object) -> keras.Model:
        inputs = keras.Input((16, 16, 8), name="x")
        x = apply_stack(
            inputs,
            filters=4,
            blocks=blocks,
            stride=2,
            block_type=block_type,  # type: ignore[operator]
            first_shortcut=True,
            name="s",
        )
        return keras.Model(inputs, x)

    ours, theirs = stack_model(vendored.apply_stack), stack_model(upstream.apply_stack)
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    ours.set_weights(theirs.get_weights())
    images = np.random.default_rng(1).normal(size=(2, 16, 16, 8)).astype(np.float32)
    np.testing.assert_allclose(
        ours.predict(images, verbose=0), theirs.predict(images, verbose=0), atol=1e-6
    )


def test_light_mobilenet_with_channel_expansion(tmp_path: Path) -> None:
    spec = MobileNetV3SmallSpec(expand_channels=True, width=0.75)
    model = build_model(spec, image_size=48, channels=1, num_classes=7)
    assert model.get_layer("expand_channels").output.shape[-1] == 3
    assert model.count_params() < 2_000_000  # the light option really is light
    images = np.random.default_rng(2).uniform(0, 255, (2, 48, 48, 1)).astype(np.float32)
    expected = model.predict(images, verbose=0)
    assert expected.shape == (2, 7)
    model.save(tmp_path / "m.keras")  # stock layers only: loads without emotionkit
    restored = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(restored.predict(images, verbose=0), expected, atol=1e-5)


def test_mobilenet_on_grayscale_needs_expansion() -> None:
    from emotionkit.errors import RecipeError

    with pytest.raises(RecipeError, match="expand_channels"):
        build_model(MobileNetV3SmallSpec(), image_size=48, channels=1, num_classes=7)


def test_keras_file_saved_under_one_backend_loads_under_the_other(tmp_path: Path) -> None:
    """A `.keras` trained under JAX predicts the same under TensorFlow, and back."""
    import subprocess
    import sys

    from tests.conftest import BACKEND

    other = "jax" if BACKEND == "tensorflow" else "tensorflow"
    model = build_model(tiny(), image_size=32, channels=1, num_classes=7)
    images = np.random.default_rng(4).uniform(0, 255, (4, 32, 32, 1)).astype(np.float32)
    model.compile(optimizer="sgd", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    model.fit(images, np.eye(7, dtype=np.float32)[[0, 1, 2, 3]], epochs=1, verbose=0)  # trained
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", model.predict(images, verbose=0))
    model.save(tmp_path / "m.keras")
    code = (
        "import os, sys, numpy as np\n"
        f"os.environ['KERAS_BACKEND'] = '{other}'\n"
        "from emotionkit.runtime import apply_tensorflow_workarounds\n"
        "apply_tensorflow_workarounds()\n"
        "import keras\n"
        "d = sys.argv[1]\n"
        "m = keras.saving.load_model(d + '/m.keras', compile=False)\n"
        "print(np.abs(m.predict(np.load(d + '/x.npy'), verbose=0) - np.load(d + '/y.npy')).max())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "KERAS_BACKEND": other},
    )
    assert out.returncode == 0, out.stderr[-1500:]
    assert float(out.stdout.strip().splitlines()[-1]) <= 1e-5
