"""`build_report`: one self-contained HTML page per run, with a note for anything missing."""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from emotionkit.errors import EmotionkitError
from emotionkit.evaluate.report import REPORT_SECTIONS, RunDirError, build_report

CLASSES = ["angry", "happy", "sad"]
PLOTS = [
    "confusion_counts.png",
    "confusion_normalized.png",
    "curves.png",
    "reliability.png",
    "per_class.png",
    "mistakes.png",
    "correct.png",
    "tsne.png",
    "gradcam.png",
]
RECIPE = """\
# <script>alert("recipe comment")</script>
name: demo <b>bold</b>
train:
  optimizer:
    lr: 0.002
"""


def tiny_png() -> bytes:
    """A valid 1x1 grey PNG, built by hand so the test needs no image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)  # 1x1, 8-bit greyscale
    idat = zlib.compress(b"\x00\x80")  # filter byte 0, one pixel of value 128
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def per_class(scale: float) -> dict:
    return {
        name: {"precision": scale, "recall": scale, "f1": scale, "support": 10} for name in CLASSES
    }


def eval_metrics() -> dict:
    return {
        "target": "checkpoints/best.keras",
        "target_kind": "keras",
        "split": "val",
        "tta": "hflip",
        "class_names": CLASSES,
        "num_images": 30,
        "accuracy": 0.8125,
        "top_k_accuracy": {"2": 0.9375},
        "balanced_accuracy": 0.7775,
        "macro_f1": 0.7654,
        "weighted_f1": 0.8011,
        "micro_f1": 0.8125,
        "cohen_kappa": 0.6543,
        "log_loss": 0.4321,
        "ece": 0.0432,
        "per_class": per_class(0.75),
        "confusion_matrix": [[8, 1, 1], [0, 10, 0], [2, 1, 7]],
        "soft_label": {"tvd": 0.1234, "kl": 0.2345, "emd": 0.3456},
        "without_tta": {"accuracy": 0.8, "macro_f1": 0.75, "log_loss": 0.45},
    }


def manifest() -> dict:
    return {
        "status": "completed",
        "created": "2026-11-26T03:31:49+0000",
        "versions": {"python": "3.11.7", "keras": "3.15.1"},
        "git_commit": "7cd03387d6c1",
        "runtime": {"backend": "jax", "precision": "float32", "jit_compile": True},
        "devices": ["cpu:0"],
        "data": {
            "classes": CLASSES,
            "fingerprint": "0f487557a77c8b2a",
            "splits": {"train": {"size": 60, "class_counts": [20, 30, 10]}},
            "balance": {
                "mode": "class_weights",
                "counts": [20, 30, 10],
                "weights": [1.0, 0.6667, 2.0],
            },
        },
        "parameters": {"trainable": 1000, "total": 1200},
        "wall_seconds": 12.5,
    }


def export_report() -> dict:
    checks = {
        "saved_model": {"max_abs_diff": 0.0, "top1_agreement": 1.0, "passed": True},
        "onnx": {"max_abs_diff": 2.5e-06, "top1_agreement": 1.0, "passed": True, "opset": 15},
    }
    return {"passed": True, "parity_samples": 16, "atol": 0.0001, "checks": checks}


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


def make_run(root: Path, *, evaluated: bool = True) -> Path:
    """A run directory as `emotionkit train` (and, if `evaluated`, evaluation) leaves it."""
    run_dir = root / "demo" / "2026-11-26T03-31-49"
    run_dir.mkdir(parents=True)
    (run_dir / "recipe.yaml").write_text(RECIPE)
    write_json(run_dir / "manifest.json", manifest())
    (run_dir / "history.csv").write_text("epoch,accuracy,loss\n0,0.4,1.2\n1,0.5,1.0\n2,0.6,0.9\n")
    training = {"accuracy": 0.5, "macro_f1": 0.4567, "per_class": per_class(0.5)}
    training["confusion_matrix"] = [[5, 3, 2], [1, 8, 1], [4, 2, 4]]
    write_json(
        run_dir / "metrics.json", {"best_epoch": 2, "monitor": "val_accuracy", "val": training}
    )
    write_json(run_dir / "export" / "export.json", export_report())
    if evaluated:
        write_json(run_dir / "eval" / "val" / "metrics.json", eval_metrics())
        plots = run_dir / "eval" / "val" / "plots"
        plots.mkdir()
        for name in PLOTS:
            (plots / name).write_bytes(tiny_png())
    return run_dir


VOID_TAGS = frozenset({"meta", "img", "br", "hr", "link", "input"})  # elements with no end tag


class StructureParser(HTMLParser):
    """Records element ids, which section each <h2> is in, and unbalanced tags."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, str | None]] = []
        self.ids: list[str] = []
        self.headings: list[str | None] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element_id = dict(attrs).get("id")
        if element_id:
            self.ids.append(element_id)
        if tag == "h2":
            sections = [eid for name, eid in self.stack if name == "section"]
            self.headings.append(sections[-1] if sections else None)
        if tag not in VOID_TAGS:
            self.stack.append((tag, element_id))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def parse(page: str) -> StructureParser:
    parser = StructureParser()
    parser.feed(page)
    parser.close()
    return parser


