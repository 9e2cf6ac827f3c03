"""Training stage: compile the model from the recipe's `train` section and run `fit`."""

from __future__ import annotations

from emotionkit.training.fit import compile_model, fit_model

__all__ = ["compile_model", "fit_model"]
