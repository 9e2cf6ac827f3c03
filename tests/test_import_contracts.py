"""The import contracts of pyproject.toml (`lint-imports`, run by `nox -s lint`) can fail.

The contracts are copied onto a throwaway package, `demo_emotionkit`, that holds an empty
module for every module they name: the clean copy keeps them all, and one bad import breaks
exactly the contract it should, with the import chain in the report. A contract that can
no longer fail (a misspelt module, a type that checks nothing) fails here instead of
passing silently. On the real package only what does not move with work in progress is
asserted: the configuration is valid and predict/serve stay light.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

importlinter_api = pytest.importorskip("importlinter.api")

DEMO = "demo_emotionkit"
# What the `lint-imports` script runs, here with this interpreter (no PATH lookup).
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"


def lint_imports(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`lint-imports --no-cache --no-logo ARGS` in `cwd` (which it puts on sys.path)."""
    command = [sys.executable, "-c", LINT_IMPORTS, "--no-cache", "--no-logo", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)


def renamed(value: Any) -> Any:
    """`value` with every `emotionkit` module name moved under the demo package."""
    if isinstance(value, list):
        return [renamed(item) for item in value]
    return re.sub(r"\bemotionkit\b", DEMO, value) if isinstance(value, str) else value


def ini_value(value: Any) -> str:
    return "".join(f"\n    {item}" for item in value) if isinstance(value, list) else str(value)


def write_demo_config(path: Path) -> list[dict[str, Any]]:
    """pyproject.toml's contracts, renamed onto the demo package, as an INI file at `path`."""
    config = importlinter_api.read_configuration(str(REPO / "pyproject.toml"))
    contracts = [
        {key: renamed(value) for key, value in contract.items()}
        for contract in config["contracts_options"]
    ]
    session = {key: renamed(value) for key, value in config["session_options"].items()}
    lines = ["[importlinter]", *(f"{key} = {ini_value(v)}" for key, v in session.items())]
    for contract in contracts:
        lines += ["", f"[importlinter:contract:{contract['id']}]"]
        lines += [f"{key} = {ini_value(v)}" for key, v in contract.items() if key != "id"]
    path.write_text("\n".join(lines) + "\n")
    return contracts


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """An empty package per internal module the contracts name, and the config beside them."""
    contracts = write_demo_config(tmp_path / ".importlinter")
    fields = ("source_modules", "forbidden_modules", "ancestors")
    names = {name for c in contracts for f in fields for name in c.get(f, [])}
    for name in {name for name in names if name.split(".")[0] == DEMO}:
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            init = tmp_path.joinpath(*parts[:depth], "__init__.py")
            init.parent.mkdir(exist_ok=True)
            init.touch()
    return tmp_path


def write_module(root: Path, name: str, source: str) -> None:
    path = root.joinpath(*name.split(".")).with_suffix(".py")
    path.write_text(source)


def test_the_clean_demo_package_keeps_every_contract(demo: Path) -> None:
    result = lint_imports(demo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Contracts: (\d+) kept, 0 broken", result.stdout)


# One bad import per contract, written as a lazy import inside a function where that is
# how the real code would slip: lazy imports count as much as module-level ones.
VIOLATIONS = {
    "light-inference": (
        {
            f"{DEMO}.serve.app": f"def load():\n    from {DEMO}.export import load_model\n",
            f"{DEMO}.export.load": "import keras\n",
            f"{DEMO}.export.__init__": f"from {DEMO}.export.load import keras\n",
        },
        [
            f"{DEMO}.serve is not allowed to import keras:",
            f"{DEMO}.serve.app -> {DEMO}.export (l.2)",
            f"{DEMO}.export.load -> keras (l.1)",
        ],
    ),
    "stages-below-workflow": (
        {
            f"{DEMO}.__init__": f"def __getattr__(name):\n    from {DEMO} import workflow\n",
            f"{DEMO}.export.formats": f"from {DEMO} import __version__\n",
        },
        [
            f"{DEMO}.export is not allowed to import {DEMO}.workflow:",
            f"{DEMO}.export.formats -> {DEMO} (l.1)",
            f"{DEMO} -> {DEMO}.workflow (l.2)",
        ],
    ),
    "acyclic": (
        {
            f"{DEMO}.training.callbacks": f"def log():\n    from {DEMO}.evaluate import metrics\n",
            f"{DEMO}.evaluate.targets": f"import {DEMO}.training.callbacks\n",
        },
        [f"No cycles are allowed in {DEMO}.", "It could be made acyclic by removing 1 dep"],
    ),
}


@pytest.mark.parametrize("contract", sorted(VIOLATIONS))
def test_one_bad_import_breaks_its_contract(demo: Path, contract: str) -> None:
    modules, expected_lines = VIOLATIONS[contract]
    for name, source in modules.items():
        write_module(demo, name, source)
    result = lint_imports(demo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"Contracts: \d+ kept, 1 broken", result.stdout), result.stdout
    broken = result.stdout.split("Broken contracts", 1)[1]
    for line in expected_lines:
        assert line in broken, result.stdout


def test_the_real_configuration_is_valid_and_inference_stays_light() -> None:
    """Every contract runs on the package (no missing module, no bad option); the others may
    be broken while a refactor is under way, so only `light-inference` must be kept."""
    result = lint_imports(REPO)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    config = importlinter_api.read_configuration(str(REPO / "pyproject.toml"))
    for contract in config["contracts_options"]:
        name = r"\s+".join(map(re.escape, contract["name"].split()))  # the report wraps lines
        assert re.search(rf"{name}\s+(KEPT|BROKEN)", result.stdout), result.stdout
    assert "light-inference" in [c["id"] for c in config["contracts_options"]]
    kept = lint_imports(REPO, "--contract", "light-inference")
    assert kept.returncode == 0, kept.stdout
