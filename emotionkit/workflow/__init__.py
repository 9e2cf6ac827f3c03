"""The train workflow: recipe -> runtime -> data -> model -> fit -> evaluate -> export.

Each stage is one call with the part of the recipe it needs; this package only wires them
and records what happened in the run directory. It is what `emotionkit train` runs.

- `run`: `train` and `resume`, read top to bottom: the runtime, the run directory, the
  stages in order;
- `stages`: what the run records around each stage (data summary and split, the model to
  train, fresh or from a backup, the best checkpoint's scores), and `describe_model` for
  `emotionkit model summary`.

Example:
    >>> from emotionkit import load_recipe, workflow
    >>> result = workflow.train(load_recipe("recipes/quickstart.yaml"))  # doctest: +SKIP
"""

from __future__ import annotations

from emotionkit.workflow.run import TrainingFailedError, TrainResult, resume, train
from emotionkit.workflow.stages import describe_model

__all__ = ["TrainResult", "TrainingFailedError", "describe_model", "resume", "train"]
