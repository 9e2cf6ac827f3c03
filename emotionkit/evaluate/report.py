"""One run on one page: `report.html`, self-contained, opens offline in any browser.

`build_report(run_dir)` reads what a run directory holds (recipe, manifest, training and
evaluation metrics, plots, export parity) and writes HTML with inline CSS and every image
embedded as a base64 data URI, so the single file can be mailed or attached to a ticket and
still show everything. A missing or unreadable file gives its section a "not available: why"
note instead of an error: a report of a run that was never evaluated is still worth reading.

This module only reads files (no Keras, TensorFlow or JAX), through `run_files`, the
readers it shares with `compare`.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emotionkit.evaluate.run_files import (
    MISSING_TEXT,
    RunDirError,
    RunFile,
    epochs_logged,
    format_number,
    load_split_metrics,
    read_run_json,
    run_name,
)


class _Html(str):
    """Markup built here, inserted as is; every other string is escaped."""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _note(why: str) -> _Html:
    return _Html(f'<p class="na">not available: {_esc(why)}</p>')


def _shown(value: Any) -> str:
    return value if isinstance(value, _Html) else _esc(format_number(value))


def _cell(value: Any) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f'<td class="num">{_shown(value)}</td>' if numeric else f"<td>{_shown(value)}</td>"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> _Html:
    head = "".join(f"<th>{_esc(name)}</th>" for name in header)
    body = "".join("<tr>" + "".join(_cell(value) for value in row) + "</tr>\n" for row in rows)
    return _Html(
        f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{body}</tbody>\n</table></div>"
    )


def _facts(pairs: Iterable[tuple[str, Any]]) -> _Html:
    items = "".join(f"<dt>{_esc(name)}</dt><dd>{_shown(value)}</dd>" for name, value in pairs)
    return _Html(f"<dl>{items}</dl>")


@dataclass(frozen=True)
class _Run:
    """Everything the sections read, loaded once."""

    name: str
    split: str
    recipe: str | None
    manifest: RunFile
    training: RunFile
    metrics: RunFile
    export: RunFile
    epochs: int | None
    plots: Path

    def plot(self, filename: str, caption: str) -> _Html:
        """A plot embedded as a data URI, or a note naming the file that is missing."""
        path = self.plots / filename
        if not path.is_file():
            return _note(f"eval/{self.split}/plots/{filename} not found")
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return _Html(
            f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(caption)}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>"
        )


def _load_run(run_dir: Path, split: str) -> _Run:
    recipe_path = run_dir / "recipe.yaml"
    return _Run(
        name=run_name(run_dir),
        split=split,
        recipe=recipe_path.read_text(encoding="utf-8", errors="replace")
        if recipe_path.is_file()
        else None,
        manifest=read_run_json(run_dir, "manifest.json"),
        training=read_run_json(run_dir, "metrics.json"),
        metrics=load_split_metrics(run_dir, split),
        export=read_run_json(run_dir, "export/export.json"),
        epochs=epochs_logged(run_dir),
        plots=run_dir / "eval" / split / "plots",
    )


_HEADLINE = (
    ("accuracy", "accuracy"),
    ("macro_f1", "macro-F1"),
    ("balanced_accuracy", "balanced accuracy"),
    ("cohen_kappa", "Cohen's κ"),
    ("log_loss", "log-loss"),
    ("ece", "ECE"),
)


def _tta_gain(metrics: dict[str, Any]) -> _Html:
    """What test-time augmentation bought over the plain forward pass, when both were run."""
    plain = metrics.get("without_tta")
    if not isinstance(plain, dict):
        return _Html("")
    gains = [
        f"{label} {metrics[key] - plain[key]:+.4f}"
        for key, label in (
            ("accuracy", "accuracy"),
            ("macro_f1", "macro-F1"),
            ("log_loss", "log-loss"),
        )
        if isinstance(metrics.get(key), (int, float)) and isinstance(plain.get(key), (int, float))
    ]
    tta = metrics.get("tta", "?")
    return _Html(f"<p>TTA gain ({_esc(tta)} vs none): {_esc(', '.join(gains))}</p>")


def _run_facts(run: _Run) -> _Html:
    """Which run, how it ended, and where the numbers below come from."""
    manifest = run.manifest.content or {}
    training = run.training.content or {}
    status = str(manifest.get("status", MISSING_TEXT))
    css = "pass" if status == "completed" else "fail"
    best = training.get("best_epoch")
    facts: list[tuple[str, Any]] = [
        ("run", run.name),
        ("status", _Html(f'<span class="{css}">{_esc(status)}</span>')),
        ("created", manifest.get("created")),
        ("split", run.split),
        ("metrics from", run.metrics.source or None),
        ("best epoch", None if best is None else f"{best} ({training.get('monitor', '?')})"),
        ("wall time (s)", manifest.get("wall_seconds")),
    ]
    if manifest.get("failure"):  # written when training stopped on a non-finite loss
        facts.append(("failure", json.dumps(manifest["failure"])))
    return _facts(facts)


def _summary(run: _Run) -> str:
    facts = _run_facts(run)
    if run.metrics.content is None:
        return facts + _note(run.metrics.why)
    metrics = run.metrics.content
    cards = "".join(
        f'<div class="card"><b>{_esc(format_number(metrics.get(key)))}</b>'
        f"<span>{_esc(label)}</span></div>"
        for key, label in _HEADLINE
    )
    return facts + f'<div class="cards">{cards}</div>' + _tta_gain(metrics)


def _recipe(run: _Run) -> str:
    if run.recipe is None:
        return _note("recipe.yaml not found")
    return f"<pre>{_esc(run.recipe)}</pre>"


def _with_reason(runtime: dict[str, Any], key: str) -> str | None:
    """`tensorflow (auto: CPU only, ...)`: the choice with the reason the runtime recorded."""
    value, reason = runtime.get(key), runtime.get(f"{key}_reason")
    return f"{value} ({reason})" if value is not None and reason else value


def _environment(run: _Run) -> str:
    if run.manifest.content is None:
        return _note(run.manifest.why)
    manifest = run.manifest.content
    runtime = manifest.get("runtime") or {}
    facts = _facts(
        [
            ("git commit", manifest.get("git_commit")),
            ("backend", _with_reason(runtime, "backend")),
            ("precision", _with_reason(runtime, "precision")),
            ("XLA (jit_compile)", runtime.get("jit_compile")),
            ("GPU visible", runtime.get("gpu_visible")),
            ("devices", ", ".join(map(str, manifest.get("devices") or [])) or None),
        ]
    )
    versions = (manifest.get("versions") or {}).items()
    return facts + "<h3>versions</h3>" + _table(["package", "version"], versions)


def _data(run: _Run) -> str:
    data = (run.manifest.content or {}).get("data")
    if not isinstance(data, dict):
        return _note(run.manifest.why or "manifest.json has no data summary")
    classes = [str(name) for name in data.get("classes") or []]
    facts = _facts(
        [
            ("classes", ", ".join(classes) or None),
            ("fingerprint", data.get("fingerprint")),
            ("soft labels", data.get("soft_labels")),
            (
                "pixel mean / std",
                f"{format_number(data.get('pixel_mean'))} / {format_number(data.get('pixel_std'))}",
            ),
            ("skipped files", data.get("skipped_files")),
        ]
    )
    splits = [
        [name, split.get("size"), *(split.get("class_counts") or [])]
        for name, split in (data.get("splits") or {}).items()
    ]
    parts = [facts, "<h3>split sizes</h3>", _table(["split", "images", *classes], splits)]
    balance = data.get("balance")
    if isinstance(balance, dict):
        rows = [
            [key, *values]
            for key in ("counts", "weights", "sampling")
            if (values := balance.get(key))
        ]
        parts += [f"<h3>balance: {_esc(balance.get('mode'))}</h3>", _table(["", *classes], rows)]
    return "".join(parts)


def _curves(run: _Run) -> str:
    logged = "history.csv not found" if run.epochs is None else f"{run.epochs} epochs logged"
    return f"<p>{_esc(logged)}</p>" + run.plot("curves.png", "training curves")


def _metric_rows(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    """Every scalar in the metrics file; nested groups (top-k, soft-label, no-TTA) flattened."""
    names = {
        "top_k_accuracy": "top-{} accuracy",
        "soft_label": "soft label: {}",
        "without_tta": "without TTA: {}",
    }
    rows: list[tuple[str, Any]] = []
    for key, value in metrics.items():
        if isinstance(value, dict) and key != "per_class":
            label = names.get(key, f"{key.replace('_', ' ')}: {{}}")
            rows += [
                (label.format(sub), v)
                for sub, v in value.items()
                if not isinstance(v, (dict, list))
            ]
        elif not isinstance(value, (dict, list)):
            rows.append((key, value))
    return rows


def _metrics(run: _Run) -> str:
    if run.metrics.content is None:
        return _note(run.metrics.why)
    source = f"<p>from {_esc(run.metrics.source)}</p>"
    return source + _table(["metric", "value"], _metric_rows(run.metrics.content))


def _per_class(run: _Run) -> str:
    per_class = (run.metrics.content or {}).get("per_class")
    if not isinstance(per_class, dict):
        table: str = _note(run.metrics.why or "the metrics have no per-class scores")
    else:
        keys = ("precision", "recall", "f1", "support")
        rows = [[name, *(scores.get(key) for key in keys)] for name, scores in per_class.items()]
        table = _table(["class", "precision", "recall", "F1", "support"], rows)
    return table + run.plot("per_class.png", "per-class precision, recall and F1")


def _class_names(run: _Run) -> list[str]:
    metrics = run.metrics.content or {}
    names = metrics.get("class_names") or list(metrics.get("per_class") or {})
    return [str(name) for name in names]


def _confusion(run: _Run) -> str:
    counts = run.plot("confusion_counts.png", "confusion matrix (counts; rows: true class)")
    normalized = run.plot("confusion_normalized.png", "confusion matrix (row-normalised)")
    matrix = (run.metrics.content or {}).get("confusion_matrix")
    if (run.plots / "confusion_counts.png").is_file() or not isinstance(matrix, list):
        return counts + normalized
    names = _class_names(run)
    if len(names) != len(matrix):
        names = [str(i) for i in range(len(matrix))]
    rows = [[f"true {name}", *row] for name, row in zip(names, matrix, strict=True)]
    return counts + normalized + _table(["", *names], rows)


def _calibration(run: _Run) -> str:
    metrics = run.metrics.content or {}
    ece, log_loss = (format_number(metrics.get(key)) for key in ("ece", "log_loss"))
    values = f"ECE {ece}, log-loss {log_loss}"
    return f"<p>{_esc(values)}</p>" + run.plot("reliability.png", "reliability diagram")


_ERROR_PLOTS = (
    ("mistakes.png", "most confident mistakes"),
    ("correct.png", "random correct predictions per class"),
    ("distributions.png", "predicted vs soft-label distributions"),
    ("tsne.png", "t-SNE of the embeddings"),
)


def _errors(run: _Run) -> str:
    present = [
        run.plot(name, caption) for name, caption in _ERROR_PLOTS if (run.plots / name).is_file()
    ]
    if not present:
        names = ", ".join(name for name, _ in _ERROR_PLOTS)
        return _note(f"none of {names} in eval/{run.split}/plots/")
    return "".join(present)


def _gradcam(run: _Run) -> str:
    return run.plot("gradcam.png", "Grad-CAM heat maps")


def _export(run: _Run) -> str:
    if run.export.content is None:
        return _note(run.export.why)
    report = run.export.content
    passed = bool(report.get("passed"))
    verdict = _Html(
        f'<span class="{"pass" if passed else "fail"}">{"passed" if passed else "FAILED"}</span>'
    )
    facts = _facts(
        [
            ("parity", verdict),
            ("samples", report.get("parity_samples")),
            ("atol", report.get("atol")),
        ]
    )
    rows = [
        [name, check.get("max_abs_diff"), check.get("top1_agreement"), check.get("passed")]
        for name, check in (report.get("checks") or {}).items()
        if isinstance(check, dict)
    ]
    return facts + _table(["format", "max abs diff", "top-1 agreement", "passed"], rows)


_SECTIONS: dict[str, tuple[str, Callable[[_Run], str]]] = {
    "summary": ("Summary", _summary),
    "recipe": ("Recipe", _recipe),
    "environment": ("Environment", _environment),
    "data": ("Data", _data),
    "curves": ("Training curves", _curves),
    "metrics": ("Metrics", _metrics),
    "per-class": ("Per-class scores", _per_class),
    "confusion": ("Confusion matrix", _confusion),
    "calibration": ("Calibration", _calibration),
    "errors": ("Errors and embeddings", _errors),
    "gradcam": ("Grad-CAM", _gradcam),
    "export": ("Export parity", _export),
}
REPORT_SECTIONS: tuple[str, ...] = tuple(_SECTIONS)
"""Section ids, in page order (each is an element `id` with an `<h2>`)."""


def _section(section_id: str, run: _Run) -> str:
    title, builder = _SECTIONS[section_id]
    try:
        body = builder(run)
    except (KeyError, TypeError, ValueError, AttributeError, OSError) as error:
        # A file written by another version with an unexpected shape: note it, keep the page.
        body = _note(f"unexpected file contents ({type(error).__name__}: {error})")
    return f'<section id="{section_id}">\n<h2>{_esc(title)}</h2>\n{body}\n</section>\n'


_CSS = """
body{margin:0;background:#f6f7f9;color:#1f2328;font:15px/1.5 system-ui,-apple-system,
"Segoe UI",Roboto,Helvetica,Arial,sans-serif} main{max-width:1100px;margin:0 auto;padding:24px}
h1{margin:0 0 4px;font-size:1.6em} h3{font-size:1em;margin:16px 0 4px}
h2{margin:0 0 12px;font-size:1.25em;border-bottom:1px solid #eaeef2;padding-bottom:6px}
nav{display:flex;flex-wrap:wrap;gap:4px 14px;margin:8px 0 16px;font-size:.9em}
nav a{color:#0969da;text-decoration:none}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px 20px;margin:16px 0}
.scroll{overflow-x:auto} table{border-collapse:collapse;margin:8px 0;font-size:.9em}
th,td{border:1px solid #d0d7de;padding:4px 10px;text-align:left} th{background:#f0f3f6}
tbody tr:nth-child(even) td{background:#fafbfc}
td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:12px;overflow:auto;
font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
figure{margin:12px 0} img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption,dt,.card span{color:#57606a} figcaption,.card span{font-size:.85em}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0 0 8px}
dd{margin:0;overflow-wrap:anywhere} .cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:1.4em;font-variant-numeric:tabular-nums}
.na{color:#6e7781;font-style:italic} .pass{color:#1a7f37;font-weight:600}
.fail{color:#cf222e;font-weight:600}
"""


def _page(run: _Run) -> str:
    nav = "".join(f'<a href="#{sid}">{_esc(_SECTIONS[sid][0])}</a>' for sid in REPORT_SECTIONS)
    sections = "".join(_section(sid, run) for sid in REPORT_SECTIONS)
    title = _esc(f"emotionkit report: {run.name} ({run.split})")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<header><h1>{title}</h1><nav>{nav}</nav></header>\n{sections}</main>\n</body>\n</html>\n"
    )


def build_report(run_dir: Path, split: str = "val", out: Path | None = None) -> Path:
    """Write a self-contained HTML report of one run and return its path.

    Args:
        run_dir: a run directory written by `emotionkit train` (and optionally evaluated,
            which adds `eval/<split>/metrics.json` and `eval/<split>/plots/`).
        split: which split's metrics and plots to show.
        out: where to write; default `run_dir/report.html`.

    Returns:
        The path written.

    Raises:
        RunDirError: `run_dir` does not exist or holds none of recipe.yaml, manifest.json
            and metrics.json. Any other missing file only gives its section a note.

    Example:
        >>> build_report(Path("runs/fer2013-cpu/2026-11-26T03-31-49"))  # doctest: +SKIP
        PosixPath('runs/fer2013-cpu/2026-11-26T03-31-49/report.html')
    """
    run_dir = Path(run_dir)
    markers = ("recipe.yaml", "manifest.json", "metrics.json")
    if not run_dir.is_dir() or not any((run_dir / name).is_file() for name in markers):
        raise RunDirError(
            f"{run_dir} is not a run directory (no {', '.join(markers)}): pass a folder that "
            "`emotionkit train` wrote, such as runs/<recipe name>/<timestamp>"
        )
    out = Path(out) if out is not None else run_dir / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_page(_load_run(run_dir, split)), encoding="utf-8")
    return out
