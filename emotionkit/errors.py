"""Errors a user can act on.

Every error that comes from bad input (a recipe field, a file, a command-line value) is an
`EmotionkitError`: the CLI prints its one-paragraph message and exits with code 2, without a
traceback unless `--debug` is given.
"""

from __future__ import annotations


class EmotionkitError(Exception):
    """Bad input from the user: the message names the field or file and what to do."""


class RecipeError(EmotionkitError):
    """A recipe (YAML file or override) that does not validate."""


class DataError(EmotionkitError):
    """A data source that cannot be read as the recipe describes it."""


class ExportError(EmotionkitError):
    """An export whose parity check failed or whose converter refused the model."""


class ModelError(EmotionkitError):
    """A model option that cannot be applied: a weights file that is missing or does not
    fit (`model.weights`), a freeze pattern that matches no layer (`model.freeze`)."""
