"""The docs' maps of the code and of a run directory, their one path for a newcomer, and the
install page's names: each checked against what exists.

- The module map (docs/architecture.md, "Modules") names every module of the package, and
  every file it names exists.
- The run-directory listings (docs/architecture.md, docs/getting-started.md) name what a
  trained run holds, and nothing it does not (the tiny run the tests share, built anyway by
  the end-to-end tests of the default session).
- The newcomer's path: README (two commands, a tour of at most 10 lines) -> getting-started
  (install, first run, own data, evaluate, predict, serve, where next) -> the reference
  pages; no code block is copied from one page to another; no user example points into
  this repository's development set-up.
- docs/install.md names the project's extras as extras and its dependency groups as groups.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_docs_markdown import (
    DOCS,
    PAGES,
    REPO,
    code_spans,
    fenced_blocks,
    relative,
)

PACKAGE = REPO / "emotionkit"
ARCHITECTURE = DOCS / "architecture.md"
GETTING_STARTED = DOCS / "getting-started.md"
README = REPO / "README.md"
# Paths of this repository's own machines: never in an example a user copies.
DEVELOPMENT_PATHS = re.compile(r"\.\./shared|/work/|/tmp/bis|\.venv/bin/python -m")


def section(text: str, heading: str) -> str:
    """The body of the `## heading` section of a page (up to the next `## `)."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no '## {heading}' section"
    return match[1]


# --- the module map -------------------------------------------------------------------------


def module_map_names(table: str) -> tuple[set[str], set[str]]:
    """(files named in the first column, files and folders named anywhere in the rows), as
    paths relative to the package. A bare file name in a row takes the folder of the path
    named before it in that row (`data/synthetic_source.py`, `image_folder.py`)."""
    first_column: set[str] = set()
    anywhere: set[str] = set()
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        cells = line.split(" | ")
        folder = ""
        for index, cell in enumerate(cells):
            for name in code_spans(cell):
                if not re.fullmatch(r"[\w/]+\.py|[\w/]+/|[\w/]*\{[\w,]+\}\.py", name):
                    continue
                for path in _expand(name, folder):
                    folder = path.rpartition("/")[0] if "/" in path else folder
                    anywhere.add(path)
                    if index == 0:
                        first_column.add(path)
    return first_column, anywhere


def _expand(name: str, folder: str) -> list[str]:
    """`models/{pretrained,freeze}.py` -> both paths; a bare `x.py` -> `folder/x.py`."""
    braces = re.fullmatch(r"(?P<head>[\w/]*)\{(?P<names>[\w,]+)\}\.py", name)
    if braces:
        return [f"{braces['head']}{stem}.py" for stem in braces["names"].split(",")]
    if "/" not in name.rstrip("/") and folder and name.endswith(".py"):
        candidate = f"{folder}/{name}"
        if (PACKAGE / candidate).exists() or not (PACKAGE / name).exists():
            return [candidate]
    return [name]


def package_modules() -> set[str]:
    return {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" or path.parent == PACKAGE / "cli"
    }


def undocumented_modules(table: str) -> list[str]:
    first_column, anywhere = module_map_names(table)
    folders = {name for name in first_column if name.endswith("/")}
    missing = []
    for module in sorted(package_modules()):
        covered = module in anywhere or any(module.startswith(folder) for folder in folders)
        if module == "cli/__init__.py":
            covered = "cli/" in first_column
        if not covered:
            missing.append(module)
    return missing


def test_module_map_names_every_module_of_the_package() -> None:
    table = section(ARCHITECTURE.read_text(), "Modules")
    missing = undocumented_modules(table)
    assert not missing, (
        f"docs/architecture.md's module map does not name {missing}: add a row (or name the "
        "file in the row of the module it belongs to)"
    )


def test_every_file_in_the_module_map_exists() -> None:
    _, anywhere = module_map_names(section(ARCHITECTURE.read_text(), "Modules"))
    gone = sorted(name for name in anywhere if not (PACKAGE / name).exists())
    assert not gone, f"docs/architecture.md's module map names files that do not exist: {gone}"


def test_a_module_left_out_of_the_map_fails_the_check() -> None:
    table = section(ARCHITECTURE.read_text(), "Modules")
    row = next(line for line in table.splitlines() if line.startswith("| `bundled.py`"))
    assert "bundled.py" in undocumented_modules(table.replace(row + "\n", ""))


