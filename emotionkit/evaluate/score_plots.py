"""Score plots: how the predicted probabilities compare with the truth, beyond accuracy.

Calibration (`reliability.png`), per-class precision/recall/F1 (`per_class.png`) and, for
soft labels, target against predicted distributions (`distributions.png`). Each function
draws one figure from plain arrays, so a notebook can call it directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.evaluate.metrics import calibration_bins, expected_calibration_error
from emotionkit.figures import hide_frame, new_figure, save_figure, show_image


def plot_reliability(
    probabilities: np.ndarray, labels: np.ndarray, path: Path, bins: int = 15
) -> Path:
    """Reliability diagram: accuracy per confidence bin against the diagonal, counts below.

    Bars under the diagonal mean over-confidence. The hatched gap to each bin's mean
    confidence is what the ECE in the title averages, weighted by the counts below.
    """
    counts, accuracy, confidence = calibration_bins(probabilities, labels, bins)
    ece = expected_calibration_error(probabilities, labels, bins)
    centres, used, n = (np.arange(bins) + 0.5) / bins, counts > 0, int(counts.sum())
    figure = new_figure(6.5, 7)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.bar(centres[used], accuracy[used], width=1 / bins, edgecolor="black",
            color="tab:blue", alpha=0.8, label="accuracy in bin")  # fmt: skip
    top.bar(centres[used], (confidence - accuracy)[used], bottom=accuracy[used], width=1 / bins,
            fill=False, hatch="///", edgecolor="tab:red", linewidth=0,
            label="gap to mean confidence")  # fmt: skip
    top.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    top.set(xlim=(0, 1), ylim=(0, 1.02), ylabel="accuracy")
    top.legend(loc="upper left")
    overall = float(counts @ accuracy / n) if n else 0.0
    mean_confidence = float(counts @ confidence / n) if n else 0.0
    top.set_title(f"Reliability diagram: ECE {ece:.3f} ({bins} bins, {n} images)\n"
                  f"accuracy {overall:.3f}, mean confidence {mean_confidence:.3f}")  # fmt: skip
    bottom.bar(centres, counts, width=1 / bins, color="grey", edgecolor="black")
    bottom.set(xlabel="confidence (top-1 probability)", ylabel="images")
    return save_figure(figure, path)


def plot_per_class(
    per_class: Mapping[str, Mapping[str, float]], class_names: Sequence[str], path: Path
) -> Path:
    """Grouped precision / recall / F1 bars per class, each class's support in its tick label."""
    keys = ("precision", "recall", "f1")
    scores = np.array([[float(per_class.get(n, {}).get(key, 0.0)) for key in keys]
                       for n in class_names]).reshape(len(class_names), 3)  # fmt: skip
    support = [int(per_class.get(name, {}).get("support", 0)) for name in class_names]
    k = len(class_names)
    figure = new_figure(max(6.5, 1.2 * k + 2.5), 4.8)
    ax = figure.subplots()
    x = np.arange(k)
    width = 0.27
    for offset, (key, colour) in enumerate(
        zip(keys, ("tab:blue", "tab:orange", "tab:green"), strict=True)
    ):
        bars = ax.bar(
            x + (offset - 1) * width,
            scores[:, offset],
            width,
            label=key.replace("f1", "F1"),
            color=colour,
        )
        ax.bar_label(bars, fmt="%.2f", fontsize=7, rotation=90, padding=2)
    ticks = [f"{name}\n(n={n})" for name, n in zip(class_names, support, strict=True)]
    if k <= 10:
        ax.set_xticks(x, ticks)
    else:  # side by side they would overlap
        ax.set_xticks(x, ticks, rotation=45, ha="right", rotation_mode="anchor")
    ax.set(ylim=(0, 1.15), ylabel="score", title="Per-class precision, recall and F1")
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save_figure(figure, path)


def plot_distributions(
    targets: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    path: Path,
    count: int = 8,
    images: np.ndarray | None = None,
) -> Path:
    """Target vs predicted class distributions: the split mean, then `count` single images.

    For soft labels (e.g. FER+ votes) accuracy hides how well the model matches annotator
    disagreement. The images are spread evenly over the ranks of total variation distance
    (TVD), from best fit to worst, so one figure shows the whole range; `images` adds faces.
    """
    targets, probabilities = np.asarray(targets, np.float64), np.asarray(probabilities)
    tvd = 0.5 * np.abs(targets - probabilities).sum(axis=1)
    ranked = np.argsort(tvd, kind="stable")
    shown = min(count, len(ranked))
    picks = ranked[np.unique(np.linspace(0, len(ranked) - 1, shown).round().astype(int))]
    per_row = 2
    rows = 1 + -(-len(picks) // per_row)
    ratios = [1, 3] * per_row if images is not None else [3] * per_row
    figure = new_figure(max(10.0, 0.9 * len(class_names) * per_row + 3), 2.6 * rows + 0.4)
    grid = figure.add_gridspec(rows, len(ratios), width_ratios=ratios)
    mean_ax = figure.add_subplot(grid[0, :])
    _distribution_bars(mean_ax, targets.mean(axis=0), probabilities.mean(axis=0), class_names)
    mean_ax.set_title(f"split mean over {len(tvd)} images (mean TVD {tvd.mean():.3f})",
                      fontsize=10)  # fmt: skip
    mean_ax.legend(loc="upper right", fontsize=8)
    mean_ax.set_ylim(0, min(1.0, 1.3 * max(targets.mean(0).max(), probabilities.mean(0).max())))
    cells = len(ratios) // per_row
    for slot, index in enumerate(picks):
        row, column = 1 + slot // per_row, cells * (slot % per_row)
        if images is not None:
            thumb = figure.add_subplot(grid[row, column])
            hide_frame(thumb)
            show_image(thumb, images[index])
        ax = figure.add_subplot(grid[row, column + cells - 1])
        _distribution_bars(ax, targets[index], probabilities[index], class_names)
        ax.set_title(f"image {index}: TVD {tvd[index]:.2f}", fontsize=9)
    figure.suptitle("Target vs predicted distributions (images from best to worst fit)")
    return save_figure(figure, path)


def _distribution_bars(
    ax: Any, target: np.ndarray, predicted: np.ndarray, class_names: Sequence[str]
) -> None:
    x = np.arange(len(class_names))
    ax.bar(x - 0.2, target, 0.4, color="grey", label="target")
    ax.bar(x + 0.2, predicted, 0.4, color="tab:blue", label="predicted")
    ax.set_xticks(x, list(class_names), rotation=45, ha="right", fontsize=8)
    ax.set(ylim=(0, 1), ylabel="probability")
    ax.grid(axis="y", alpha=0.3)
