"""Reading a run directory's files without failing: what `report` and `compare` show.

A missing or malformed file becomes a `RunFile` with the reason (`why`) instead of an
exception, so a run that was never evaluated or exported still gets a report or a row.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emotionkit.errors import EmotionkitError

MISSING_TEXT = "—"


class RunDirError(EmotionkitError):
    """A path given as a run directory that is not one (absent, or no run files in it)."""


@dataclass(frozen=True)
class RunFile:
    """A run file's parsed JSON object, or `why` it is not there (the report's note)."""

    content: dict[str, Any] | None = None
    why: str = ""
    source: str = ""


def run_name(run_dir: Path) -> str:
    """`<recipe name>/<timestamp>`: the last two parts, which tell runs apart in a table."""
    return "/".join(Path(run_dir).resolve().parts[-2:])


def read_run_json(run_dir: Path, relative: str) -> RunFile:
    """Parse `run_dir/relative`; a missing or malformed file gives `why` instead of raising."""
    path = Path(run_dir) / relative
    if not path.is_file():
        return RunFile(why=f"{relative} not found")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return RunFile(why=f"{relative} could not be read ({error})")
    if not isinstance(content, dict):
        return RunFile(why=f"{relative} is not a JSON object")
    return RunFile(content, source=relative)


def load_split_metrics(run_dir: Path, split: str) -> RunFile:
    """Metrics of `split`: `eval/<split>/metrics.json` if evaluated, else the training-time ones.

    The evaluation file comes first because it has the full set (balanced accuracy, κ,
    calibration, TTA) for the exported target; `metrics.json[split]`, written at the end of
    training, has accuracy, macro-F1, per-class scores and the confusion matrix only.
    """
    evaluated = read_run_json(run_dir, f"eval/{split}/metrics.json")
    if evaluated.content is not None:
        return evaluated
    trained = read_run_json(run_dir, "metrics.json")
    entry = (trained.content or {}).get(split)
    if isinstance(entry, dict):
        return RunFile(entry, source=f'metrics.json["{split}"] (training-time)')
    fallback = trained.why or f"metrics.json has no {split!r} entry"
    return RunFile(why=f"{evaluated.why}, and {fallback}")


def format_number(value: Any) -> str:
    """A number for people: 4 decimals for scores, separators for counts, "—" for absent."""
    if value is None:
        return MISSING_TEXT
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if not isinstance(value, float):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if value != 0 and abs(value) < 1e-3:  # parity differences of 1e-6 would print as 0.0000
        return f"{value:.2e}"
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.4f}"


def epochs_logged(run_dir: Path) -> int | None:
    """Distinct epochs in `history.csv` (a resumed run appends to it), or None without one."""
    path = Path(run_dir) / "history.csv"
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as handle:
        return len({row.get("epoch") for row in csv.DictReader(handle)})
