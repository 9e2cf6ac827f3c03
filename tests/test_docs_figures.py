"""Every figure the docs quote is read from its source, at test time.

A measured figure in the docs carries an HTML comment right after it (invisible on GitHub,
PyPI and the MkDocs site) naming where it comes from:

    0.6643<!-- fig bundled val_accuracy -->
    | SavedModel | 8.3e-7<!-- fig bundled-run/export.json checks.saved_model.max_abs_diff --> |
    53.2 min<!-- fig bundled training_wall_seconds/60 -->
    100 %<!-- fig bundled-run/export.json checks.onnx.top1_agreement*100 -->

`fig SOURCE KEY[*N|/N]` claims the last number before it on the line (after the previous
marker). SOURCE is one of:

- `bundled`: the default bundled model's ONNX `metadata_props`, plus `file_mb` (its size in
  MB of 10^6 bytes). Re-bundling the model changes these values, and the docs with them.
  `bundled:NAME` is the bundled model called NAME.
- `bundled-run/FILE`: FILE in the bundled model's training run as kept under
  `benchmarks/results/<model file stem>_<trained_at>/` (found from the metadata, so a new
  bundle points at its own run's files); `bundled-run:NAME/FILE` for the model NAME.
- `FILE.json` (or `FOLDER/FILE.json`) under `benchmarks/results/`.
- `tests/NAME.py`: a module-level constant of a test (e.g. the tolerance a claim quotes).

KEY is a dotted path (list items by index). The shown number must equal the source value
rounded to the digits shown (`2.49G` is 2.49e9, `1,403` is 1403; a version string must match
exactly).

On docs/benchmarks.md, docs/export.md and docs/models.md every figure must be marked: any
number outside inline code with a decimal point, an exponent, thousands separators or a
K/M/G suffix, or an integer followed by a unit (ms, s, min, %, MB, img/s, ...). Settings and
commands belong in inline code, which the check skips; a version after a package name
(`TensorFlow 2.21`) is not a figure.
"""

from __future__ import annotations

import ast
import contextlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from emotionkit.bundled import BUNDLED_FILES, DEFAULT_MODEL
from tests.test_docs_markdown import (
    DOCS,
    PAGES,
    REPO,
    blank_code_and_comments,
    comments,
    prose_lines,
    relative,
)

RESULTS = REPO / "benchmarks" / "results"
STRICT_PAGES = [DOCS / "benchmarks.md", DOCS / "export.md", DOCS / "models.md"]

_MARKER = re.compile(
    r"^fig\s+(?P<source>\S+)\s+(?P<key>[^\s*/]+)(?:(?P<op>[*/])(?P<factor>\d+(?:\.\d+)?))?$"
)
_NUMBER = re.compile(
    r"(?<![\w.,])(?P<number>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)*(?:e[-+]?\d+)?)"
    r"(?P<suffix>[KMG](?!\w))?"
)
_UNIT = re.compile(r"^\s?(?:ms|s|min|%|MB|MiB|GB|img/s|images/s|req/s)(?![\w/])")
_VERSION_CONTEXT = re.compile(
    r"(?:Python|TensorFlow|Keras|JAX|jax|jaxlib|onnxruntime|onnx|OpenCV|PyTorch|tf2onnx|numpy|"
    r"NumPy|keras-cv|KerasCV|protobuf|pydantic|opset|CUDA|torch)\s*$"
)
_SUFFIX_SCALE = {"K": 1e3, "M": 1e6, "G": 1e9}


@cache
def bundled_metadata(name: str = DEFAULT_MODEL) -> dict[str, str]:
    """A bundled model's metadata_props (and its file size in MB)."""
    import onnx

    from emotionkit.bundled import bundled_model_path

    path = bundled_model_path(name)
    proto = onnx.load(str(path), load_external_data=False)
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    metadata["file_mb"] = str(path.stat().st_size / 1e6)
    return metadata


