"""Evaluation galleries: the faces behind the numbers.

The most confident mistakes (label noise, ambiguous faces, a class the model collapsed onto)
and seeded random correct predictions per class, as image grids. `write_eval_plots` draws
them as `mistakes.png` and `correct.png` when the evaluation stored its images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from emotionkit.figures import hide_frame, new_figure, save_figure, show_image


def most_confident_mistakes(
    probabilities: np.ndarray, labels: np.ndarray, limit: int
) -> np.ndarray:
    """Indices of wrong top-1 predictions, most confident first, at most `limit` of them.

    Confident mistakes are the most telling ones: label noise, ambiguous faces or a class
    the model has collapsed onto. Ties keep dataset order, so the pick is deterministic.
    """
    probabilities = np.asarray(probabilities)
    wrong = np.flatnonzero(probabilities.argmax(axis=1) != np.asarray(labels))
    order = np.argsort(-probabilities[wrong].max(axis=1, initial=0.0), kind="stable")
    return wrong[order][: max(limit, 0)]


def random_correct_examples(
    probabilities: np.ndarray, labels: np.ndarray, num_classes: int, per_class: int, seed: int
) -> list[np.ndarray]:
    """Per class, up to `per_class` seeded random indices of correctly predicted images."""
    rng = np.random.default_rng(seed)
    correct = np.asarray(probabilities).argmax(axis=1) == np.asarray(labels)
    picks = []
    for label in range(num_classes):
        members = np.flatnonzero(correct & (np.asarray(labels) == label))
        picks.append(np.sort(rng.choice(members, min(per_class, len(members)), replace=False)))
    return picks


def plot_gallery(
    images: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    path: Path,
    kind: Literal["mistakes", "correct"],
    per_class: int = 4,
    seed: int = 0,
) -> Path:
    """Image grid of the most confident mistakes, or of random correct predictions per class.

    `kind="mistakes"` shows up to `per_class * K` wrong predictions, most confident first,
    titled "true → predicted (p)"; `kind="correct"` one row per class (seeded).
    """
    if kind == "mistakes":
        return _mistakes_gallery(images, labels, probabilities, class_names, path, per_class)
    if kind == "correct":
        return _correct_gallery(images, labels, probabilities, class_names, path, per_class, seed)
    raise ValueError(f"gallery kind must be 'mistakes' or 'correct', got {kind!r}")


def _mistakes_gallery(
    images: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    path: Path,
    per_class: int,
) -> Path:
    picks = most_confident_mistakes(probabilities, labels, per_class * len(class_names))
    wrong = int(np.sum(np.asarray(probabilities).argmax(axis=1) != labels))
    columns = max(1, min(len(picks), max(4, min(len(class_names), 8))))
    rows = max(1, -(-len(picks) // columns))
    figure = new_figure(max(1.9 * columns, 5.5), 2.0 * rows + 0.6)  # wide enough for the title
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes:
        hide_frame(ax)
    for ax, index in zip(axes, picks, strict=False):  # picks fill the first cells
        predicted = int(np.argmax(probabilities[index]))
        show_image(ax, images[index])
        title = f"{class_names[labels[index]]} → {class_names[predicted]}"
        ax.set_title(
            f"{title} ({probabilities[index, predicted]:.2f})", fontsize=8, color="firebrick"
        )
    if not len(picks):
        axes[0].text(0.5, 0.5, "no wrong predictions\non this split", ha="center", va="center")
    figure.suptitle(f"Most confident mistakes: {len(picks)} of {wrong} wrong predictions\n"
                    "true → predicted (predicted probability)", fontsize=11)  # fmt: skip
    return save_figure(figure, path)


def _correct_gallery(
    images: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    class_names: Sequence[str],
    path: Path,
    per_class: int,
    seed: int,
) -> Path:
    picks = random_correct_examples(probabilities, labels, len(class_names), per_class, seed)
    predicted = np.asarray(probabilities).argmax(axis=1)
    columns = max(per_class, 1)
    figure = new_figure(1.5 * columns + 1.3, 1.6 * len(class_names) + 0.6)
    axes = figure.subplots(len(class_names), columns, squeeze=False)
    for label, (name, members) in enumerate(zip(class_names, picks, strict=True)):
        for ax, index in zip(axes[label], [*members, *[None] * columns], strict=False):
            hide_frame(ax)
            if index is not None:
                show_image(ax, images[index])
                ax.set_title(f"p={probabilities[index, label]:.2f}", fontsize=8)
        support = int(np.sum(labels == label))
        correct = int(np.sum((labels == label) & (predicted == label)))
        axes[label][0].set_ylabel(f"{name}\n({correct} of {support}\ncorrect)", rotation=0,
                                  ha="right", va="center", fontsize=9)  # fmt: skip
    figure.suptitle(f"Correct predictions: up to {per_class} random per class (seed {seed})",
                    fontsize=11)  # fmt: skip
    return save_figure(figure, path)
