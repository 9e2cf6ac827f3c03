"""One run on one page: `report.html`, self-contained, opens offline in any browser.

`build_report(run_dir)` reads what a run directory holds (recipe, manifest, training and
evaluation metrics, plots, export parity) and writes HTML with inline CSS and every image
embedded as a base64 data URI, so the single file can be mailed or attached to a ticket and
still show everything. A missing or unreadable file gives its section a "not available: why"
note instead of an error: a report of a run that was never evaluated is still worth reading.

This module lays out the page; `report_sections` builds each section from the run as
`report_sections.load_report_run` reads it, with the HTML pieces of `report_markup`. It only
reads files (no Keras, TensorFlow or JAX), through `run_files`, the readers it shares with
`compare`.
"""

from __future__ import annotations

from pathlib import Path

from emotionkit.evaluate.report_markup import escape, note
from emotionkit.evaluate.report_sections import (
    REPORT_SECTIONS,
    SECTIONS,
    ReportRun,
    load_report_run,
)
from emotionkit.evaluate.run_files import RunDirError

__all__ = ["REPORT_SECTIONS", "RunDirError", "build_report"]


def _section(section_id: str, run: ReportRun) -> str:
    title, builder = SECTIONS[section_id]
    try:
        body = builder(run)
    except (KeyError, TypeError, ValueError, AttributeError, OSError) as error:
        # A file written by another version with an unexpected shape: note it, keep the page.
        body = note(f"unexpected file contents ({type(error).__name__}: {error})")
    return f'<section id="{section_id}">\n<h2>{escape(title)}</h2>\n{body}\n</section>\n'


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


def _page(run: ReportRun) -> str:
    nav = "".join(f'<a href="#{sid}">{escape(SECTIONS[sid][0])}</a>' for sid in REPORT_SECTIONS)
    sections = "".join(_section(sid, run) for sid in REPORT_SECTIONS)
    title = escape(f"emotionkit report: {run.name} ({run.split})")
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
    out.write_text(_page(load_report_run(run_dir, split)), encoding="utf-8")
    return out
