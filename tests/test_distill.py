"""Distillation (`train.distill`): mixed targets, the teacher seeing the augmented batch, the
teacher-logit cache, bad inputs, and a student that moves toward the bundled teacher."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emotionkit.bundled import bundled_model_path
from emotionkit.data import load_data
from emotionkit.data.pipeline import _array_dataset, build_dataset
from emotionkit.errors import RecipeError
from emotionkit.recipe import Recipe, load_recipe
from emotionkit.training import distill
from emotionkit.training.distill import (
    TeacherTargets,
    build_teacher_targets,
    class_columns,
    softmax,
    teacher_placement,
)
from emotionkit.workflow.stages import check_inputs
from tests.conftest import BACKEND, REPO

FER_CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
# The bundled teacher takes 48x48 grayscale, the synthetic source's FER classes at that size.
SMALL = [
    "data.source={kind: synthetic, train_size: 96, val_size: 32, test_size: 0}",
    "data.image_size=48",
    "data.channels=1",
    "data.batch_size=16",
]


def recipe_with(*overrides: str) -> Recipe:
    return load_recipe(REPO / "recipes" / "quickstart.yaml", [*SMALL, *overrides])


def teacher_copy(tmp_path: Path, class_names: list[str]) -> Path:
    """The bundled teacher with other class names in its metadata (a different file, too)."""
    import json

    import onnx

    proto = onnx.load(str(bundled_model_path()))
    for entry in proto.metadata_props:
        if entry.key == "class_names":
            entry.value = json.dumps(class_names)
    proto.metadata_props.add(key="test_copy", value="yes")  # never the bundled file's bytes
    path = tmp_path / "teacher.onnx"
    onnx.save(proto, str(path))
    return path


class StripeTeacher:
    """A fake onnxruntime session: logit k is the mean of the image's k-th vertical stripe,
    so a flipped or mixed image gets other logits than the original."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def run(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        assert names == ["logits"]
        self.seen.append(feed["image"])
        return [stripe_logits(feed["image"])]


def stripe_logits(images: np.ndarray) -> np.ndarray:
    stripes = np.array_split(images, len(FER_CLASSES), axis=2)
    return np.stack([stripe.mean(axis=(1, 2, 3)) / 20.0 for stripe in stripes], axis=1)


# --- targets -------------------------------------------------------------------------------


def test_targets_mix_labels_and_the_softened_teacher() -> None:
    images = np.random.default_rng(0).uniform(0, 255, (4, 48, 48, 1)).astype(np.float32)
    labels = np.eye(7, dtype=np.float32)[[0, 3, 5, 6]]
    soft = softmax(stripe_logits(images) / 2.0)
    columns = list(range(7))
    mixed = TeacherTargets(StripeTeacher(), columns, alpha=0.25, temperature=2.0)(images, labels)
    np.testing.assert_allclose(mixed, 0.75 * labels + 0.25 * soft, atol=1e-6)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, atol=1e-6)
    only_labels = TeacherTargets(StripeTeacher(), columns, alpha=0.0, temperature=1.0)
    np.testing.assert_array_equal(only_labels(images, labels), labels)


def test_teacher_columns_follow_the_data_class_order() -> None:
    assert class_columns(("b", "a", "c"), ["a", "b"]) == [1, 0]  # c, the teacher's only, dropped
    with pytest.raises(RecipeError, match=r"train\.distill\.teacher.*\['d'\]"):
        class_columns(("b", "a", "c"), ["a", "d"])


def test_teacher_sees_the_augmented_and_mixed_batch() -> None:
    """Targets after flip + MixUp are the teacher's on exactly the images the model gets."""
    data = load_data(recipe_with().data, seed=0)
    teacher = TeacherTargets(StripeTeacher(), list(range(7)), alpha=1.0, temperature=1.0)
    augment = recipe_with("data.augment=[{flip: {}}, {mixup: {alpha: 0.4}}]").data.augment
    dataset = build_dataset(
        data.splits["train"], 7, 16, training=True, seed=3, augment=augment,
        batch_targets=teacher,
    )  # fmt: skip
    for images, targets in dataset.as_numpy_iterator():
        assert not np.array_equal(images, np.round(images))  # MixUp blended the pixels
        np.testing.assert_allclose(targets, softmax(stripe_logits(images)), atol=1e-5)


