"""`emotionkit tune`: an Optuna study over a recipe, stored in SQLite so that it resumes.

Each trial is a normal run directory, `tunes/<name>/trials/<number>/<recipe>/<timestamp>/`,
trained from the recipe with the trial's values as overrides; its score is the best epoch's
value of the tune file's metric, reported to Optuna after every epoch so that the pruner can
stop it (its manifest then says `pruned`). The study lives in `tunes/<name>/study.db`: the
same command run again continues it until it holds `trials` finished trials, re-running a
trial that was cut off mid-way. At the end `best_recipe.yaml` is the best trial's resolved
recipe, ready for `emotionkit train`, and `tune.json` lists every trial.

Optuna is an optional extra (`pip install 'emotionkit[tune]'`), imported when a study starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from emotionkit.errors import EmotionkitError
from emotionkit.experiments.tune_spec import TuneFile
from emotionkit.recipe import load_recipe
from emotionkit.runs import update_manifest, write_json

BEST_RECIPE = "best_recipe.yaml"


@dataclass
class TuneResult:
    """The study's folder, its finished trials and the best one (None if none completed)."""

    tune_dir: Path
    trials: list[dict[str, Any]]
    best: dict[str, Any] | None


def require_optuna() -> Any:
    """Import Optuna, or say which extra installs it."""
    try:
        import optuna
    except ImportError:
        raise EmotionkitError(
            "emotionkit tune needs Optuna, which is not installed: pip install 'emotionkit[tune]'"
        ) from None
    return optuna


def check_space(tune: TuneFile, recipe: Path) -> None:
    """Load the recipe at both ends of every dimension before any trial runs.

    Raises:
        RecipeError: a key that is not in the recipe, or a bound it refuses, named.
    """
    for key, param in tune.space.items():
        for value in param.bounds():
            try:
                load_recipe(recipe, tune.trial_overrides({key: value}))
            except EmotionkitError as error:
                raise type(error)(f"Tune space `{key}` = {value!r}: {error}") from None


def run_tune(
    tune: TuneFile,
    recipe: Path,
    out: str | Path | None = None,
    *,
    name: str = "study",
    trials: int | None = None,
    console: Console | None = None,
    callbacks: list[Any] | None = None,
) -> TuneResult:
    """Run (or continue) the study until it holds `trials` finished trials.

    Args:
        tune: the tune file (`read_tune_file`).
        recipe: its recipe file.
        out: the study's folder; default `tunes/<name>`.
        name: the study's name when the tune file has none.
        trials: overrides the tune file's `trials`.
        console: where progress goes.
        callbacks: extra Keras callbacks for every trial's `fit`.

    Returns:
        Every finished trial, and the best, whose recipe is in `best_recipe.yaml`.
    """
    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    console = console or Console()
    check_space(tune, recipe)
    study_name = tune.name or name
    tune_dir = Path(out) if out is not None else Path("tunes") / study_name
    tune_dir.mkdir(parents=True, exist_ok=True)
    seed = load_recipe(recipe, tune.overrides).seed
    study = _open_study(optuna, tune, study_name, tune_dir, seed)
    retried = _requeue_cut_off_trials(optuna, study)
    wanted = trials or tune.trials
    remaining = max(wanted - len(_finished(optuna, study)), 0)
    console.print(
        f"study {study_name} ({tune_dir / 'study.db'}): {len(_finished(optuna, study))} "
        f"finished trials, {remaining} to run" + (f", {retried} re-run" if retried else ""),
        highlight=False,
    )
    objective = _objective(optuna, tune, recipe, tune_dir, console, callbacks)
    from emotionkit.workflow import TrainingFailedError

    study.optimize(objective, n_trials=remaining, catch=(TrainingFailedError,))
    return _write_results(optuna, study, tune, tune_dir)


def _open_study(optuna: Any, tune: TuneFile, name: str, tune_dir: Path, seed: int) -> Any:
    storage = f"sqlite:///{(tune_dir / 'study.db').resolve()}"
    pruner = _pruner(optuna, tune)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        load_if_exists=True,
        direction=tune.resolved_direction,
        pruner=pruner,
    )
    # A fresh seed per start: a resumed study must not draw its first trials again.
    start_seed = (tune.sampler.seed if tune.sampler.seed is not None else seed) + len(study.trials)
    sampler = (
        optuna.samplers.TPESampler(seed=start_seed)
        if tune.sampler.name == "tpe"
        else optuna.samplers.RandomSampler(seed=start_seed)
    )
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)


def _pruner(optuna: Any, tune: TuneFile) -> Any:
    spec = tune.pruner
    if spec.name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=spec.n_startup_trials, n_warmup_steps=spec.n_warmup_steps
        )
    if spec.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    if spec.name == "threshold":
        return optuna.pruners.ThresholdPruner(
            lower=spec.lower, upper=spec.upper, n_warmup_steps=spec.n_warmup_steps
        )
    return optuna.pruners.NopPruner()