def bundled_run_dir(name: str = DEFAULT_MODEL) -> Path:
    """`benchmarks/results/<stem>_<trained_at>/`: a bundled model's run, as committed."""
    from emotionkit.bundled import bundled_model_path

    stamp = bundled_metadata(name)["trained_at"][:19].replace(":", "-")
    return RESULTS / f"{bundled_model_path(name).stem}_{stamp}"


@cache
def _load_source(source: str) -> Any:
    if source == "bundled" or source.startswith("bundled:"):
        return bundled_metadata(source.partition(":")[2] or DEFAULT_MODEL)
    if source.startswith("bundled-run"):
        where, _, file = source.partition("/")
        path = bundled_run_dir(where.partition(":")[2] or DEFAULT_MODEL) / file
    elif source.startswith("tests/") and source.endswith(".py"):
        return _module_constants(REPO / source)
    else:
        path = RESULTS / source
    return json.loads(path.read_text())


def _module_constants(path: Path) -> dict[str, Any]:
    """Module-level `NAME = literal` assignments (`{...}[BACKEND]` counts as the dict)."""
    constants: dict[str, Any] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            value = node.value.value if isinstance(node.value, ast.Subscript) else node.value
            try:
                constants[node.targets[0].id] = ast.literal_eval(value)
            except ValueError:
                continue
    return constants


def source_value(source: str, key: str) -> Any:
    """The value at a dotted KEY of SOURCE (raises KeyError/IndexError/OSError if absent)."""
    value = _load_source(source)
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def matches(shown: str, suffix: str | None, value: Any) -> bool:
    """Does the figure as shown equal `value` rounded to the digits shown?"""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return shown == value
    if isinstance(value, bool) or not isinstance(value, int | float) or shown.count(".") > 1:
        return False
    mantissa, _, exponent = shown.partition("e")
    mantissa = mantissa.replace(",", "")
    scale = 10.0 ** int(exponent) if exponent else 1.0
    scale *= _SUFFIX_SCALE.get(suffix or "", 1.0)
    decimals = len(mantissa.partition(".")[2])
    tolerance = 0.5 * 10.0**-decimals * scale
    return abs(float(value) - float(mantissa) * scale) <= tolerance * (1 + 1e-9)


def is_figure(line: str, number: re.Match[str]) -> bool:
    """A measured-looking number (see the module docstring), not a version."""
    token = number["number"]
    if _VERSION_CONTEXT.search(line[: number.start()]):
        return False
    if number["suffix"] or "," in token or "e" in token or "." in token:
        return True
    return bool(_UNIT.match(line[number.end() :]))


def check_figures(text: str, page: str, every_figure_marked: bool) -> list[str]:
    """Problems with the quoted figures of one page's text: a marked figure that differs
    from its source (or whose source is missing), and, with `every_figure_marked`, a figure
    with no marker."""
    problems: list[str] = []
    for number, line in prose_lines(text):
        blanked = blank_code_and_comments(line)
        claimed: set[int] = set()
        start = 0
        for comment in comments(line):
            marker = _MARKER.match(comment["body"])
            if not marker:
                start = comment.end()
                continue
            where = f"{page}:{number}"
            figures = list(_NUMBER.finditer(blanked, start, comment.start()))
            start = comment.end()
            if not figures:
                problems.append(f"{where}: `<!-- {comment['body']} -->` follows no number")
                continue
            figure = figures[-1]
            claimed.add(figure.start())
            problems.extend(_check_marker(where, figure, marker))
        if every_figure_marked:
            for figure in _NUMBER.finditer(blanked):
                if figure.start() not in claimed and is_figure(blanked, figure):
                    problems.append(
                        f"{page}:{number}: figure {figure[0]} has no `<!-- fig SOURCE KEY -->`"
                        " naming its source (or put a setting in inline code)"
                    )
    return problems


def _check_marker(where: str, figure: re.Match[str], marker: re.Match[str]) -> list[str]:
    source, key = marker["source"], marker["key"]
    try:
        value = source_value(source, key)
    except (KeyError, IndexError, ValueError, OSError) as error:
        return [f"{where}: {figure[0]}: no {key} in {source} ({type(error).__name__}: {error})"]
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if marker["op"] and isinstance(value, int | float):
        factor = float(marker["factor"])
        value = value * factor if marker["op"] == "*" else value / factor
    if matches(figure["number"], figure["suffix"], value):
        return []
    op = f"{marker['op']}{marker['factor']}" if marker["op"] else ""
    return [f"{where}: docs say {figure[0]}, {source} {key}{op} is {value!r}"]