def test_host_arrays_without_tensorflow_also_get_teacher_targets() -> None:
    data = load_data(recipe_with().data, seed=0)
    teacher = TeacherTargets(StripeTeacher(), list(range(7)), alpha=1.0, temperature=1.0)
    stream = _array_dataset(data.splits["train"], 7, 16, True, 0, None, None, range(1), teacher)
    for images, targets in stream:
        np.testing.assert_allclose(targets, softmax(stripe_logits(images)), atol=1e-6)


def test_device_augmentation_chosen_by_auto_moves_to_the_host() -> None:
    device = ("device", "auto: a GPU is visible")
    assert teacher_placement(*device, tensorflow=True)[0] == "host"
    assert teacher_placement("host", "set", tensorflow=True) == ("host", "set")
    with pytest.raises(RecipeError, match="TensorFlow"):
        teacher_placement(*device, tensorflow=False)


# --- cache ---------------------------------------------------------------------------------


@pytest.fixture
def counted_teacher(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    """A fresh cache folder, and the size of every batch the real teacher scores."""
    monkeypatch.setenv("EMOTIONKIT_CACHE_DIR", str(tmp_path / "cache"))
    scored: list[int] = []
    run_teacher = distill.run_teacher

    def counting(session: Any, images: np.ndarray) -> np.ndarray:
        scored.append(len(images))
        return run_teacher(session, images)

    monkeypatch.setattr(distill, "run_teacher", counting)
    return scored


def test_teacher_logits_are_cached_reused_and_invalidated(
    counted_teacher: list[int], tmp_path: Path
) -> None:
    recipe = recipe_with("train.distill={teacher: fer2013-cpu, alpha: 0.5, temperature: 2.0}")
    assert recipe.train.distill is not None
    data = load_data(recipe.data, seed=0)
    first = build_teacher_targets(recipe.train.distill, data, augmented=False)
    assert sum(counted_teacher) == len(data.splits["train"])
    (cache_file,) = (tmp_path / "cache" / "teacher").glob("*.npz")

    again = build_teacher_targets(
        recipe.train.distill, load_data(recipe.data, seed=0), augmented=False
    )
    assert sum(counted_teacher) == len(data.splits["train"])  # read back, not scored
    assert first.known is not None and again.known is not None
    for key, logits in first.known.items():
        np.testing.assert_array_equal(again.known[key], logits)
    stream = build_dataset(data.splits["train"], 7, 16, training=True, seed=0, batch_targets=again)
    for _, targets in stream.as_numpy_iterator():  # every batch found in the cache
        np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-5)
    assert sum(counted_teacher) == len(data.splits["train"])

    other = load_data(recipe.data, seed=1)  # other images: another fingerprint
    assert other.fingerprint != data.fingerprint
    build_teacher_targets(recipe.train.distill, other, augmented=False)
    assert sum(counted_teacher) == 2 * len(data.splits["train"])
    assert len(list(cache_file.parent.glob("*.npz"))) == 2

    renamed = teacher_copy(tmp_path, FER_CLASSES)  # same classes, another file: another key
    build_teacher_targets(recipe.train.distill.model_copy(update={"teacher": str(renamed)}),
                          data, augmented=False)  # fmt: skip
    assert sum(counted_teacher) == 3 * len(data.splits["train"])


def test_augmented_runs_score_every_batch_and_write_no_cache(
    counted_teacher: list[int], tmp_path: Path
) -> None:
    recipe = recipe_with("train.distill={teacher: fer2013-cpu}", "data.augment=[{flip: {}}]")
    assert recipe.train.distill is not None
    data = load_data(recipe.data, seed=0)
    teacher = build_teacher_targets(recipe.train.distill, data, augmented=True)
    assert teacher.known is None and not counted_teacher
    assert not (tmp_path / "cache" / "teacher").exists()
    stream = build_dataset(
        data.splits["train"], 7, 16, training=True, seed=0, augment=recipe.data.augment,
        batch_targets=teacher,
    )  # fmt: skip
    batches = len(list(stream.as_numpy_iterator()))
    assert counted_teacher == [16] * batches


