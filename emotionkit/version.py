"""The package version: one place, read by pyproject.toml, `emotionkit.__version__` and the
exported models' metadata (a leaf module, so no stage imports the package root for it)."""

__version__ = "0.1.0"
