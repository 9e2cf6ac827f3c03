"""Test automation: `nox` runs lint, typecheck and the tests under both Keras backends.

Each session installs from pyproject.toml into its own virtualenv, so a clean clone needs only
`pip install nox && nox`. Extra arguments after `--` go to the tool, e.g.
`nox -s "tests(backend='jax')" -- -k recipe`.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_missing_interpreters = True
# uv (when installed, e.g. `pip install nox uv`) builds the two ~2 GB test environments in
# seconds from its cache instead of ~2 minutes each with pip; plain virtualenv otherwise.
nox.options.default_venv_backend = "uv|virtualenv"

PYPROJECT = nox.project.load_toml("pyproject.toml")
# Raise as coverage grows; measured per backend (the JAX run exports through a child process).
COVERAGE_FLOOR = 85


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint + format check."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".", *session.posargs)
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy on the package (third-party ML stacks are typed as Any)."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "typecheck"))
    session.run("mypy", "emotionkit", *session.posargs)


@nox.session
@nox.parametrize("backend", ["tensorflow", "jax"])
def tests(session: nox.Session, backend: str) -> None:
    """pytest with coverage under one Keras backend."""
    session.install("-e", ".[jax]", *nox.project.dependency_groups(PYPROJECT, "test"))
    session.run(
        "pytest",
        "--cov=emotionkit",
        "--cov-report=term-missing:skip-covered",
        f"--cov-fail-under={COVERAGE_FLOOR}",
        *session.posargs,
        env={"KERAS_BACKEND": backend},
    )