def _pages_with_markers() -> list[Path]:
    return [page for page in PAGES if "<!-- fig " in page.read_text()]


@pytest.mark.parametrize("page", _pages_with_markers(), ids=relative)
def test_quoted_figures_match_their_sources(page: Path) -> None:
    problems = check_figures(page.read_text(), relative(page), page in STRICT_PAGES)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", STRICT_PAGES, ids=relative)
def test_measurement_pages_name_a_source_for_their_figures(page: Path) -> None:
    assert "<!-- fig " in page.read_text(), f"{relative(page)} quotes no figure with a source"


@pytest.mark.parametrize("name", sorted(BUNDLED_FILES))
def test_the_bundled_models_run_is_kept_in_benchmarks_results(name: str) -> None:
    """Re-bundling a model without committing its run's files would leave the docs quoting
    a run that is not the shipped model's."""
    run = bundled_run_dir(name)
    assert (run / "metrics.json").is_file() and (run / "export.json").is_file(), (
        f"copy the bundled model's run files (metrics.json, export.json, manifest.json, "
        f"recipe.yaml, history.csv) to {run.relative_to(REPO)}"
    )
    metadata = bundled_metadata(name)
    metrics = source_value(f"bundled-run:{name}/metrics.json", "val")
    assert matches(metadata["val_accuracy"], None, metrics["accuracy"])
    assert matches(metadata["val_macro_f1"], None, metrics["macro_f1"])
    assert int(metadata["val_images"]) == metrics["num_images"]


def test_a_planted_wrong_figure_fails_the_check() -> None:
    page = DOCS / "export.md"
    text = page.read_text()
    marked = re.search(r"(\d[\d.e-]*)(<!-- fig bundled-run/export\.json [^>]+-->)", text)
    assert marked, "docs/export.md quotes the bundled run's export parity with a marker"
    shown = marked[1]
    wrong = "9.5e-7" if shown != "9.5e-7" else "1.0e-6"
    planted = text.replace(marked[0], wrong + marked[2], 1)
    problems = check_figures(planted, "export.md", every_figure_marked=True)
    assert any(f"docs say {wrong}," in problem for problem in problems), problems
    assert not check_figures(text, "export.md", every_figure_marked=True)


def test_an_unmarked_figure_on_a_measurement_page_fails_the_check() -> None:
    planted = "The shipped model scores 0.6442 on validation, in 18 s.\n"
    problems = check_figures(planted, "export.md", every_figure_marked=True)
    assert [problem.split(": ", 1)[1].split(" has")[0] for problem in problems] == [
        "figure 0.6442",
        "figure 18",
    ]
    assert not check_figures("Keras 3.15 at `width: 0.375`, batch 128.\n", "x.md", True)


def test_a_marker_whose_key_is_missing_fails_the_check() -> None:
    problems = check_figures("0.66<!-- fig bundled no_such_key -->\n", "x.md", True)
    assert problems and "no no_such_key in bundled" in problems[0]


@pytest.mark.parametrize(
    ("shown", "suffix", "value", "expected"),
    [
        ("0.664", None, 0.6643454, True),
        ("0.6643", None, "0.6643", True),
        ("0.665", None, 0.6643454, False),
        ("8.3e-7", None, 8.344650268554688e-07, True),
        ("9.5e-7", None, 8.344650268554688e-07, False),
        ("2.49", "G", 2_494_077_952, True),
        ("703.19", "K", 703_191, True),
        ("1,403", None, 1403.4, True),
        ("3.15.1", None, "3.15.1", True),
        ("2.21", None, "2.21.0", False),
    ],
)
def test_figure_rounding_rule(shown: str, suffix: str | None, value: Any, expected: bool) -> None:
    assert matches(shown, suffix, value) is expected
