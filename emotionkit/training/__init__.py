"""Training stage: compile the model from the recipe's `train` section and run `fit`.

`compile_model` and `fit_model` import Keras, so they load on first use: the recipe imports
`training.spec` and `training.registries`, and validating a recipe must not load a backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["compile_model", "fit_model"]

if TYPE_CHECKING:
    from emotionkit.training.fit import compile_model, fit_model


def __getattr__(name: str) -> Any:
    if name in __all__:
        from emotionkit.training import fit

        return getattr(fit, name)
    raise AttributeError(f"module 'emotionkit.training' has no attribute {name!r}")
