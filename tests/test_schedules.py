"""Learning-rate schedules and the optimizers that step them (`train.schedule`, `.optimizer`)."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
import pytest

from emotionkit.errors import RecipeError
from emotionkit.recipe import load_recipe, validate_recipe
from emotionkit.training import compile_model
from emotionkit.training.fit import LayerwiseAdamW, LayerwiseSGD, build_optimizer
from emotionkit.training.registries import SCHEDULES
from emotionkit.training.schedules import OneCycle, WarmupStepDecay, build_schedule
from emotionkit.training.spec import ScheduleSpec, TrainSpec

LR = 0.1
STEPS_PER_EPOCH = 10
EPOCHS = 10  # 100 steps


def rates(schedule: dict[str, Any], steps: list[int]) -> list[float]:
    built = build_schedule(ScheduleSpec(**schedule), LR, STEPS_PER_EPOCH, EPOCHS)
    if isinstance(built, float):
        return [built] * len(steps)
    return [float(keras.ops.convert_to_numpy(built(step))) for step in steps]


def test_cosine_warms_up_from_zero_then_decays_to_zero() -> None:
    # warmup 2 epochs = 20 steps, then 80 steps of cosine: midpoint of the decay at step 60
    got = rates({"name": "cosine", "warmup_epochs": 2}, [0, 10, 20, 60, 100])
    assert got == pytest.approx([0.0, LR / 2, LR, LR / 2, 0.0], abs=1e-7)


def test_cosine_keeps_its_one_epoch_default_warmup() -> None:
    assert rates({"name": "cosine"}, [0, 5, 10]) == pytest.approx([0.0, LR / 2, LR])


def test_constant_is_a_float_without_warmup_and_ramps_with_one() -> None:
    assert build_schedule(ScheduleSpec(name="constant"), LR, STEPS_PER_EPOCH, EPOCHS) == LR
    got = rates({"name": "constant", "warmup_epochs": 1}, [0, 5, 10, 50, 100])
    assert got == pytest.approx([0.0, LR / 2, LR, LR, LR])


def test_step_multiplies_by_gamma_at_each_milestone_after_warmup() -> None:
    schedule = {"name": "step", "warmup_epochs": 1, "milestones": [3, 6], "gamma": 0.1}
    got = rates(schedule, [0, 5, 10, 29, 30, 50, 59, 60, 100])
    expected = [0.0, LR / 2, LR, LR, LR * 0.1, LR * 0.1, LR * 0.1, LR * 0.01, LR * 0.01]
    assert got == pytest.approx(expected, rel=1e-6)


def test_one_cycle_climbs_from_lr_over_div_factor_then_anneals_to_final() -> None:
    # pct_start 0.3 of 100 steps: warmup to step 30; cosine over 70 steps, midpoint at 65
    final = LR / 1e4
    got = rates({"name": "one_cycle"}, [0, 15, 30, 65, 100, 130])
    start = LR / 25
    expected = [start, (start + LR) / 2, LR, (LR + final) / 2, final, final]
    assert got == pytest.approx(expected, rel=1e-5)


def test_one_cycle_takes_warmup_epochs_over_pct_start() -> None:
    got = rates({"name": "one_cycle", "warmup_epochs": 1, "div_factor": 10}, [0, 5, 10, 55])
    assert got == pytest.approx([LR / 10, (LR / 10 + LR) / 2, LR, (LR + LR / 1e4) / 2], rel=1e-5)


@pytest.mark.parametrize(
    "schedule",
    [
        WarmupStepDecay(0.1, warmup_steps=10, boundaries=[30, 60], gamma=0.5),
        OneCycle(0.1, warmup_steps=30, total_steps=100, start_lr=0.004, final_lr=1e-5),
    ],
)
def test_schedules_round_trip_through_keras_serialization(schedule: Any) -> None:
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert type(restored) is type(schedule) and restored.get_config() == schedule.get_config()
    for step in (0, 15, 45, 99):
        assert float(restored(step)) == float(schedule(step))


def test_recipe_schedule_names_are_the_registry() -> None:
    assert ScheduleSpec.model_json_schema()["properties"]["name"]["enum"] == SCHEDULES.names()


@pytest.mark.parametrize(
    ("name", "epochs", "expected"),
    [("cosine", 10, 1.0), ("constant", 10, 0.0), ("step", 10, 0.0), ("one_cycle", 20, 6.0)],
)
def test_warmup_default_depends_on_the_schedule(name: str, epochs: int, expected: float) -> None:
    extra = {"milestones": [5]} if name == "step" else {}
    assert ScheduleSpec(name=name, **extra).resolved_warmup_epochs(epochs) == expected  # type: ignore[arg-type]


def test_shipped_recipes_keep_their_schedule(quickstart: Any) -> None:
    recipe = load_recipe(quickstart)
    built = build_schedule(recipe.train.schedule, 3e-3, 10, recipe.train.epochs)
    assert isinstance(built, keras.optimizers.schedules.CosineDecay)
    assert built.warmup_steps == 10 and built.decay_steps == 10 * recipe.train.epochs - 10


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"epochs": 3, "schedule": {"name": "constant", "warmup_epochs": 3}}, r"warmup_epochs"),
        ({"schedule": {"name": "step"}}, r"step needs train\.schedule\.milestones"),
        ({"schedule": {"name": "step", "milestones": [6, 3]}}, r"\[6, 3\] must be increasing"),
        (
            {"schedule": {"name": "step", "milestones": [0, 3], "warmup_epochs": 1}},
            r"between the end of the warmup \(epoch 1\.0\) and train\.epochs \(10\)",
        ),
        ({"schedule": {"name": "step", "milestones": [10]}}, r"and train\.epochs \(10\)"),
        ({"schedule": {"name": "cosine", "milestones": [3]}}, r"milestones applies to .* step"),
        ({"schedule": {"name": "step", "milestones": [3], "div_factor": 5}}, r"div_factor"),
        ({"optimizer": {"name": "adamw", "momentum": 0.8}}, r"momentum applies to .* sgd"),
        ({"optimizer": {"grad_accum": 0}}, r"`train\.optimizer\.grad_accum` = 0"),
    ],
)
def test_bad_schedule_and_optimizer_options_are_recipe_errors(
    train: dict[str, Any], message: str
) -> None:
    with pytest.raises(RecipeError, match=message):
        validate_recipe({"name": "x", "train": train})


# --- optimizers -------------------------------------------------------------------------


def _spec(**optimizer: Any) -> TrainSpec:
    return TrainSpec.model_validate(
        {"epochs": 2, "optimizer": optimizer, "schedule": {"name": "constant"}}
    )


def test_sgd_gets_momentum_nesterov_decay_clipping_ema_and_accumulation() -> None:
    spec = _spec(name="sgd", lr=0.1, weight_decay=5e-4, clip_norm=1.0, ema=0.99, grad_accum=4)
    optimizer = build_optimizer(spec, steps_per_epoch=10)
    assert isinstance(optimizer, LayerwiseSGD)
    assert (optimizer.momentum, optimizer.nesterov) == (0.9, True)
    assert (optimizer.weight_decay, optimizer.clipnorm) == (5e-4, 1.0)
    assert optimizer.use_ema and optimizer.ema_momentum == 0.99
    assert optimizer.gradient_accumulation_steps == 4


def test_adamw_stays_the_default_without_accumulation() -> None:
    optimizer = build_optimizer(_spec(), steps_per_epoch=10)
    assert isinstance(optimizer, LayerwiseAdamW)
    assert optimizer.gradient_accumulation_steps is None and not optimizer.use_ema


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_weight_decay_skips_batchnorm_and_biases(name: str) -> None:
    """With zero gradients only decay moves weights: the kernel shrinks, the rest stay."""
    optimizer = build_optimizer(_spec(name=name, lr=0.1, weight_decay=0.5), steps_per_epoch=10)
    kernel, bias, gamma, beta = (
        keras.Variable(np.ones(3, np.float32), name=n) for n in ("kernel", "bias", "gamma", "beta")
    )
    zeros = keras.ops.zeros(3)
    optimizer.apply([zeros] * 4, [kernel, bias, gamma, beta])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kernel), 1 - 0.1 * 0.5, rtol=1e-6)
    for untouched in (bias, gamma, beta):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(untouched), 1.0)


def test_sgd_steps_scaled_variables_at_the_scaled_rate() -> None:
    """Same gradient, same momentum: the backbone's first step is lr_scale times the head's."""
    backbone = keras.Variable(np.zeros(4, np.float32), name="kernel")
    head = keras.Variable(np.zeros(4, np.float32), name="bias")
    optimizer = LayerwiseSGD(
        scaled_variables={backbone.path}, lr_scale=0.1, learning_rate=0.1, momentum=0.9,
        nesterov=True,
    )  # fmt: skip
    ones = keras.ops.ones(4)
    optimizer.apply([ones, ones], [backbone, head])
    head_step = keras.ops.convert_to_numpy(head)
    # Nesterov's first step: v = -lr g; w += momentum v - lr g = -(1 + momentum) lr g
    np.testing.assert_allclose(head_step, -1.9 * 0.1, rtol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(backbone), head_step * 0.1, rtol=1e-6)
    restored = LayerwiseSGD.from_config(optimizer.get_config())
    assert (restored.lr_scale, restored.nesterov) == (0.1, True)


def test_accumulation_updates_every_n_batches_and_the_schedule_counts_batches() -> None:
    spec = TrainSpec.model_validate(
        {"epochs": 4, "optimizer": {"name": "sgd", "grad_accum": 2, "weight_decay": 0.0}}
    )
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="logits")])
    compile_model(model, spec, steps_per_epoch=10, initial_epoch=2)
    optimizer = model.optimizer
    # Phase two starts at batch 20 (mid-schedule), which is update 10.
    assert int(optimizer.iterations) == 10
    expected = build_schedule(spec.schedule, spec.optimizer.lr, 10, 4)(20)
    assert float(optimizer.learning_rate) == pytest.approx(float(expected))
    kernel = model.trainable_variables[0]
    before = keras.ops.convert_to_numpy(kernel).copy()
    gradients = [keras.ops.ones(v.shape) for v in model.trainable_variables]
    optimizer.apply(gradients, model.trainable_variables)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(kernel), before)  # accumulating
    optimizer.apply(gradients, model.trainable_variables)
    assert not np.allclose(keras.ops.convert_to_numpy(kernel), before)  # applied on batch 2
    assert int(optimizer.iterations) == 11


def test_schedule_value_is_finite_at_every_step_of_a_run() -> None:
    for name, extra in [("cosine", {}), ("step", {"milestones": [4]}), ("one_cycle", {})]:
        values = rates({"name": name, **extra}, list(range(0, 101, 7)))
        assert all(math.isfinite(v) and 0.0 <= v <= LR * (1 + 1e-6) for v in values), name