def _finished(optuna: Any, study: Any) -> list[Any]:
    """Trials that count towards `trials`: completed, pruned, or failed on their own (a
    trial failed because its process was cut off is re-run instead)."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return [
        trial
        for trial in study.trials
        if trial.state in states
        or (trial.state == optuna.trial.TrialState.FAIL and not trial.user_attrs.get("cut_off"))
    ]


def _requeue_cut_off_trials(optuna: Any, study: Any) -> int:
    """Trials cut off by Ctrl-C or SIGTERM (failed, marked `cut_off`) or by a kill (left
    `RUNNING`): their values are queued again, once, and they no longer count.

    One `emotionkit tune` per study at a time (the docs say so): any running trial found at
    the start belongs to a process that is gone.
    """
    storage = study._storage  # Optuna's documented storage API, reached through the study
    states = optuna.trial.TrialState
    for trial in study.get_trials(deepcopy=False, states=(states.RUNNING,)):
        storage.set_trial_user_attr(trial._trial_id, "cut_off", True)
        storage.set_trial_state_values(trial._trial_id, states.FAIL)
    trials = study.get_trials(deepcopy=False)
    retried = {trial.user_attrs.get("retry_of") for trial in trials}
    again = [
        trial
        for trial in trials
        if trial.state == states.FAIL
        and trial.user_attrs.get("cut_off")
        and trial.number not in retried
    ]
    for trial in again:  # a finished trial takes no new attributes: its retry names it
        study.enqueue_trial(trial.params, {"retry_of": trial.number}, skip_if_exists=False)
    return len(again)


def _objective(
    optuna: Any,
    tune: TuneFile,
    recipe: Path,
    tune_dir: Path,
    console: Console,
    callbacks: list[Any] | None,
) -> Any:
    from emotionkit import workflow
    from emotionkit.experiments.trial_pruning import TrialReport

    def objective(trial: Any) -> float:
        values = {key: param.suggest(trial, key) for key, param in tune.space.items()}
        console.rule(f"trial {trial.number}: " + " ".join(f"{k}={v}" for k, v in values.items()))
        trial_dir = tune_dir / "trials" / f"{trial.number:04d}"
        report = TrialReport(trial, tune.metric, tune.resolved_direction == "maximize")
        try:
            result = workflow.train(
                load_recipe(recipe, tune.trial_overrides(values)),
                runs_dir=trial_dir,
                console=console,
                callbacks=[report, *(callbacks or [])],
            )
        except KeyboardInterrupt:
            trial.set_user_attr("cut_off", True)  # run again when the study resumes
            raise
        except optuna.TrialPruned as pruned:
            for manifest in trial_dir.glob("*/*/manifest.json"):
                update_manifest(manifest.parent, status="pruned", error=None, pruned=str(pruned))
                trial.set_user_attr("run_dir", str(manifest.parent))
            console.print(str(pruned), highlight=False)
            raise
        trial.set_user_attr("run_dir", str(result.run_dir))
        if report.best is None:
            raise EmotionkitError(f"trial {trial.number}: {tune.metric} was never finite")
        return report.best

    return objective


def _write_results(optuna: Any, study: Any, tune: TuneFile, tune_dir: Path) -> TuneResult:
    trials = [
        {
            "number": trial.number,
            "state": trial.state.name.lower(),
            "value": trial.value,
            "params": trial.params,
            "epochs_reported": len(trial.intermediate_values),
            "run_dir": trial.user_attrs.get("run_dir"),
        }
        for trial in _finished(optuna, study)
    ]
    completed = [t for t in trials if t["state"] == "complete" and t["value"] is not None]
    best = None
    if completed:
        trial = study.best_trial
        best = next(t for t in trials if t["number"] == trial.number)
        _write_best_recipe(tune_dir, study.study_name, tune.metric, best)
    write_json(
        tune_dir / "tune.json",
        {
            "study": study.study_name,
            "storage": "study.db",
            "metric": tune.metric,
            "direction": tune.resolved_direction,
            "best": best,
            "best_recipe": BEST_RECIPE if best else None,
            "trials": trials,
        },
    )
    return TuneResult(tune_dir, trials, best)


def _write_best_recipe(tune_dir: Path, study: str, metric: str, best: dict[str, Any]) -> None:
    """The best trial's resolved recipe (its run's recipe.yaml) with where it came from."""
    run_dir = Path(best["run_dir"])
    header = [
        f"# Best trial of study {study} ({tune_dir / 'study.db'}): trial {best['number']}, "
        f"{metric} = {best['value']:.4f}",
        f"# Its run: {run_dir}; its values: {json.dumps(best['params'])}",
        f"#   emotionkit train {tune_dir / BEST_RECIPE}",
    ]
    text = (run_dir / "recipe.yaml").read_text()
    (tune_dir / BEST_RECIPE).write_text("\n".join(header) + "\n" + text)