# --- the run directory ----------------------------------------------------------------------


def listing_entries(block: str) -> dict[str, str]:
    """`path -> note` for each entry of a run-directory listing block (nested by indent)."""
    entries: dict[str, str] = {}
    parents: list[tuple[int, str]] = []
    for line in block.splitlines()[1:]:
        match = re.match(r"^(?P<indent> +)(?P<name>[\w.{}<>-]+/?)(?P<note>.*)$", line)
        if not match or len(match["indent"]) > 12:  # a continuation line of a note
            continue
        indent = len(match["indent"])
        while parents and parents[-1][0] >= indent:
            parents.pop()
        path = "".join(name for _, name in parents) + match["name"]
        entries[path] = match["note"].strip()
        if match["name"].endswith("/"):
            parents.append((indent, match["name"]))
    return entries


def run_listing(page: Path) -> dict[str, str]:
    """The page's run-directory listing: its first text block that starts with a run path."""
    for block in fenced_blocks(page.read_text(), page):
        first = block.text.splitlines()[0] if block.text else ""
        if first.startswith(("runs/<", "RUN_DIR/")):
            return listing_entries(block.text)
    raise AssertionError(f"{relative(page)} has no run-directory listing")


# A listed entry that a run holds only in some configurations says so in its note.
CONDITIONAL = re.compile(r"\b(when|only|if|optional|after|with train\.)", re.I)


@pytest.mark.parametrize("page", [ARCHITECTURE, GETTING_STARTED], ids=relative)
def test_run_directory_listing_matches_a_trained_run(page: Path, tiny_run: Path) -> None:
    listed = run_listing(page)
    top_level = {name for name in listed if name.count("/") <= int(name.endswith("/"))}
    actual = {p.name + ("/" if p.is_dir() else "") for p in tiny_run.iterdir()}
    unlisted = sorted(actual - top_level)
    assert not unlisted, f"{relative(page)}: a run holds {unlisted}, the listing leaves them out"
    for name in sorted(listed):
        if "<" in name or "NNNN" in name or name.endswith("..."):
            continue
        if not (tiny_run / name).exists():
            assert CONDITIONAL.search(listed[name]), (
                f"{relative(page)} lists {name!r} ({listed[name]!r}), which the tiny quickstart "
                "run does not have: say when a run has it, or remove it"
            )


def test_listing_parser_nests_entries() -> None:
    block = "runs/<name>/<t>/\n  a.json   x\n  checkpoints/\n    best.keras   y\n  b/    z\n"
    assert listing_entries(block) == {
        "a.json": "x",
        "checkpoints/": "",
        "checkpoints/best.keras": "y",
        "b/": "z",
    }


# --- one path for a newcomer ----------------------------------------------------------------


def test_readme_has_the_two_commands_and_a_short_tour() -> None:
    text = README.read_text()
    commands = [block.text for block in fenced_blocks(section(text, "The two commands"))]
    assert len(commands) == 2
    assert "pip install" in commands[0] and "emotionkit train quickstart" in commands[0]
    assert commands[1].strip() == "pip install nox uv && nox"
    tour = fenced_blocks(section(text, "A short tour"))
    assert len(tour) == 1 and len(tour[0].text.splitlines()) <= 10


def test_getting_started_walks_from_install_to_serve() -> None:
    headings = re.findall(r"^## (.+)$", GETTING_STARTED.read_text(), re.M)
    wanted = ["Install", "Your first run", "Your own data", "Evaluate", "Predict", "Serve"]
    positions = [headings.index(name) for name in wanted]
    assert positions == sorted(positions), headings
    assert headings[-1] == "Where next"


def _nav_pages() -> list[str]:
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    pages: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, str):
            pages.append(node)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)

    walk(nav)
    return pages


def test_where_next_links_every_reference_page() -> None:
    where_next = section(GETTING_STARTED.read_text(), "Where next")
    linked = set(re.findall(r"\]\(([\w-]+\.md)[)#]", where_next))
    missing = sorted(set(_nav_pages()) - linked - {"index.md", "getting-started.md"})
    assert not missing, f"getting-started's 'Where next' does not link {missing}"