# --- bad inputs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.image_size=32"], r"data\.image_size is 32, but train\.distill\.teacher"),
        (["data.channels=3"], r"data\.channels is 3, but train\.distill\.teacher"),
        (
            ["data.augment=[{flip: {}}]", "data.augment_on=device"],
            r"train\.distill.*data\.augment_on: device",
        ),
        (
            ["train.distill.teacher=no/such/teacher.onnx"],
            r"train\.distill\.teacher: no/such/teacher\.onnx not found",
        ),
    ],
)
def test_bad_teacher_inputs_stop_before_the_run(overrides: list[str], message: str) -> None:
    recipe = recipe_with("train.distill={teacher: fer2013-cpu}", *overrides)
    with pytest.raises(RecipeError, match=message) as caught:
        check_inputs(recipe)
    assert "\n" not in str(caught.value)


def test_teacher_without_a_data_class_is_refused(tmp_path: Path) -> None:
    renamed = teacher_copy(
        tmp_path, ["angry", "disgust", "fear", "joy", "neutral", "sad", "surprise"]
    )
    recipe = recipe_with(f"train.distill={{teacher: {renamed}}}")
    assert recipe.train.distill is not None
    check_inputs(recipe)  # the classes are known only once the data is loaded
    with pytest.raises(RecipeError, match=r"train\.distill\.teacher: .*\['happy'\]"):
        build_teacher_targets(recipe.train.distill, load_data(recipe.data, seed=0), augmented=False)


def test_missing_teacher_exits_2_without_a_run_directory(tmp_path: Path) -> None:
    emotionkit = shutil.which("emotionkit") or "emotionkit"
    result = subprocess.run(
        [emotionkit, "train", "quickstart", "train.distill.teacher=missing.onnx",
         f"runtime.backend={BACKEND}", "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 2
    assert "train.distill.teacher: missing.onnx not found" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()


# --- the student moves toward the teacher ---------------------------------------------------


def student_recipe(alpha: float) -> Recipe:
    return recipe_with(
        "data.source={kind: synthetic, train_size: 128, val_size: 48, test_size: 0}",
        f"train.distill={{teacher: fer2013-cpu, alpha: {alpha}, temperature: 1.0}}",
        "data.augment=[{flip: {}}]",  # host augmentation: the teacher scores every batch
        "model.width=0.125",
        "model.stage_blocks=[1, 1]",
        "train.epochs=4",
        "train.schedule.warmup_epochs=0.5",
        "train.optimizer.lr=0.01",
        "export.formats=[]",
        f"runtime.backend={BACKEND}",
    )


@pytest.mark.slow
def test_distilled_student_agrees_with_the_teacher(tmp_path: Path) -> None:
    """KL(teacher || student) on held-out images: a student trained on the teacher's targets
    (alpha 1) is much closer to it than one trained on the labels (alpha 0), and closer than
    a student that predicts the uniform distribution."""
    import keras

    from emotionkit.workflow.run import train

    recipe = student_recipe(1.0)
    val_images = load_data(recipe.data, seed=recipe.seed).splits["val"].images.astype(np.float32)
    teacher = distill.open_teacher("fer2013-cpu")
    teacher_probs = softmax(distill.run_teacher(teacher.session, val_images))
    divergence = {}
    for alpha in (0.0, 1.0):
        run_dir = train(student_recipe(alpha), runs_dir=tmp_path / f"alpha{alpha}").run_dir
        student = keras.saving.load_model(run_dir / "checkpoints" / "last.keras", compile=False)
        # Batch statistics: 32 steps leave BatchNorm's moving averages (momentum 0.99) far from
        # the data's, which would measure those averages rather than what the student learned.
        logits = keras.ops.convert_to_numpy(student(val_images, training=True))
        divergence[alpha] = kl_divergence(teacher_probs, softmax(logits))
    uniform = np.full_like(teacher_probs, 1.0 / teacher_probs.shape[1])
    assert divergence[1.0] < 0.75 * divergence[0.0], divergence
    assert divergence[1.0] < kl_divergence(teacher_probs, uniform), divergence


def kl_divergence(target: np.ndarray, predicted: np.ndarray) -> float:
    """Mean over images of KL(target || predicted)."""
    ratio = np.log(np.maximum(target, 1e-12)) - np.log(np.maximum(predicted, 1e-12))
    return float(np.mean(np.sum(target * ratio, axis=1)))
