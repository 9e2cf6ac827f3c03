"""Evaluation plots: one PNG per question a reader asks of an evaluated split.

`write_eval_plots(eval_dir, history_csv)` reads `metrics.json` and `predictions.npz` from an
evaluation directory (`RUN_DIR/eval/<split>/`) and writes `PLOT_NAMES` into its `plots/`
folder, where the HTML report embeds them by file name. The figures themselves are drawn
from plain arrays by the modules below, so notebooks and other commands can call each
`plot_*` function directly (they are importable from here too):

- `emotionkit.confusion`: the confusion matrix, counts and row-normalised;
- `training_curves`: loss, accuracy, macro-F1 and learning rate from `history.csv`;
- `score_plots`: reliability diagram, per-class scores, soft-label distributions;
- `tsne_plot`: t-SNE of the embeddings;
- `galleries`: the most confident mistakes and random correct predictions.

Figures are `matplotlib.figure.Figure` objects, never pyplot (`emotionkit.figures`): `savefig`
renders PNGs with the Agg canvas without selecting a global backend, so this runs headless
and does not switch a notebook's backend as `matplotlib.use("Agg")` would. Matplotlib and
scikit-learn are imported inside the functions, so importing this module (the CLI does)
costs only NumPy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.confusion import plot_confusion
from emotionkit.errors import EmotionkitError
from emotionkit.evaluate.galleries import plot_gallery
from emotionkit.evaluate.metrics import softmax
from emotionkit.evaluate.score_plots import plot_distributions, plot_per_class, plot_reliability
from emotionkit.evaluate.training_curves import plot_training_curves, read_history
from emotionkit.evaluate.tsne_plot import MIN_TSNE_POINTS, plot_tsne

__all__ = [
    "PLOT_NAMES",
    "plot_confusion",
    "plot_distributions",
    "plot_gallery",
    "plot_per_class",
    "plot_reliability",
    "plot_training_curves",
    "plot_tsne",
    "read_history",
    "write_eval_plots",
]

PLOT_NAMES = (
    "confusion_counts",
    "confusion_normalized",
    "curves",
    "reliability",
    "per_class",
    "mistakes",
    "correct",
    "distributions",
    "tsne",
)
"""File stems `write_eval_plots` owns in `plots/` (gradcam.png there belongs to Grad-CAM)."""


def write_eval_plots(eval_dir: Path, history_csv: Path | None = None) -> dict[str, Path]:
    """Write every evaluation plot for `eval_dir` into `eval_dir/plots/`; return name -> path.

    Optional plots appear only when their input does: `curves` with a history CSV,
    `mistakes` and `correct` with stored images (large splits have none), `distributions`
    with soft-label metrics, `tsne` with embeddings for >= 5 images. Our
    files left by an earlier evaluation that no longer apply are removed, so the report never
    embeds a stale figure; other files in `plots/` (gradcam.png) are left alone.

    Example:
        >>> write_eval_plots(run_dir / "eval" / "test", run_dir / "history.csv")  # doctest: +SKIP
        {'confusion_counts': PosixPath('.../plots/confusion_counts.png'), ...}
    """
    eval_dir = Path(eval_dir)
    metrics = _read_metrics(eval_dir / "metrics.json")
    arrays = _read_predictions(eval_dir / "predictions.npz")
    names = list(metrics["class_names"])
    out = eval_dir / "plots"
    probabilities = softmax(arrays["logits"])
    labels = arrays["labels"].astype(np.int64)
    matrix = metrics["confusion_matrix"]
    written = {
        "confusion_counts": plot_confusion(matrix, names, out / "confusion_counts.png", False),
        "confusion_normalized": plot_confusion(
            matrix, names, out / "confusion_normalized.png", True
        ),
    }
    if history_csv is not None and Path(history_csv).is_file():
        written["curves"] = plot_training_curves(Path(history_csv), out / "curves.png")
    written["reliability"] = plot_reliability(probabilities, labels, out / "reliability.png")
    written["per_class"] = plot_per_class(metrics["per_class"], names, out / "per_class.png")
    if "images" in arrays:
        for kind in ("mistakes", "correct"):
            path = out / f"{kind}.png"
            written[kind] = plot_gallery(arrays["images"], labels, probabilities, names, path, kind)
    written.update(_optional_plots(metrics, arrays, probabilities, labels, out))
    for stale in set(PLOT_NAMES) - set(written):
        (out / f"{stale}.png").unlink(missing_ok=True)
    return written


def _optional_plots(
    metrics: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    probabilities: np.ndarray,
    labels: np.ndarray,
    out: Path,
) -> dict[str, Path]:
    """The soft-label and embedding plots, where the evaluation produced their inputs."""
    names = list(metrics["class_names"])
    written = {}
    if "soft_label" in metrics:
        written["distributions"] = plot_distributions(
            arrays["targets"], probabilities, names, out / "distributions.png",
            images=arrays.get("images"),
        )  # fmt: skip
    embeddings = arrays.get("embeddings")
    if embeddings is not None and len(embeddings) >= MIN_TSNE_POINTS:
        written["tsne"] = plot_tsne(embeddings, labels, names, out / "tsne.png")
    return written


def _read_metrics(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise EmotionkitError(f"{path} not found: evaluate the run first (`emotionkit evaluate`).")
    metrics: dict[str, Any] = json.loads(path.read_text())
    return metrics


def _read_predictions(path: Path) -> dict[str, np.ndarray]:
    """The arrays the plots use; `ids` is skipped (only the report lists them).

    `images` is optional: the evaluation leaves out the pixels of very large splits.
    """
    if not path.is_file():
        raise EmotionkitError(f"{path} not found: evaluate the run first (`emotionkit evaluate`).")
    required = ("logits", "targets", "labels")
    with np.load(path, allow_pickle=False) as data:
        missing = [key for key in required if key not in data.files]
        if missing:
            raise EmotionkitError(f"{path} lacks {', '.join(missing)}: it was written by an "
                                  "older emotionkit; evaluate the run again.")  # fmt: skip
        optional = ("images", "embeddings")
        return {key: data[key] for key in (*required, *optional) if key in data.files}