def _normalised(block: str) -> str:
    return "\n".join(" ".join(line.split()) for line in block.strip().splitlines())


def test_no_code_block_is_copied_across_pages() -> None:
    seen: dict[str, str] = {}
    copies = []
    for page in PAGES:
        for block in fenced_blocks(page.read_text(), page):
            if len(block.text.strip().splitlines()) < 2 and len(block.text) < 60:
                continue  # a one-liner such as `pip install nox uv && nox` may recur
            key = _normalised(block.text)
            if key in seen and not seen[key].startswith(relative(page) + ":"):
                copies.append(f"{block.where} repeats {seen[key]}")
            seen.setdefault(key, block.where)
    assert not copies, "\n".join(copies)


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_examples_use_no_development_paths(page: Path) -> None:
    text = page.read_text()
    found = [
        f"{relative(page)}:{number}: {line.strip()}"
        for number, line in enumerate(text.splitlines(), start=1)
        if DEVELOPMENT_PATHS.search(line)
    ]
    assert not found, "\n".join(found)


# --- docs/install.md ------------------------------------------------------------------------


def _named_in_paragraph(text: str, lead: str) -> set[str]:
    paragraph = re.search(rf"^\*\*{lead}\*\*(.*?)(?:\n\n|\Z)", text, re.M | re.S)
    assert paragraph, f"docs/install.md has no paragraph starting with **{lead}**"
    names = set()
    for span in re.findall(r"`([^`]+)`", paragraph[1]):
        if re.fullmatch(r"[a-z][\w-]*", span):
            names.add(span)
    return names


def pyproject() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_install_page_names_extras_and_groups_as_they_are() -> None:
    PYPROJECT = pyproject()
    text = (DOCS / "install.md").read_text()
    extras = set(PYPROJECT["project"]["optional-dependencies"])
    groups = set(PYPROJECT["dependency-groups"])
    assert _named_in_paragraph(text, "Extras") & (extras | groups) == extras
    assert _named_in_paragraph(text, "Dependency groups") & (extras | groups) == groups


def test_install_page_versions_meet_the_lower_bounds() -> None:
    from packaging.requirements import Requirement

    PYPROJECT = pyproject()
    requirements = {}
    for line in [
        *PYPROJECT["project"]["dependencies"],
        *PYPROJECT["project"]["optional-dependencies"]["jax"],
    ]:
        requirement = Requirement(line)
        requirements[requirement.name] = requirement.specifier
    table = section((DOCS / "install.md").read_text(), "Versions")
    rows = re.findall(r"^\| ([\w-]+)(?: / [\w-]+)? \| ([\d.]+)", table, re.M)
    assert rows
    for name, version in rows:
        if name in requirements:
            assert requirements[name].contains(version), f"{name} {version} vs {requirements[name]}"


# --- docs/models.md -------------------------------------------------------------------------


def test_models_page_documents_every_registered_model_and_weights_source() -> None:
    """Each registered architecture has its own section, and the page does not call any of
    the `model.weights` sources it documents unsupported."""
    import emotionkit.models  # noqa: F401  (registers the built-in models)
    from emotionkit.models.spec import MODELS

    text = (DOCS / "models.md").read_text()
    for name in MODELS.names():
        assert f"`{name}`" in text, f"docs/models.md does not document model.name {name}"
    assert not re.search(r"not supported|only model|one model family", text, re.I)
    for source in ("`.keras`", "`.weights.h5`", "`.onnx`", "## Preset names", "fer2013-cpu"):
        assert source in text, source


def test_no_page_calls_an_existing_command_unbuilt() -> None:
    """docs/architecture.md once listed predict, plots and more as "Not built yet"."""
    from tests.test_docs_commands import cli_command

    commands = set(cli_command().commands)
    problems = []
    for page in PAGES:
        for number, line in enumerate(page.read_text().splitlines(), start=1):
            if not re.search(r"not (built|implemented|supported|available)( yet)?\b", line, re.I):
                continue
            named = {span.removeprefix("emotionkit ").split(" ")[0] for span in code_spans(line)}
            if named & commands:
                problems.append(f"{relative(page)}:{number}: {line.strip()}")
    assert not problems, "\n".join(problems)
