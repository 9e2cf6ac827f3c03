"""Training losses: each against a NumPy reference, their options, and a tiny fit + reload."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from emotionkit.data.pipeline import class_weights_from_counts
from emotionkit.errors import RecipeError
from emotionkit.recipe import validate_recipe
from emotionkit.training import compile_model
from emotionkit.training.losses import FocalLoss, build_loss, focal_alpha
from emotionkit.training.registries import LOSSES
from emotionkit.training.spec import LossSpec, TrainSpec

K = 5
ALPHA = [0.5, 1.0, 2.0, 1.5, 0.25]


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _smooth(targets: np.ndarray, s: float) -> np.ndarray:
    return targets * (1 - s) + s / targets.shape[-1]


def ref_cross_entropy(t: np.ndarray, z: np.ndarray, s: float = 0.0) -> np.ndarray:
    return -(_smooth(t, s) * _log_softmax(z)).sum(-1)


def ref_focal(
    t: np.ndarray, z: np.ndarray, gamma: float, alpha: list[float] | None, s: float = 0.0
) -> np.ndarray:
    log_p = _log_softmax(z)
    weights = (1 - np.exp(log_p)) ** gamma * (np.asarray(alpha) if alpha else 1.0)
    return -(weights * _smooth(t, s) * log_p).sum(-1)


def ref_kl(t: np.ndarray, z: np.ndarray) -> np.ndarray:
    log_t = np.log(np.where(t > 0, t, 1.0))  # 0 * log 0 = 0
    return (t * (log_t - _log_softmax(z))).sum(-1)


def ref_mse(t: np.ndarray, z: np.ndarray) -> np.ndarray:
    return ((np.exp(_log_softmax(z)) - t) ** 2).mean(-1)


def ref_l1(t: np.ndarray, z: np.ndarray) -> np.ndarray:
    return np.abs(np.exp(_log_softmax(z)) - t).mean(-1)


def ref_bce(t: np.ndarray, z: np.ndarray, s: float = 0.0) -> np.ndarray:
    t = t * (1 - s) + 0.5 * s
    return (np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))).mean(-1)


def targets(kind: str) -> np.ndarray:
    rng = np.random.default_rng(1)
    if kind == "hard":
        return np.eye(K)[rng.integers(0, K, size=8)]
    soft = rng.dirichlet(np.ones(K), size=8)
    soft[:4, 0] = 0.0  # exact zeros: 0 * log 0 must count as 0
    return soft / soft.sum(-1, keepdims=True)


def logits() -> np.ndarray:
    return np.random.default_rng(0).normal(scale=3.0, size=(8, K))


CASES: dict[str, tuple[dict[str, Any], Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    "cross_entropy": ({"label_smoothing": 0.1}, lambda t, z: ref_cross_entropy(t, z, 0.1)),
    "focal": ({"gamma": 2.0}, lambda t, z: ref_focal(t, z, 2.0, None)),
    "focal_alpha_smoothed": (
        {"gamma": 1.5, "alpha": ALPHA, "label_smoothing": 0.1},
        lambda t, z: ref_focal(t, z, 1.5, ALPHA, 0.1),
    ),
    "kl_divergence": ({}, ref_kl),
    "mse": ({}, ref_mse),
    "l1": ({}, ref_l1),
    "bce": ({"label_smoothing": 0.2}, lambda t, z: ref_bce(t, z, 0.2)),
}


@pytest.mark.parametrize("target_kind", ["hard", "soft"])
@pytest.mark.parametrize("case", list(CASES))
def test_loss_matches_numpy_reference(case: str, target_kind: str) -> None:
    options, reference = CASES[case]
    spec = LossSpec(name=case.removesuffix("_alpha_smoothed"), **options)  # type: ignore[arg-type]
    t, z = targets(target_kind), logits()

    value = build_loss(spec, num_classes=K)(t.astype("float32"), z.astype("float32"))

    assert float(keras.ops.convert_to_numpy(value)) == pytest.approx(
        reference(t, z).mean(), rel=1e-5, abs=1e-6
    )


def test_focal_with_gamma_zero_is_cross_entropy() -> None:
    t, z = targets("soft").astype("float32"), logits().astype("float32")
    focal = FocalLoss(gamma=0.0)(t, z)
    cross_entropy = keras.losses.CategoricalCrossentropy(from_logits=True)(t, z)
    assert float(focal) == pytest.approx(float(cross_entropy), rel=1e-6)


def test_sample_weights_weigh_each_sample() -> None:
    """`data.balance: class_weights` reaches every loss as Keras sample weights."""
    t, z = targets("soft"), logits()
    weights = np.linspace(0.5, 2.0, len(t))
    loss = build_loss(LossSpec(name="kl_divergence"))
    value = loss(t.astype("float32"), z.astype("float32"), sample_weight=weights)
    assert float(value) == pytest.approx((ref_kl(t, z) * weights).mean(), rel=1e-5)


def test_bfloat16_logits_are_computed_in_float32() -> None:
    t = targets("soft").astype("float32")
    z = keras.ops.cast(logits(), "bfloat16")
    value = build_loss(LossSpec(name="focal"))(t, z)
    expected = ref_focal(t, keras.ops.convert_to_numpy(keras.ops.cast(z, "float32")), 2.0, None)
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    assert float(value) == pytest.approx(expected.mean(), rel=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_loss_config_round_trips(case: str) -> None:
    options, _ = CASES[case]
    spec = LossSpec(name=case.removesuffix("_alpha_smoothed"), **options)  # type: ignore[arg-type]
    loss = build_loss(spec)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    t, z = targets("soft").astype("float32"), logits().astype("float32")
    assert type(restored) is type(loss)
    assert float(restored(t, z)) == pytest.approx(float(loss(t, z)), rel=1e-7)


def test_recipe_loss_names_are_the_registry() -> None:
    assert LossSpec.model_json_schema()["properties"]["name"]["enum"] == LOSSES.names()


def test_auto_alpha_is_the_class_weights_of_the_train_counts() -> None:
    counts = [90, 30, 0, 10]
    expected = class_weights_from_counts(counts)
    assert focal_alpha("auto", counts, num_classes=4) == [expected[i] for i in range(4)]
    # Average weight per train image is 1, as for data.balance: class_weights.
    assert np.dot(focal_alpha("auto", counts, 4), counts) == pytest.approx(sum(counts))


def test_alpha_of_the_wrong_length_names_the_recipe_key() -> None:
    with pytest.raises(RecipeError, match=r"train\.loss\.alpha has 2 weights .* 5 classes"):
        build_loss(LossSpec(name="focal", alpha=[1.0, 2.0]), num_classes=5)


def test_auto_alpha_without_class_counts_says_what_to_do() -> None:
    with pytest.raises(RecipeError, match=r"train\.loss\.alpha: auto .*class_counts"):
        build_loss(LossSpec(name="focal", alpha="auto"), num_classes=5)


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        ({"name": "cross_entropy", "gamma": 3.0}, r"train\.loss\.gamma applies to .* focal"),
        ({"name": "mse", "label_smoothing": 0.1}, r"train\.loss\.label_smoothing applies"),
        ({"name": "focal", "alpha": [1, -2]}, r"`train\.loss\.alpha` = \[1, -2\]: must be"),
        ({"name": "focal", "alpha": "balanced"}, r"null, auto or a list of per-class weights"),
        ({"name": "hinge"}, r"`train\.loss\.name` = 'hinge'"),
    ],
)
def test_bad_loss_options_are_recipe_errors(loss: dict[str, Any], message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        validate_recipe({"name": "x", "train": {"loss": loss}})


def test_options_left_at_their_default_are_accepted_for_any_loss() -> None:
    spec = LossSpec(name="kl_divergence", label_smoothing=0.0, gamma=2.0)
    assert spec.name == "kl_divergence"


def test_compile_checks_alpha_against_the_model_and_phase_two_keeps_the_loss() -> None:
    model = _tiny_model(num_classes=4)
    spec = TrainSpec.model_validate({"epochs": 2, "loss": {"name": "focal", "alpha": [1, 2]}})
    with pytest.raises(RecipeError, match=r"train\.loss\.alpha has 2 weights .* 4 classes"):
        compile_model(model, spec, steps_per_epoch=4)

    auto = TrainSpec.model_validate({"epochs": 2, "loss": {"name": "focal", "alpha": "auto"}})
    compile_model(model, auto, steps_per_epoch=4, class_counts=[10, 8, 8, 6])
    first = model.loss
    # fit_model's phase-two recompile passes no class counts: the resolved alpha is kept
    compile_model(model, auto, steps_per_epoch=4, initial_epoch=1)
    assert model.loss is first and first.alpha == focal_alpha("auto", [10, 8, 8, 6], 4)


def _tiny_model(num_classes: int = 4) -> Any:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    hidden = keras.layers.BatchNormalization()(hidden)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(hidden))


FAMILIES = [
    ("cross_entropy", {"name": "adamw"}, {}),
    ("focal", {"name": "sgd", "ema": 0.9, "clip_norm": 1.0, "grad_accum": 2}, {"alpha": "auto"}),
    ("kl_divergence", {"name": "sgd", "nesterov": False}, {}),
    ("bce", {"name": "adamw", "ema": 0.9, "clip_norm": 1.0, "grad_accum": 2}, {}),
]


@pytest.mark.parametrize(("loss", "optimizer", "options"), FAMILIES)
def test_each_loss_family_trains_and_reloads_from_keras_file(
    tmp_path: Path, loss: str, optimizer: dict[str, Any], options: dict[str, Any]
) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype("float32")
    y = rng.dirichlet(np.ones(4), size=32).astype("float32")
    spec = TrainSpec.model_validate(
        {"epochs": 2, "optimizer": optimizer, "loss": {"name": loss, **options}}
    )
    model = _tiny_model()
    compile_model(model, spec, steps_per_epoch=4, class_counts=[10, 8, 8, 6])
    before = [np.array(w) for w in model.get_weights()]

    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0).history

    assert np.isfinite(history["loss"][0])
    assert {"accuracy", "macro_f1", "top2_accuracy", "balanced_accuracy"} <= set(history)
    assert ("tvd" in history) == (loss == "kl_divergence")
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    assert type(restored.optimizer) is type(model.optimizer)
    assert type(restored.loss) is type(model.loss)
    assert restored.loss.get_config() == model.loss.get_config()
    expected = model.evaluate(x, y, verbose=0, return_dict=True)
    reloaded = restored.evaluate(x, y, verbose=0, return_dict=True)
    assert reloaded["loss"] == pytest.approx(expected["loss"], rel=1e-5)
