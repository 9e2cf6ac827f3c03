"""`model.weights`: layer-by-layer loading by name and shape, with a report and strict mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emotionkit.errors import ModelError
from emotionkit.models import build_model, load_pretrained_weights
from emotionkit.models.resnet import ResNetSpec

IMAGES = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 1)).astype(np.float32)


def tiny_model(num_classes: int = 7, channels: int = 1, seed: int = 0) -> object:
    import keras

    keras.utils.set_random_seed(seed)
    spec = ResNetSpec(width=0.125, stage_blocks=[1, 1, 1, 1])
    return build_model(spec, image_size=32, channels=channels, num_classes=num_classes)


def save(model: object, path: Path) -> Path:
    if path.name.endswith(".weights.h5"):
        model.save_weights(path)  # type: ignore[attr-defined]
    else:
        model.save(path)  # type: ignore[attr-defined]
    return path


@pytest.mark.parametrize("filename", ["source.keras", "source.weights.h5"])
def test_eight_class_head_is_skipped_and_reported(tmp_path: Path, filename: str) -> None:
    source = tiny_model(num_classes=8, seed=1)
    path = save(source, tmp_path / filename)
    target = tiny_model(num_classes=7, seed=2)
    fresh_head = target.get_layer("logits").get_weights()  # type: ignore[attr-defined]

    report = load_pretrained_weights(target, path)

    assert [item["layer"] for item in report["skipped"]] == ["logits"]
    assert report["skipped"][0]["expected"] == [[64, 7], [7]]
    assert report["skipped"][0]["found"] == [[64, 8], [8]]
    assert report["missing"] == [] and report["unused"] == []
    assert "conv1_conv" in report["loaded"] and "stack3_block1_2_bn" in report["loaded"]
    for name in ("conv1_conv", "stack3_block1_2_bn"):
        for ours, theirs in zip(
            target.get_layer(name).get_weights(),  # type: ignore[attr-defined]
            source.get_layer(name).get_weights(),  # type: ignore[attr-defined]
            strict=True,
        ):
            np.testing.assert_array_equal(ours, theirs)
    for ours, fresh in zip(target.get_layer("logits").get_weights(), fresh_head, strict=True):  # type: ignore[attr-defined]
        np.testing.assert_array_equal(ours, fresh)


@pytest.mark.parametrize("filename", ["source.keras", "source.weights.h5"])
def test_strict_mode_names_the_key_and_the_layer(tmp_path: Path, filename: str) -> None:
    path = save(tiny_model(num_classes=8), tmp_path / filename)
    with pytest.raises(ModelError, match=r"model\.weights.*logits"):
        load_pretrained_weights(tiny_model(num_classes=7), path, strict=True)


def test_same_architecture_round_trips_exactly(tmp_path: Path) -> None:
    """Guards `weights_file_keys` against a change in Keras' `.weights.h5` key scheme."""
    source = tiny_model(seed=1)
    path = save(source, tmp_path / "same.weights.h5")
    target = tiny_model(seed=2)
    report = load_pretrained_weights(target, path, strict=True)
    assert report["skipped"] == [] and len(report["loaded"]) > 10
    np.testing.assert_allclose(
        target.predict(IMAGES, verbose=0),  # type: ignore[attr-defined]
        source.predict(IMAGES, verbose=0),  # type: ignore[attr-defined]
        atol=1e-6,
    )


def test_rgb_stem_into_grayscale_model_skips_the_stem(tmp_path: Path) -> None:
    path = save(tiny_model(channels=3), tmp_path / "rgb.keras")
    report = load_pretrained_weights(tiny_model(channels=1), path)
    assert [item["layer"] for item in report["skipped"]] == ["conv1_conv"]


@pytest.mark.parametrize(
    ("filename", "message"),
    [("absent.keras", "file not found"), ("weights.npz", "is not a")],
)
def test_bad_paths_name_the_recipe_key(tmp_path: Path, filename: str, message: str) -> None:
    path = tmp_path / filename
    if filename.endswith(".npz"):
        path.write_bytes(b"")
    with pytest.raises(ModelError, match=rf"^model\.weights: .*{message}"):
        load_pretrained_weights(tiny_model(), path)


def test_preset_name_without_local_file_is_an_offline_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path))
    with pytest.raises(ModelError, match=r"^model\.weights: preset 'resnet50_imagenet' .*never"):
        load_pretrained_weights(tiny_model(), "resnet50_imagenet")


def test_preset_name_found_in_the_local_cache_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path))
    preset = tmp_path / "models/keras/resnetv1/keras/tiny_fer/2"
    preset.mkdir(parents=True)
    source = tiny_model()
    source.save_weights(preset / "model.weights.h5")
    report = load_pretrained_weights(tiny_model(), "tiny_fer")
    assert report["path"] == str(preset / "model.weights.h5")
    assert not report["skipped"] and "logits" in report["loaded"]
