"""The tune file: a recipe, the search space over its keys, the objective and the study.

    # emotionkit tune tune.yaml
    name: quickstart-lr           # the study; its folder is tunes/<name> (default: file stem)
    recipe: quickstart            # a packaged recipe, or a file relative to this one
    overrides: [train.epochs=6]   # fixed for every trial
    metric: val_macro_f1          # any validation metric history.csv logs per epoch
    trials: 20
    pruner: {name: median, n_warmup_steps: 2}
    space:
      train.optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      train.optimizer.weight_decay: {type: float, low: 0.0, high: 0.1}
      model.width: {type: categorical, choices: [0.125, 0.25]}
      data.batch_size: {type: int, low: 16, high: 64, step: 16}

Every key of the space is a dotted recipe key: each trial is the recipe with the space's
values as `key=value` overrides, so a key or a bound that the recipe refuses is an error
before the first trial.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from emotionkit.errors import RecipeError
from emotionkit.sections import Section


class ParamSpec(Section):
    """One search dimension: a float or int range, or a list of choices."""

    type: Literal["float", "int", "categorical"] = Field(
        description="`float` and `int` draw from [`low`, `high`]; `categorical` from `choices`."
    )
    low: float | None = Field(None, description="Smallest value (float, int).")
    high: float | None = Field(None, description="Largest value (float, int).")
    log: bool = Field(False, description="Draw on a log scale (float, int; `low` > 0).")
    step: float | None = Field(None, description="Draw only `low + k * step` (float, int).")
    choices: list[Any] | None = Field(None, description="The values (categorical).")

    @model_validator(mode="after")
    def _fields_match_type(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices or self.low is not None or self.high is not None:
                raise ValueError("categorical takes a non-empty `choices` list (no low/high)")
            return self
        if self.low is None or self.high is None or self.choices is not None:
            raise ValueError(f"{self.type} takes `low` and `high` (no choices)")
        if self.low >= self.high:
            raise ValueError(f"`low` ({self.low}) must be below `high` ({self.high})")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("`log` needs `low` > 0 and no `step`")
        return self

    def bounds(self) -> list[Any]:
        """The values at both ends (first and last choice), to validate before trials run."""
        if self.choices is not None:
            return [self.choices[0], self.choices[-1]]
        low, high = self._range()
        return [int(low), int(high)] if self.type == "int" else [low, high]

    def suggest(self, trial: Any, key: str) -> Any:
        """Optuna's draw for this dimension on `trial` (named by the dotted key)."""
        if self.choices is not None:
            return trial.suggest_categorical(key, self.choices)
        low, high = self._range()
        if self.type == "int":
            step = int(self.step or 1)
            return trial.suggest_int(key, int(low), int(high), step=step, log=self.log)
        return trial.suggest_float(key, low, high, step=self.step, log=self.log)

    def _range(self) -> tuple[float, float]:
        assert self.low is not None and self.high is not None  # the validator checked
        return self.low, self.high


class SamplerSpec(Section):
    """How Optuna proposes the next trial."""

    name: Literal["tpe", "random"] = Field(
        "tpe", description="`tpe` (Tree-structured Parzen Estimator) or `random`."
    )
    seed: int | None = Field(
        None,
        description="Sampler seed; null: the recipe's `seed`. A resumed study goes on "
        "from seed + the number of trials so far, so it does not repeat a draw.",
    )


class PrunerSpec(Section):
    """When a trial stops early, judged on the metric after each epoch."""

    name: Literal["median", "hyperband", "threshold", "none"] = Field(
        "median",
        description="`median`: stop a trial whose metric is worse than the median of earlier "
        "trials at the same epoch; `hyperband`; `threshold`: stop outside [`lower`, "
        "`upper`]; `none`.",
    )
    n_startup_trials: int = Field(
        2, ge=0, description="`median`: trials that always run to the end first."
    )
    n_warmup_steps: int = Field(
        1, ge=0, description="`median`, `threshold`: epochs a trial always trains."
    )
    lower: float | None = Field(None, description="`threshold`: stop below this value.")
    upper: float | None = Field(None, description="`threshold`: stop above this value.")


class TuneFile(Section):
    """A hyperparameter search: `emotionkit tune TUNE.yaml`."""

    name: str | None = Field(None, description="The study's name; default: the file's stem.")
    recipe: str = Field(description="A recipe file (relative to this file) or packaged name.")
    overrides: list[str] = Field(default_factory=list, description="Fixed for every trial.")
    metric: str = Field(
        "val_macro_f1",
        description="The objective: a validation metric as history.csv logs it per epoch "
        "(val_macro_f1, val_accuracy, val_loss, val_top2_accuracy, ...); a trial scores its "
        "best epoch. Also `train.monitor` when it is one of that field's choices.",
    )
    direction: Literal["maximize", "minimize"] | None = Field(
        None, description="null: minimize a metric ending in `loss`, maximize any other."
    )
    trials: int = Field(20, ge=1, description="Trials the study holds when done (resumed too).")
    sampler: SamplerSpec = Field(default_factory=lambda: SamplerSpec())
    pruner: PrunerSpec = Field(default_factory=lambda: PrunerSpec())
    space: dict[str, ParamSpec] = Field(min_length=1, description="Dotted recipe key -> range.")

    @field_validator("metric")
    @classmethod
    def _metric_is_validation(cls, metric: str) -> str:
        if not metric.startswith("val_"):
            raise ValueError(
                "the objective is a validation metric as history.csv names it, e.g. "
                f"val_{metric} (val_macro_f1, val_accuracy, val_loss)"
            )
        return metric

    @property
    def resolved_direction(self) -> str:
        return self.direction or ("minimize" if self.metric.endswith("loss") else "maximize")

    def trial_overrides(self, values: dict[str, Any]) -> list[str]:
        """The fixed overrides, then `train.monitor` (when the metric can be one), then the
        trial's values (as JSON, which YAML reads back as the same value)."""
        monitor = ["val_macro_f1", "val_accuracy", "val_loss"]
        pick = [f"train.monitor={self.metric}"] if self.metric in monitor else []
        drawn = [f"{key}={json.dumps(value)}" for key, value in values.items()]
        return [*self.overrides, *pick, *drawn]


def read_tune_file(path: str | Path) -> tuple[TuneFile, Path]:
    """The tune file, validated, and its recipe's path.

    Raises:
        RecipeError: a missing or invalid file, naming the field.
    """
    from emotionkit.recipe import resolve_recipe

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
        tune = TuneFile.model_validate(raw)
    except (OSError, yaml.YAMLError) as error:
        raise RecipeError(f"Tune file {path}: {error}") from None
    except ValidationError as error:
        problems = "; ".join(
            f"`{'.'.join(map(str, item['loc']))}`: {item['msg'].removeprefix('Value error, ')}"
            for item in error.errors()
        )
        raise RecipeError(f"Tune file {path}: {problems}.") from None
    beside = path.parent / tune.recipe
    return tune, resolve_recipe(beside if beside.is_file() else tune.recipe)
