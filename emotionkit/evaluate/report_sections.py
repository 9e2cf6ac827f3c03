"""The report's sections: each reads the loaded run and returns its HTML body.

`SECTIONS` maps a section id to its title and builder, in page order. A builder never
raises for a missing file: it shows a note saying which file and why (`report_markup.note`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emotionkit.evaluate.report_markup import Html, escape, fact_list, html_table, note, png_figure
from emotionkit.evaluate.run_files import (
    MISSING_TEXT,
    RunFile,
    epochs_logged,
    format_number,
    load_split_metrics,
    read_run_json,
    run_name,
)


@dataclass(frozen=True)
class ReportRun:
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

    def plot(self, filename: str, caption: str) -> Html:
        """A plot embedded as a data URI, or a note naming the file that is missing."""
        path = self.plots / filename
        if not path.is_file():
            return note(f"eval/{self.split}/plots/{filename} not found")
        return png_figure(path.read_bytes(), caption)


def load_report_run(run_dir: Path, split: str) -> ReportRun:
    """Read every file the sections show; a missing one is kept as a `RunFile` with `why`."""
    recipe_path = run_dir / "recipe.yaml"
    return ReportRun(
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


def _tta_gain(metrics: dict[str, Any]) -> Html:
    """What test-time augmentation bought over the plain forward pass, when both were run."""
    plain = metrics.get("without_tta")
    if not isinstance(plain, dict):
        return Html("")
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
    return Html(f"<p>TTA gain ({escape(tta)} vs none): {escape(', '.join(gains))}</p>")


def _run_facts(run: ReportRun) -> Html:
    """Which run, how it ended, and where the numbers below come from."""
    manifest = run.manifest.content or {}
    training = run.training.content or {}
    status = str(manifest.get("status", MISSING_TEXT))
    css = "pass" if status == "completed" else "fail"
    best = training.get("best_epoch")
    facts: list[tuple[str, Any]] = [
        ("run", run.name),
        ("status", Html(f'<span class="{css}">{escape(status)}</span>')),
        ("created", manifest.get("created")),
        ("split", run.split),
        ("metrics from", run.metrics.source or None),
        ("best epoch", None if best is None else f"{best} ({training.get('monitor', '?')})"),
        ("wall time (s)", manifest.get("wall_seconds")),
    ]
    if manifest.get("failure"):  # written when training stopped on a non-finite loss
        facts.append(("failure", json.dumps(manifest["failure"])))
    return fact_list(facts)


def _summary(run: ReportRun) -> str:
    facts = _run_facts(run)
    if run.metrics.content is None:
        return facts + note(run.metrics.why)
    metrics = run.metrics.content
    cards = "".join(
        f'<div class="card"><b>{escape(format_number(metrics.get(key)))}</b>'
        f"<span>{escape(label)}</span></div>"
        for key, label in _HEADLINE
    )
    return facts + f'<div class="cards">{cards}</div>' + _tta_gain(metrics)


def _recipe(run: ReportRun) -> str:
    if run.recipe is None:
        return note("recipe.yaml not found")
    return f"<pre>{escape(run.recipe)}</pre>"


def _with_reason(runtime: dict[str, Any], key: str) -> str | None:
    """`tensorflow (auto: CPU only, ...)`: the choice with the reason the runtime recorded."""
    value, reason = runtime.get(key), runtime.get(f"{key}_reason")
    return f"{value} ({reason})" if value is not None and reason else value


def _environment(run: ReportRun) -> str:
    if run.manifest.content is None:
        return note(run.manifest.why)
    manifest = run.manifest.content
    runtime = manifest.get("runtime") or {}
    facts = fact_list(
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
    return facts + "<h3>versions</h3>" + html_table(["package", "version"], versions)


def _data(run: ReportRun) -> str:
    data = (run.manifest.content or {}).get("data")
    if not isinstance(data, dict):
        return note(run.manifest.why or "manifest.json has no data summary")
    classes = [str(name) for name in data.get("classes") or []]
    facts = fact_list(
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
    parts = [facts, "<h3>split sizes</h3>", html_table(["split", "images", *classes], splits)]
    balance = data.get("balance")
    if isinstance(balance, dict):
        rows = [
            [key, *values]
            for key in ("counts", "weights", "sampling")
            if (values := balance.get(key))
        ]
        parts += [
            f"<h3>balance: {escape(balance.get('mode'))}</h3>",
            html_table(["", *classes], rows),
        ]
    return "".join(parts)


def _curves(run: ReportRun) -> str:
    logged = "history.csv not found" if run.epochs is None else f"{run.epochs} epochs logged"
    return f"<p>{escape(logged)}</p>" + run.plot("curves.png", "training curves")


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


def _metrics(run: ReportRun) -> str:
    if run.metrics.content is None:
        return note(run.metrics.why)
    source = f"<p>from {escape(run.metrics.source)}</p>"
    return source + html_table(["metric", "value"], _metric_rows(run.metrics.content))


def _per_class(run: ReportRun) -> str:
    per_class = (run.metrics.content or {}).get("per_class")
    if not isinstance(per_class, dict):
        table: str = note(run.metrics.why or "the metrics have no per-class scores")
    else:
        keys = ("precision", "recall", "f1", "support")
        rows = [[name, *(scores.get(key) for key in keys)] for name, scores in per_class.items()]
        table = html_table(["class", "precision", "recall", "F1", "support"], rows)
    return table + run.plot("per_class.png", "per-class precision, recall and F1")


def _class_names(run: ReportRun) -> list[str]:
    metrics = run.metrics.content or {}
    names = metrics.get("class_names") or list(metrics.get("per_class") or {})
    return [str(name) for name in names]


def _confusion(run: ReportRun) -> str:
    counts = run.plot("confusion_counts.png", "confusion matrix (counts; rows: true class)")
    normalized = run.plot("confusion_normalized.png", "confusion matrix (row-normalised)")
    matrix = (run.metrics.content or {}).get("confusion_matrix")
    if (run.plots / "confusion_counts.png").is_file() or not isinstance(matrix, list):
        return counts + normalized
    names = _class_names(run)
    if len(names) != len(matrix):
        names = [str(i) for i in range(len(matrix))]
    rows = [[f"true {name}", *row] for name, row in zip(names, matrix, strict=True)]
    return counts + normalized + html_table(["", *names], rows)


def _calibration(run: ReportRun) -> str:
    metrics = run.metrics.content or {}
    ece, log_loss = (format_number(metrics.get(key)) for key in ("ece", "log_loss"))
    values = f"ECE {ece}, log-loss {log_loss}"
    return f"<p>{escape(values)}</p>" + run.plot("reliability.png", "reliability diagram")


_ERROR_PLOTS = (
    ("mistakes.png", "most confident mistakes"),
    ("correct.png", "random correct predictions per class"),
    ("distributions.png", "predicted vs soft-label distributions"),
    ("tsne.png", "t-SNE of the embeddings"),
)


def _errors(run: ReportRun) -> str:
    present = [
        run.plot(name, caption) for name, caption in _ERROR_PLOTS if (run.plots / name).is_file()
    ]
    if not present:
        names = ", ".join(name for name, _ in _ERROR_PLOTS)
        return note(f"none of {names} in eval/{run.split}/plots/")
    return "".join(present)


def _gradcam(run: ReportRun) -> str:
    return run.plot("gradcam.png", "Grad-CAM heat maps")


def _export(run: ReportRun) -> str:
    if run.export.content is None:
        return note(run.export.why)
    report = run.export.content
    passed = bool(report.get("passed"))
    verdict = Html(
        f'<span class="{"pass" if passed else "fail"}">{"passed" if passed else "FAILED"}</span>'
    )
    facts = fact_list(
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
    return facts + html_table(["format", "max abs diff", "top-1 agreement", "passed"], rows)


SECTIONS: dict[str, tuple[str, Callable[[ReportRun], str]]] = {
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
REPORT_SECTIONS: tuple[str, ...] = tuple(SECTIONS)
"""Section ids, in page order (each is an element `id` with an `<h2>`)."""
