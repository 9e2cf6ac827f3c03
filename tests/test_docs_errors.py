"""Error messages the docs quote are the ones the code prints.

Three kinds of quote, three checks:

- **Console blocks** (a `$ emotionkit ...` line followed by its output): the command is run
  for real, in a scratch folder that links `recipes/`, and every output line the block shows
  must appear, in order, in what it printed (`...` in a quote stands for any text).
- **Marked quotes**: `<!-- error-from: [VAR=value ...] emotionkit ARGS -->` on its own line
  above a heading or paragraph: the command is run and must exit with code 2, and the first
  inline code span of the next line must match its `error:` line (several markers stacked
  claim the first spans in order). docs/troubleshooting.md quotes this way.
- **Every other quoted error** (the rest of the troubleshooting headings, and inline code
  starting with `error: ` on any page) would need a failed training or export to print: its
  fixed wording is looked up in the source instead. Each stretch of literal text between
  the variable parts (numbers, paths, quoted values, `...`) must occur in a string or
  f-string of the package, so a reworded message fails the check.

Commands are only run where that is cheap and writes nothing outside the scratch folder:
`recipe`, `models`, `runs`, `--help`, `predict` on inputs that do not exist, and `train`,
`data inspect` or `model summary` on a recipe that fails validation or a runtime that fails
to resolve (checked in this process first). Anything else is a test failure that names the
block.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from tests.test_docs_markdown import (
    DOCS,
    PAGES,
    REPO,
    code_spans,
    fenced_blocks,
    paragraphs,
    relative,
)

PACKAGE = REPO / "emotionkit"
TROUBLESHOOTING = DOCS / "troubleshooting.md"
_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=")
_MARKER = re.compile(r"^\s*<!--\s*error-from:\s*(?P<command>.+?)\s*-->\s*$")


@dataclass(frozen=True)
class Quote:
    """Text a page quotes as a CLI error, where, and the command that prints it (if run)."""

    where: str
    text: str
    command: str = ""


@dataclass(frozen=True)
class ConsoleBlock:
    where: str
    command: str
    expected: tuple[str, ...]


# --- what the pages quote ---------------------------------------------------------------------


def console_blocks(page: Path) -> list[ConsoleBlock]:
    """`$ emotionkit ...` lines of the page's fenced blocks, each with the output shown."""
    found: list[ConsoleBlock] = []
    for block in fenced_blocks(page.read_text(), page):
        if "docs-check: skip" in block.comment:
            continue
        command, expected = "", []
        for line in [*block.text.splitlines(), "$ "]:
            if line.startswith("$ "):
                if command and expected:
                    found.append(ConsoleBlock(block.where, command, tuple(expected)))
                command, expected = line[2:].strip(), []
            elif command and line.strip():
                expected.append(line.strip())
    return [block for block in found if block.command.split()[:1] == ["emotionkit"]]


def marked_quotes(text: str, page: str) -> list[Quote]:
    """Quotes claimed by `<!-- error-from: ... -->` markers (see the module docstring)."""
    lines = text.splitlines()
    quotes: list[Quote] = []
    index = 0
    while index < len(lines):
        commands = []
        while index < len(lines) and (marker := _MARKER.match(lines[index])):
            commands.append(marker["command"])
            index += 1
        if not commands:
            index += 1
            continue
        while index < len(lines) and not lines[index].strip():
            index += 1
        spans = code_spans(lines[index]) if index < len(lines) else []
        assert len(spans) >= len(commands), f"{page}:{index + 1}: more markers than quotes"
        quotes.extend(
            Quote(f"{page}:{index + 1}", span, command)
            for span, command in zip(spans, commands, strict=False)
        )
    return quotes


def static_quotes(text: str, page: str) -> list[Quote]:
    """Quoted errors with no command to run: troubleshooting headings and `error: ...` spans."""
    marked = {(quote.where, quote.text) for quote in marked_quotes(text, page)}
    quotes: list[Quote] = []
    in_faq = False
    for number, paragraph in paragraphs(text):
        if paragraph.startswith("## "):
            in_faq = paragraph.strip() == "## FAQ"
        spans = code_spans(paragraph)
        if page.endswith("troubleshooting.md") and paragraph.startswith("### ") and not in_faq:
            chosen = spans
        else:
            chosen = [span for span in spans if span.startswith("error: ")]
        for span in chosen:
            if (f"{page}:{number}", span) not in marked:
                quotes.append(Quote(f"{page}:{number}", span.removeprefix("error: ")))
    return quotes


# --- running the CLI ----------------------------------------------------------------------------


