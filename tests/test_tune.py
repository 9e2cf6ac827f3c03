"""`emotionkit tune`: the tune file, Optuna's study in SQLite, pruning, and resuming."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from emotionkit import load_recipe
from emotionkit.errors import EmotionkitError, RecipeError
from emotionkit.experiments.tune import (
    _finished,
    _requeue_cut_off_trials,
    check_space,
    require_optuna,
    run_tune,
)
from emotionkit.experiments.tune_spec import read_tune_file
from tests.test_cli import run_cli
from tests.test_sweep import SWEEP_OVERRIDES, docs_example

TUNE_FILE = {
    "name": "tiny",
    "recipe": "quickstart",
    "metric": "val_macro_f1",
    "trials": 2,
    "sampler": {"name": "random", "seed": 0},
    "pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 0},
    # Dimensions that keep every trial's shapes: under JAX, later trials reuse the first
    # one's compiled steps (the tests' compilation cache).
    "space": {
        "train.optimizer.lr": {"type": "float", "low": 1.0e-3, "high": 1.0e-2, "log": True},
        "seed": {"type": "categorical", "choices": [1, 2, 3]},
    },
}


def write_tune_file(folder: Path, **changes: object) -> Path:
    path = folder / "tune.yaml"
    path.write_text(yaml.safe_dump({**TUNE_FILE, **changes}))
    return path


def test_tune_file_errors_name_the_field(tmp_path: Path) -> None:
    space = {"model.width": {"type": "float", "low": 0.5, "high": 0.25}}
    with pytest.raises(RecipeError, match=r"`space.model.width`: .*must be below `high`"):
        read_tune_file(write_tune_file(tmp_path, space=space))
    with pytest.raises(RecipeError, match=r"`metric`: .*validation metric"):
        read_tune_file(write_tune_file(tmp_path, metric="macro_f1"))
    with pytest.raises(RecipeError, match=r"`space.model.width`: .*choices"):
        read_tune_file(write_tune_file(tmp_path, space={"model.width": {"type": "categorical"}}))


def test_space_keys_and_bounds_are_checked_against_the_recipe(tmp_path: Path) -> None:
    space = {"train.optimizer.lrr": {"type": "float", "low": 1e-3, "high": 1e-2}}
    tune, recipe = read_tune_file(write_tune_file(tmp_path, space=space))
    with pytest.raises(RecipeError, match=r"Tune space `train.optimizer.lrr`.*Did you mean"):
        check_space(tune, recipe)
    space = {"model.width": {"type": "float", "low": 0.5, "high": 64.0}}
    tune, recipe = read_tune_file(write_tune_file(tmp_path, space=space))
    with pytest.raises(RecipeError, match=r"Tune space `model.width` = 64.0"):
        check_space(tune, recipe)


def test_the_documented_tune_file_fits_its_recipe(tmp_path: Path) -> None:
    path = tmp_path / "lr-width.yaml"
    path.write_text(docs_example("tests/test_tune.py checks this space"))
    tune, recipe = read_tune_file(path)
    check_space(tune, recipe)
    assert tune.name == "lr-width" and tune.resolved_direction == "maximize"
    assert load_recipe(recipe, tune.trial_overrides({"data.batch_size": 48})).data.batch_size == 48


def test_cli_reports_a_bad_space_key_with_exit_2(tmp_path: Path) -> None:
    space = {"train.optimizer.lrr": {"type": "float", "low": 1e-3, "high": 1e-2}}
    result = run_cli("tune", str(write_tune_file(tmp_path, space=space)), "--out", str(tmp_path))
    assert result.returncode == 2 and "train.optimizer.lrr" in result.stderr, result.stderr
    assert not (tmp_path / "study.db").exists()


def test_missing_optuna_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError
    with pytest.raises(EmotionkitError, match=r"pip install 'emotionkit\[tune\]'"):
        require_optuna()


def test_a_trial_cut_off_by_a_kill_is_run_again(tmp_path: Path) -> None:
    optuna = require_optuna()
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 0.5)
    interrupted = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    interrupted.set_user_attr("cut_off", True)  # what the objective does on Ctrl-C
    study.tell(interrupted, state=optuna.trial.TrialState.FAIL)
    killed = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})  # left RUNNING
    study = optuna.load_study(study_name="s", storage=storage)  # a new process, later
    assert _requeue_cut_off_trials(optuna, study) == 2
    assert _requeue_cut_off_trials(optuna, study) == 0  # queued once only
    assert [t.number for t in _finished(optuna, study)] == [0]
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [interrupted.params, killed.params]


@pytest.mark.slow
def test_a_pruned_tune_completes_offline_and_resumes_from_sqlite(tmp_path: Path) -> None:
    out = tmp_path / "study"
    tune, recipe = read_tune_file(write_tune_file(tmp_path, overrides=SWEEP_OVERRIDES))
    first = run_tune(tune, recipe, out)
    assert [(t["number"], t["state"], t["epochs_reported"]) for t in first.trials] == [
        (0, "complete", 2),
        (1, "complete", 2),
    ]
    assert first.best is not None
    best = load_recipe(out / "best_recipe.yaml")
    assert best.train.optimizer.lr == first.best["params"]["train.optimizer.lr"]
    assert best.seed == first.best["params"]["seed"]

    # Run again with 4 trials: the study goes on from study.db. A threshold no score reaches
    # prunes the new trials after their first epoch, whatever they draw.
    pruner = {"name": "threshold", "lower": 2.0, "n_warmup_steps": 0}
    changed = write_tune_file(tmp_path, overrides=SWEEP_OVERRIDES, pruner=pruner)
    tune, recipe = read_tune_file(changed)
    second = run_tune(tune, recipe, out, trials=4)
    assert second.trials[:2] == first.trials
    assert [(t["state"], t["epochs_reported"]) for t in second.trials[2:]] == [("pruned", 1)] * 2
    for trial in second.trials[2:]:
        manifest = json.loads((Path(trial["run_dir"]) / "manifest.json").read_text())
        assert manifest["status"] == "pruned" and "after epoch 1" in manifest["pruned"]
    assert second.best == first.best
    summary = json.loads((out / "tune.json").read_text())
    assert summary["storage"] == "study.db" and len(summary["trials"]) == 4
    optuna = require_optuna()
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{out / 'study.db'}")
    assert len(study.trials) == 4
