"""emotionkit: train, evaluate and ship facial-expression classifiers with Keras 3.

The package import is light: Keras, TensorFlow and JAX are imported only by the functions
that need them, so `emotionkit --help` is instant and the backend can still be chosen.

Example:
    >>> import emotionkit
    >>> recipe = emotionkit.load_recipe("recipes/quickstart.yaml", ["train.epochs=1"])
    >>> result = emotionkit.train(recipe)  # doctest: +SKIP
    >>> result.run_dir  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emotionkit.errors import DataError, EmotionkitError, ExportError, RecipeError
from emotionkit.recipe import Recipe, load_recipe
from emotionkit.version import __version__

__all__ = [
    "DataError",
    "EmotionkitError",
    "ExportError",
    "Predictor",
    "Recipe",
    "RecipeError",
    "__version__",
    "export_run",
    "load_recipe",
    "resume",
    "train",
]

if TYPE_CHECKING:
    from emotionkit.export import export_run
    from emotionkit.predict import Predictor
    from emotionkit.workflow import resume, train


def __getattr__(name: str) -> Any:
    """Import the heavy entry points on first use, so `import emotionkit` stays instant."""
    if name in ("train", "resume"):
        from emotionkit import workflow

        return getattr(workflow, name)
    if name == "export_run":
        from emotionkit.export import export_run

        return export_run
    if name == "Predictor":  # onnxruntime + OpenCV only: no TensorFlow, Keras or JAX
        from emotionkit.predict import Predictor

        return Predictor
    raise AttributeError(f"module 'emotionkit' has no attribute {name!r}")