def split_command(command: str) -> tuple[dict[str, str], list[str]]:
    """`VAR=x emotionkit a b` -> ({"VAR": "x"}, ["a", "b"])."""
    words = shlex.split(command)
    env = {}
    while words and _ENV.match(words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    assert words[:1] == ["emotionkit"], command
    return env, words[1:]


@contextmanager
def environment(extra: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def cheap_to_run(env: dict[str, str], args: list[str]) -> bool:
    """Does the command end within a second or so, writing nothing outside its folder?"""
    from emotionkit.errors import EmotionkitError
    from emotionkit.recipe import load_recipe
    from emotionkit.runtime import resolve_runtime

    words = [word for word in args if word not in ("--debug", "--verbose")]
    if "--help" in words or words[:1] in (["recipe"], ["models"], ["runs"]):
        return True
    if words[:1] == ["predict"]:
        inputs = [word for word in words[1:] if not word.startswith("-")]
        return bool(inputs) and not any((REPO / word).exists() for word in inputs)
    if words[:1] in (["train"], ["data"], ["model"]):
        positional = [word for word in words[1:] if not word.startswith("-")]
        if words[0] in ("data", "model"):
            positional = positional[1:]
        if "--resume" in words:
            return True  # refused before anything runs when combined with a recipe
        if not positional:
            return False
        recipe, overrides = positional[0], positional[1:]
        with environment(env):
            try:
                resolve_runtime(
                    load_recipe(REPO / recipe if "/" in recipe else recipe, overrides).runtime
                )
            except EmotionkitError:
                return True
    return False


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


# Runs `emotionkit.cli.main` once per command in one child process (one start-up instead of
# one per command), each with its own arguments, environment and captured output.
_DRIVER = """
import contextlib, io, json, os, sys
from emotionkit.cli import main

results = []
for env, args in json.load(sys.stdin):
    saved = dict(os.environ)
    os.environ.update(env)
    out, err, code = io.StringIO(), io.StringIO(), 0
    sys.argv = ["emotionkit", *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    os.environ.clear()
    os.environ.update(saved)
    results.append([code, out.getvalue(), err.getvalue()])
json.dump(results, sys.__stdout__)
"""


def run_all(commands: list[str], cwd: Path) -> dict[str, Result]:
    """Each `emotionkit ...` command run through the real CLI entry point, in `cwd`."""
    unique = sorted(set(commands))
    child = subprocess.run(
        [sys.executable, "-c", _DRIVER],
        input=json.dumps([split_command(command) for command in unique]),
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=True,
    )
    rows = json.loads(child.stdout)
    return {command: Result(*row) for command, row in zip(unique, rows, strict=True)}


def quote_pattern(text: str) -> re.Pattern[str]:
    """`...` (or `…`) in a quote stands for any text."""
    parts = re.split(r"\.\.\.|…", text)
    return re.compile(".*?".join(re.escape(part) for part in parts))


def console_mismatches(expected: tuple[str, ...], output: str) -> list[str]:
    """Lines of `expected` not found, in order, among the output's lines."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    missing, position = [], 0
    for want in expected:
        pattern = quote_pattern(want)
        for offset, line in enumerate(lines[position:]):
            if pattern.fullmatch(line):
                position += offset + 1
                break
        else:
            missing.append(want)
    return missing


def quote_mismatch(quote: Quote, result: Result) -> str | None:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    if result.returncode != 2 or not errors:
        return f"{quote.where}: `{quote.command}` exited {result.returncode}, printing no error"
    if not quote_pattern(quote.text).search(errors[-1]):
        return f"{quote.where}: docs quote {quote.text!r}; `{quote.command}` prints {errors[-1]!r}"
    return None


# --- the fixed wording of messages in the source --------------------------------------------


@cache
def message_texts() -> tuple[str, ...]:
    """Every string literal and f-string of the package, placeholders as NUL characters."""
    texts: list[str] = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.JoinedStr):
                texts.append(
                    "".join(
                        part.value if isinstance(part, ast.Constant) else "\0"
                        for part in node.values
                    )
                )
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                texts.append(node.value)
    return tuple(texts)


def literal_stretches(quote: str) -> list[str]:
    """The pieces of a quote between its `...` wildcards (8 characters or more)."""
    return [part.strip() for part in re.split(r"\.\.\.|…", quote) if len(part.strip()) >= 8]


_WORD = re.compile(r"[A-Za-z]{4,}")


def occurs_in_message(piece: str, parts: list[str]) -> bool:
    """Can `piece` occur inside a message printed from an f-string with these literal parts?

    With the literal parts c0, c1, ..., cn between the placeholders, a piece that spans
    placeholders is a suffix of some ci, then ci+1 ... cj-1 whole, then a prefix of cj, with
    a value in each placeholder (no whitespace: a longer value is quoted as `...`).
    """
    for i, part in enumerate(parts[:-1]):
        for start in range(len(part) + 1):
            head = part[start:]
            if piece.startswith(head) and _continues(piece[len(head) :], parts, i + 1):
                return True
    return False


def _continues(rest: str, parts: list[str], j: int) -> bool:
    """`rest` begins in the placeholder before parts[j]."""
    for end in range(len(rest) + 1):
        tail = rest[end:]
        if parts[j].startswith(tail):
            return True  # ends inside parts[j]
        if (
            tail.startswith(parts[j])
            and j + 1 < len(parts)
            and _continues(tail[len(parts[j]) :], parts, j + 1)
        ):
            return True
        if end < len(rest) and rest[end].isspace():
            return False  # a value has no whitespace
    return False


def wording_known(piece: str) -> bool:
    """Does `piece` occur in some message the package can print?"""
    texts = message_texts()
    if any(piece in text for text in texts):
        return True
    words = set(_WORD.findall(piece))
    return any(
        occurs_in_message(piece, text.split("\0"))
        for text in texts
        if "\0" in text and words & set(_WORD.findall(text))
    )


def unknown_wording(quote: str) -> list[str]:
    return [piece for piece in literal_stretches(quote) if not wording_known(piece)]


# --- the tests ------------------------------------------------------------------------------


def _all_console_blocks() -> list[ConsoleBlock]:
    return [block for page in PAGES for block in console_blocks(page)]


def _all_marked_quotes() -> list[Quote]:
    return [quote for page in PAGES for quote in marked_quotes(page.read_text(), relative(page))]


STALE_MONITOR_COMMAND = "emotionkit recipe show recipes/quickstart.yaml train.monitor=val_acc"
STALE_EPOCHZ_ERROR = (
    "error: Recipe recipes/quickstart.yaml has 1 problem: unknown key `train.epochz` (value 3). "
    "Did you mean `train.epochs`? Valid keys in `train`: epochs, optimizer, schedule, loss, "
    "top_k, monitor, early_stopping, keep_backups, unfreeze_at_epoch, backbone_lr_scale."
)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """Every command the docs quote an error of, run once, in a folder where `recipes/...`
    resolves as in the repository; a command that is not cheap to run fails here."""
    folder = tmp_path_factory.mktemp("docs-cli")
    (folder / "recipes").symlink_to(REPO / "recipes")
    commands = {block.command: block.where for block in _all_console_blocks()}
    commands.update({quote.command: quote.where for quote in _all_marked_quotes()})
    refused = [
        f"{where}: `{command}` is not cheap to run here (mark a console block "
        "`<!-- docs-check: skip WHY -->`)"
        for command, where in commands.items()
        if not cheap_to_run(*split_command(command))
    ]
    assert not refused, "\n".join(refused)
    return run_all([*commands, STALE_MONITOR_COMMAND], folder)


def test_console_blocks_show_the_real_output(cli: dict[str, Result]) -> None:
    blocks = _all_console_blocks()
    assert blocks, "the docs show at least one console session"
    problems = []
    for block in blocks:
        result = cli[block.command]
        missing = console_mismatches(block.expected, result.stdout + result.stderr)
        if missing:
            problems.append(
                f"{block.where}: `{block.command}` does not print {missing}; it prints:\n"
                f"{result.stdout}{result.stderr}"
            )
        if any(line.startswith("error: ") for line in block.expected) != (result.returncode == 2):
            problems.append(f"{block.where}: `{block.command}` exited {result.returncode}")
    assert not problems, "\n".join(problems)


def test_marked_error_quotes_match_the_real_error(cli: dict[str, Result]) -> None:
    quotes = _all_marked_quotes()
    assert len(quotes) >= 5, "docs/troubleshooting.md marks the errors it can reproduce"
    problems = [quote_mismatch(quote, cli[quote.command]) for quote in quotes]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_other_quoted_errors_use_wording_found_in_the_code(page: Path) -> None:
    problems = [
        f"{quote.where}: {quote.text!r}: no message in emotionkit/ says {stretch!r}"
        for quote in static_quotes(page.read_text(), relative(page))
        for stretch in unknown_wording(quote.text)
    ]
    assert not problems, "\n".join(problems)


def test_a_stale_quoted_error_fails_each_check(cli: dict[str, Result]) -> None:
    # The `train.epochz` error as README.md and getting-started quoted it before `tensorboard`
    # and `confusion_matrix_every` were keys of `train`.
    block = next(b for b in _all_console_blocks() if "train.epochz" in b.command)
    printed = cli[block.command].stdout + cli[block.command].stderr
    assert not console_mismatches(block.expected, printed)
    assert console_mismatches((STALE_EPOCHZ_ERROR,), printed) == [STALE_EPOCHZ_ERROR]

    # The monitor error as the troubleshooting page used to quote it.
    old = "train.monitor='val_acc' is not among the logged metrics: [...]"
    assert quote_mismatch(Quote("x.md:1", old, STALE_MONITOR_COMMAND), cli[STALE_MONITOR_COMMAND])

    # A reworded message that no code prints, against one that the training prints.
    assert unknown_wording("Training halted: the loss became NaN at epoch 3")
    assert not unknown_wording(
        "Training stopped: non-finite loss at epoch 3, step 41; the last good checkpoint is in ..."
    )


def test_literal_stretches_split_at_wildcards() -> None:
    assert literal_stretches("Recipe file not found: ... (nor a packaged recipe)") == [
        "Recipe file not found:",
        "(nor a packaged recipe)",
    ]
    assert wording_known("none of the 12 inputs could be read (see above).")
    assert not wording_known("none of the 12 inputs could be decoded (see above).")
