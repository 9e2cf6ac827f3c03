"""The commands and Python the docs show are ones that work.

In the default test run (seconds):

- every `emotionkit ...` line of a shell block, and every inline `emotionkit ...` code span
  without an ellipsis, parses against the real CLI (its commands, options and arguments, as
  Click reads them; nothing is run);
- every such command that names a recipe resolves it with its overrides (an override of a
  key that does not exist, or of a value that fails validation, fails here) and each of its
  overrides changes what would be trained (an override that sets a key to the value it
  already has, or `model.depth` on a recipe whose `model.stage_blocks` decides the depth,
  fails here);
- the instant commands (`--help`, `recipe ...`, `models list`, `runs list`) run, in a
  scratch folder, and exit 0;
- every Python block compiles.

With `EMOTIONKIT_DOCS_HEAVY=1` (the `nox -s docs` session), the newcomer's path runs: the
shell and Python blocks of README.md and docs/getting-started.md, on the tests' tiny settings
(each `emotionkit train` gets the tiny overrides appended, `RUN_DIR` is a tiny trained run,
`photos/` and `face.jpg` are test images). What cannot run unattended (the install lines,
`serve`, `curl`, `--resume` of a completed run) is listed in `HEAVY_SKIPS` with the reason.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.test_docs_errors import Result, console_blocks, run_all, split_command
from tests.test_docs_markdown import (
    DOCS,
    PAGES,
    REPO,
    code_spans,
    fenced_blocks,
    paragraphs,
    relative,
    shell_commands,
)

SHELL = {"bash", "sh", "shell", "console", ""}
RECIPE_COMMANDS = {("train",), ("recipe", "show"), ("model", "summary"), ("data", "inspect")}
INSTANT = {("recipe", "list"), ("recipe", "show"), ("recipe", "schema"), ("recipe", "copy")}
INSTANT |= {("models", "list"), ("runs", "list")}
HEAVY = os.environ.get("EMOTIONKIT_DOCS_HEAVY") == "1"
NEWCOMER_PAGES = [REPO / "README.md", DOCS / "getting-started.md"]


@dataclass(frozen=True)
class Command:
    where: str
    line: str  # the whole shell line, as the page shows it
    args: tuple[str, ...]  # the words after `emotionkit`
    env: tuple[tuple[str, str], ...] = ()
    inline: bool = False  # an inline code span, not a line of a shell block

    @property
    def subcommand(self) -> tuple[str, ...]:
        words = [word for word in self.args if word not in ("--debug", "--verbose")]
        if words[:1] in (["recipe"], ["model"], ["data"], ["models"], ["runs"]):
            return tuple(words[:2])
        return tuple(words[:1])


def emotionkit_words(line: str) -> tuple[dict[str, str], list[str]] | None:
    """The environment and the words after `emotionkit` of a shell line, if it runs it."""
    try:
        words = shlex.split(line.split(" > ")[0].split(" | ")[0])
    except ValueError:
        return None
    env: dict[str, str] = {}
    for index, word in enumerate(words):
        if word == "emotionkit":
            return env, words[index + 1 :]
        if re.match(r"^[A-Z_][A-Z0-9_]*=", word):
            name, _, value = word.partition("=")
            env[name] = value
    return None


def page_commands(page: Path) -> list[Command]:
    """Every `emotionkit` command of a page: shell-block lines and inline code spans."""
    text = page.read_text()
    commands: list[Command] = []
    for block in fenced_blocks(text, page):
        if block.info not in SHELL or "docs-check: skip" in block.comment:
            continue
        for line in shell_commands(block.text):
            found = emotionkit_words(line)
            if found:
                env, args = found
                commands.append(Command(block.where, line, tuple(args), tuple(env.items())))
    for number, paragraph in paragraphs(text):
        for span in code_spans(paragraph):
            if span.startswith("emotionkit ") and not re.search(r"\.\.\.|…|\[[A-Z]", span):
                found = emotionkit_words(span)
                args = tuple(found[1]) if found else ()
                command = Command(f"{relative(page)}:{number}", span, args, inline=True)
                if found and len(command.args) > len(command.subcommand):  # not a bare name
                    commands.append(command)
    return commands


def all_commands() -> list[Command]:
    return [command for page in PAGES for command in page_commands(page)]


def error_demos() -> set[str]:
    """Commands shown failing on purpose (console blocks whose output is an error)."""
    return {
        block.command
        for page in PAGES
        for block in console_blocks(page)
        if any(line.startswith("error: ") for line in block.expected)
    }


# --- parsing against the CLI ------------------------------------------------------------------


@cache
def cli_command() -> Any:
    """The Click command tree Typer builds for `emotionkit`."""
    import typer

    from emotionkit.cli import app

    return typer.main.get_command(app)


def parse_problem(args: list[str]) -> str | None:
    """Why the CLI would refuse these arguments, or None; nothing is run.

    Typer builds the Click command tree (its own vendored Click from Typer 0.2x on, hence
    the duck typing): each level parses its options and hands the rest to the subcommand.
    """
    command: Any = cli_command()
    try:
        context = command.make_context("emotionkit", list(args))
        while hasattr(command, "resolve_command"):
            rest = [*(getattr(context, "_protected_args", None) or []), *context.args]
            if not rest:
                return None  # a group alone prints its help
            name, command, rest = command.resolve_command(context, rest)
            context = command.make_context(name, rest, parent=context)
    except Exception as error:
        if type(error).__name__ == "Exit":
            return None  # --help
        if hasattr(error, "format_message"):  # a Click usage error
            return str(error.format_message())
        raise
    return None


def test_every_documented_command_parses() -> None:
    problems = []
    for command in all_commands():
        problem = parse_problem(list(command.args))
        if problem:
            problems.append(f"{command.where}: `{command.line}`: {problem}")
    assert not problems, "\n".join(problems)


def test_a_command_with_an_unknown_option_fails_to_parse() -> None:
    assert parse_problem(["predict", "model.onnx", "x.png", "--every", "5"]) is None
    assert "--evry" in (parse_problem(["predict", "model.onnx", "x.png", "--evry", "5"]) or "")
    assert parse_problem(["recipe", "shw", "quickstart"])


# --- recipes and overrides ------------------------------------------------------------------


def recipe_and_overrides(command: Command) -> tuple[str, list[str]] | None:
    """(recipe, overrides) of a command that takes a recipe, if the recipe can be found."""
    from emotionkit.recipe import packaged_recipes

    if command.subcommand not in RECIPE_COMMANDS or "--resume" in command.args:
        return None
    words = [word for word in command.args if word not in ("--debug", "--verbose")]
    positional: list[str] = []
    skip = False
    for word in words[len(command.subcommand) :]:
        if skip:
            skip = False
        elif word.startswith("--"):
            skip = word in ("--runs-dir", "--out") and "=" not in word
        else:
            positional.append(word)
    if not positional:
        return None
    recipe = positional[0]
    if recipe in packaged_recipes():
        return recipe, positional[1:]
    if (REPO / recipe).is_file():
        return str(REPO / recipe), positional[1:]
    return None  # a placeholder: RECIPE, my_recipe.yaml


def resolved(recipe: str, overrides: list[str]) -> dict[str, Any]:
    from emotionkit.recipe import load_recipe

    return load_recipe(recipe, overrides).model_dump(mode="json")


def override_problems(recipe: str, overrides: list[str]) -> list[str]:
    """Overrides that fail, or that change nothing the run would do (a path is exempt: it
    stands for the reader's own, even where it equals the recipe's)."""
    from emotionkit.errors import EmotionkitError

    try:
        full = resolved(recipe, overrides)
    except EmotionkitError as error:
        return [str(error)]
    problems = []
    for index, override in enumerate(overrides):
        others = overrides[:index] + overrides[index + 1 :]
        try:
            without = resolved(recipe, others)
        except EmotionkitError:
            continue  # this override repairs the others (e.g. a kind switch): it matters
        if without == full and not re.match(r"^[\w.]+\.(path|data_dir)=", override):
            problems.append(f"{override} changes nothing: the recipe already says so")
        elif override.startswith("model.depth=") and full["model"].get("stage_blocks"):
            problems.append(
                f"{override} changes only the name: model.stage_blocks="
                f"{full['model']['stage_blocks']} sets the blocks (add model.stage_blocks=null)"
            )
    return problems


def test_documented_overrides_resolve_and_change_the_recipe() -> None:
    demos = error_demos()
    problems = []
    for command in all_commands():
        found = recipe_and_overrides(command)
        if found is None or command.line in demos:
            continue
        problems += [f"{command.where}: `{command.line}`: {p}" for p in override_problems(*found)]
    assert not problems, "\n".join(problems)


def test_a_no_op_override_fails_the_check() -> None:
    # The README tour's old first override: the quickstart's stage_blocks decide the depth.
    assert "changes only the name" in override_problems("quickstart", ["model.depth=34"])[0]
    assert "changes nothing" in override_problems("quickstart", ["data.augment=[]"])[0]
    assert override_problems("quickstart", ["train.epochz=3"])
    assert not override_problems("quickstart", ["model.depth=34", "model.stage_blocks=null"])


# --- instant commands -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def instant_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    folder = tmp_path_factory.mktemp("docs-instant")
    (folder / "recipes").symlink_to(REPO / "recipes")
    demos = error_demos()
    lines = sorted(
        {
            shlex.join(["emotionkit", *command.args])
            for command in all_commands()
            if (command.subcommand in INSTANT or "--help" in command.args)
            and command.line not in demos
            and command.line.startswith(("emotionkit ", *(f"{k}=" for k, _ in command.env)))
            and not command.inline
            and not any(re.fullmatch(r"[A-Z_]+|<.*>", word) for word in command.args)
        }
    )
    return run_all(lines, folder)


def test_instant_commands_run(instant_results: dict[str, Result]) -> None:
    assert any(line.startswith("emotionkit recipe show") for line in instant_results)
    failed = [
        f"`{line}` exited {result.returncode}: {result.stderr.strip()}"
        for line, result in instant_results.items()
        if result.returncode != 0
    ]
    assert not failed, "\n".join(failed)


# --- Python blocks ------------------------------------------------------------------------------


def python_blocks() -> list[Any]:
    return [
        block
        for page in PAGES
        for block in fenced_blocks(page.read_text(), page)
        if block.info in ("python", "py")
    ]


@pytest.mark.parametrize("block", python_blocks(), ids=lambda block: block.where)
def test_python_blocks_compile(block: Any) -> None:
    compile(block.text, block.where, "exec")


# --- the newcomer's path, run (nox -s docs) ----------------------------------------------------

HEAVY_SKIPS = {
    "pip install": "installing is what the nox session itself does",
    "python -m venv": "installing is what the nox session itself does",
    ". .venv/bin/activate": "installing is what the nox session itself does",
    "nox": "the test suite runs it",
    "emotionkit serve": "a server that runs until stopped: tests/test_serve*.py start it",
    "curl": "needs the server above",
    "emotionkit train --resume": "needs an interrupted run: tests/test_resume.py makes one",
}
TINY = [
    "data.image_size=32",
    "data.batch_size=32",
    "model.stage_blocks=[1, 1, 1, 1]",
    "train.epochs=1",
    "train.schedule.warmup_epochs=0",
    "export.parity_samples=16",
]
TINY_SYNTHETIC = "data.source.train_size=140 data.source.val_size=35"


def heavy_skip(line: str) -> str | None:
    return next((why for start, why in HEAVY_SKIPS.items() if line.startswith(start)), None)


@pytest.fixture(scope="module")
def newcomer_folder(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    """A working folder with what the newcomer's examples name: recipes/, photos/,
    face.jpg, an image folder at data/my-faces (also `my_faces`), and `RUN_DIR` (a copy of
    the tiny run)."""
    import cv2

    from emotionkit.data.synthetic import FER_CLASSES, generate_synthetic_faces

    folder = tmp_path_factory.mktemp("docs-newcomer")
    (folder / "recipes").symlink_to(REPO / "recipes")
    (folder / "photos").mkdir()
    for name in ("face.jpg", "photos/party.jpg"):
        shutil.copy(REPO / "tests" / "data" / "face_photo.png", folder / name)
    images, labels = generate_synthetic_faces(70, seed=0)
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        target = folder / "data" / "my-faces" / "train" / FER_CLASSES[int(label)]
        target.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target / f"{index}.png"), image)
    (folder / "my_faces").symlink_to(folder / "data" / "my-faces")
    for name in ("RUN_DIR", "OTHER_RUN_DIR"):
        shutil.copytree(tiny_run, folder / name)
    return folder


def newcomer_shell_lines() -> list[tuple[str, str]]:
    return [
        (block.where, line)
        for page in NEWCOMER_PAGES
        for block in fenced_blocks(page.read_text(), page)
        if block.info in ("bash", "sh", "shell", "")
        for line in shell_commands(block.text)
    ]


def heavy_line(line: str) -> str:
    """A documented line as the heavy check runs it: train on the tiny settings."""
    if not re.match(r"^emotionkit (--\w+ )*train ", line):
        return line
    from emotionkit.recipe import load_recipe

    _, args = split_command(line)
    found = recipe_and_overrides(Command("", line, tuple(args)))
    recipe = load_recipe(*found) if found is not None else None
    synthetic = recipe is not None and recipe.data.source.kind == "synthetic"
    tiny = [*TINY, *(TINY_SYNTHETIC.split() if synthetic else [])]
    if recipe is not None and recipe.train.unfreeze_at_epoch is not None:
        tiny += ["train.unfreeze_at_epoch=null", "train.backbone_lr_scale=1"]  # head phase only
    return f"{line} {shlex.join(tiny)} --runs-dir runs"


@pytest.mark.skipif(not HEAVY, reason="runs trainings: set EMOTIONKIT_DOCS_HEAVY=1 (nox -s docs)")
@pytest.mark.parametrize(
    ("where", "line"),
    newcomer_shell_lines(),
    ids=[f"{where} {line[:40]}" for where, line in newcomer_shell_lines()],
)
def test_newcomer_shell_lines_run(where: str, line: str, newcomer_folder: Path) -> None:
    reason = heavy_skip(line)
    if reason:
        pytest.skip(reason)
    if line.startswith("emotionkit "):
        command = heavy_line(line).replace(
            "emotionkit ", f"{shlex.quote(sys.executable)} -m emotionkit ", 1
        )
    else:
        command = line
    result = subprocess.run(
        command, shell=True, capture_output=True, text=True, cwd=newcomer_folder, timeout=600
    )
    assert result.returncode == 0, f"{where}: `{line}`\n{result.stdout}\n{result.stderr}"


NEWCOMER_PRELUDE = """
import emotionkit

_load_recipe = emotionkit.load_recipe


def _tiny_load_recipe(path, overrides=None):
    return _load_recipe(path, [*(overrides or []), *TINY])


emotionkit.load_recipe = _tiny_load_recipe
"""


def newcomer_python_blocks() -> list[Any]:
    return [
        block
        for page in NEWCOMER_PAGES
        for block in fenced_blocks(page.read_text(), page)
        if block.info == "python"
    ]


@pytest.mark.skipif(not HEAVY, reason="runs trainings: set EMOTIONKIT_DOCS_HEAVY=1 (nox -s docs)")
@pytest.mark.parametrize("block", newcomer_python_blocks(), ids=lambda block: block.where)
def test_newcomer_python_blocks_run(block: Any, newcomer_folder: Path) -> None:
    tiny = [*TINY, "data.source.train_size=140", "data.source.val_size=35"]
    script = f"TINY = {tiny!r}\n{NEWCOMER_PRELUDE}\n{textwrap.dedent(block.text)}"
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=newcomer_folder,
        timeout=600,
    )
    assert result.returncode == 0, f"{block.where}\n{result.stdout}\n{result.stderr}"
