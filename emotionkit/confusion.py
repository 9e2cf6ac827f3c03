"""The confusion matrix and its one renderer: the evaluation's PNGs and the TensorBoard image.

Shared by the evaluate stage and the training callbacks, below both of them: NumPy and
matplotlib only.

`plot_confusion` writes `confusion_counts.png` and `confusion_normalized.png` for the
report; `confusion_png` gives the row-normalised figure as PNG bytes for the training
callback's TensorBoard image, so a matrix reads the same during training and after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.figures import figure_png, new_figure, save_figure

TENSORBOARD_DPI = 80
"""The TensorBoard image is one of many per run: smaller than the report's PNGs."""


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def plot_confusion(
    matrix: Sequence[Sequence[int]] | np.ndarray,
    class_names: Sequence[str],
    path: Path,
    normalize: bool,
) -> Path:
    """Confusion matrix heatmap (rows true, columns predicted), every cell annotated.

    `normalize=True` divides each row by its support, so the diagonal reads as per-class
    recall and rare classes are as visible as common ones.
    """
    return save_figure(confusion_figure(matrix, class_names, normalize), path)


def confusion_png(
    matrix: Sequence[Sequence[int]] | np.ndarray,
    class_names: Sequence[str],
    dpi: int = TENSORBOARD_DPI,
) -> bytes:
    """The row-normalised confusion matrix as PNG bytes (the TensorBoard image).

    Row-normalised, so rare classes such as FER's disgust are as readable as common ones.
    """
    return figure_png(confusion_figure(matrix, class_names, normalize=True), dpi)


def confusion_figure(
    matrix: Sequence[Sequence[int]] | np.ndarray, class_names: Sequence[str], normalize: bool
) -> Any:
    """The heatmap as a matplotlib `Figure`: counts, or row fractions when `normalize`."""
    counts = np.asarray(matrix, dtype=np.int64)
    k = len(class_names)
    if counts.shape != (k, k):
        raise ValueError(f"confusion matrix shape {counts.shape} does not fit {k} classes")
    support = counts.sum(axis=1)
    values = counts / np.maximum(support, 1)[:, None] if normalize else counts
    size = max(4.5, 0.7 * k + 2.5)
    figure = new_figure(size + 1.2, size)
    ax = figure.subplots()
    top = 1.0 if normalize else max(int(counts.max()), 1)
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=top)
    figure.colorbar(image, ax=ax, shrink=0.8, label="fraction of row" if normalize else "images")
    _annotate_cells(ax, values, support, normalize, top)
    ax.set_xticks(range(k), list(class_names), rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), [f"{name} ({n})" for name, n in zip(class_names, support, strict=True)])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (support)")
    ax.set_title(_title(counts, values, support, normalize))
    return figure


def _annotate_cells(
    ax: Any, values: np.ndarray, support: np.ndarray, normalize: bool, top: float
) -> None:
    """Each cell's count or row percentage, white on dark cells; "n/a" for an absent class."""
    fontsize = max(6, 11 - len(values) // 3)
    for (row, column), value in np.ndenumerate(values):
        text = (f"{100 * value:.0f}%" if support[row] else "n/a") if normalize else f"{value:d}"
        colour = "white" if value > 0.55 * top else "black"
        ax.text(column, row, text, ha="center", va="center", color=colour, fontsize=fontsize)


def _title(counts: np.ndarray, values: np.ndarray, support: np.ndarray, normalize: bool) -> str:
    """What the figure shows and its headline number, over how many images."""
    total = int(counts.sum())
    if normalize:  # the mean of the diagonal: what a reader of this version compares
        recall = np.diag(values)[support > 0]
        summary = f"mean recall (balanced accuracy) {recall.mean() if recall.size else 0.0:.3f}"
        kind = "row-normalised (diagonal = recall)"
    else:
        summary = f"accuracy {np.trace(counts) / total if total else 0.0:.3f}"
        kind = "counts"
    return f"Confusion matrix, {kind}\n{summary} on {total} images"