def section(page: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', page, re.DOTALL)
    assert match, f"no section {section_id}"
    return match.group(1)


@pytest.fixture
def report(tmp_path: Path) -> str:
    return build_report(make_run(tmp_path)).read_text(encoding="utf-8")


def test_report_is_written_into_the_run_by_default(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path)
    assert build_report(run_dir) == run_dir / "report.html"
    custom = build_report(run_dir, out=tmp_path / "elsewhere" / "r.html")
    assert custom.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_every_section_appears_once_with_its_heading(report: str) -> None:
    parsed = parse(report)
    ids = Counter(parsed.ids)
    for section_id in REPORT_SECTIONS:
        assert ids[section_id] == 1, section_id
        assert parsed.headings.count(section_id) == 1, f"{section_id} has no single <h2>"
    assert len(REPORT_SECTIONS) == 12


def test_html_tags_balance(report: str) -> None:
    parsed = parse(report)
    assert parsed.errors == []
    assert parsed.stack == []


def test_images_are_embedded_and_nothing_is_fetched(report: str) -> None:
    sources = re.findall(r'src="([^"]*)"', report)
    assert len(sources) == len(PLOTS)
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1]) == tiny_png()
    assert not re.search(r"https?://|file:|<script|<link|@import|url\(", report, re.IGNORECASE)
    assert set(re.findall(r'href="([^"]*)"', report)) == {f"#{sid}" for sid in REPORT_SECTIONS}


def test_recipe_text_is_escaped(report: str) -> None:
    recipe = section(report, "recipe")
    assert "&lt;script&gt;alert(&quot;recipe comment&quot;)&lt;/script&gt;" in recipe
    assert "demo &lt;b&gt;bold&lt;/b&gt;" in recipe
    assert "<b>bold" not in report


def test_evaluation_metrics_are_preferred(report: str) -> None:
    summary = section(report, "summary")
    for shown in ("0.8125", "0.7654", "0.7775", "0.6543", "0.4321", "0.0432"):
        assert shown in summary
    assert "eval/val/metrics.json" in summary
    assert (
        "TTA gain (hflip vs none): accuracy +0.0125, macro-F1 +0.0154, log-loss -0.0179" in summary
    )
    metrics = section(report, "metrics")
    for label in ("top-2 accuracy", "balanced_accuracy", "cohen_kappa", "soft label: tvd"):
        assert f"<td>{label}</td>" in metrics
    assert "without TTA: accuracy" in metrics
    assert "not available" not in report


def test_tables_show_per_class_export_and_balance(report: str) -> None:
    per_class = section(report, "per-class")
    assert per_class.count("<tr>") == 1 + len(CLASSES)
    assert "0.7500" in per_class
    export = section(report, "export")
    assert "onnx" in export and "2.50e-06" in export and 'class="pass"' in export
    data = section(report, "data")
    assert "0f487557a77c8b2a" in data and "balance: class_weights" in data and "0.6667" in data


def test_missing_evaluation_falls_back_to_training_metrics(tmp_path: Path) -> None:
    page = build_report(make_run(tmp_path, evaluated=False)).read_text(encoding="utf-8")
    summary = section(page, "summary")
    assert "0.5000" in summary and "0.4567" in summary
    assert "training-time" in summary
    assert "TTA gain" not in summary
    for section_id in ("curves", "per-class", "confusion", "calibration", "errors", "gradcam"):
        body = section(page, section_id)
        assert "not available:" in body and "eval/val/plots/" in body, section_id
    # Without the confusion plots the training-time matrix is shown as a table instead.
    assert "<td>true angry</td>" in section(page, "confusion")
    assert "data:image" not in page
    assert parse(page).errors == []


def test_missing_and_malformed_files_give_notes(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, evaluated=False)
    (run_dir / "manifest.json").write_text("{not json")
    (run_dir / "export" / "export.json").unlink()
    (run_dir / "metrics.json").write_text(json.dumps({"best_epoch": 2}))
    page = build_report(run_dir).read_text(encoding="utf-8")
    assert "not available: manifest.json could not be read" in section(page, "environment")
    assert "not available: manifest.json could not be read" in section(page, "data")
    assert "not available: export/export.json not found" in section(page, "export")
    expected = "eval/val/metrics.json not found, and metrics.json has no &#x27;val&#x27; entry"
    assert expected in section(page, "metrics")
    assert Counter(parse(page).ids)["summary"] == 1


def test_a_folder_that_is_not_a_run_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-run"
    with pytest.raises(RunDirError, match="no-such-run"):
        build_report(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EmotionkitError, match="empty"):
        build_report(empty)


def test_a_failed_run_says_so(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path)
    failed = {**manifest(), "status": "failed", "failure": {"epoch": 3, "step": 17}}
    write_json(run_dir / "manifest.json", failed)
    summary = section(build_report(run_dir).read_text(encoding="utf-8"), "summary")
    assert '<span class="fail">failed</span>' in summary
    assert "&quot;epoch&quot;: 3" in summary
