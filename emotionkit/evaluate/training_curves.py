"""Training curves: what the run's `history.csv` says about how training went.

`plot_training_curves` draws loss, accuracy, macro-F1 (train and val) and the learning rate
per epoch from the Keras CSVLogger file, as `curves.png` in the evaluation's plots.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.figures import new_figure, save_figure


def read_history(history_csv: Path) -> dict[str, np.ndarray]:
    """Columns of a Keras CSVLogger file as float arrays (blank or non-numeric cells -> NaN)."""
    with Path(history_csv).open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if _is_number(row.get("epoch"))]
    columns = {key for row in rows for key in row if key}
    return {key: np.array([_to_float(row.get(key)) for row in rows]) for key in sorted(columns)}


def plot_training_curves(history_csv: Path, path: Path) -> Path:
    """2x2 grid of loss, accuracy, macro-F1 (train and val) and the learning rate per epoch.

    Epochs are 1-based, as `best_epoch` is reported; the best validation value of each
    metric is starred. Panels whose columns were not logged say so instead of vanishing.
    """
    from matplotlib.ticker import MaxNLocator

    history = read_history(history_csv)
    length = len(next(iter(history.values()), []))
    epochs = history["epoch"] + 1 if "epoch" in history else np.arange(1, length + 1)
    figure = new_figure(11, 7.5)
    axes = figure.subplots(2, 2).ravel()
    panels = (("loss", "loss", False), ("accuracy", "accuracy", True),
              ("macro_f1", "macro-F1", True))  # fmt: skip
    for ax, (column, title, higher_is_better) in zip(axes[:3], panels, strict=True):
        _plot_metric_panel(ax, history, epochs, column, title, higher_is_better)
    _plot_learning_rate(axes[3], history, epochs)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 2.5
    figure.suptitle(f"Training curves ({Path(history_csv).name}, {length} epochs)")
    return save_figure(figure, path)


def _plot_metric_panel(
    ax: Any,
    history: Mapping[str, np.ndarray],
    epochs: np.ndarray,
    column: str,
    title: str,
    higher_is_better: bool,
) -> None:
    """Train and val lines of one metric; the best val epoch starred and labelled."""
    present = [(name, history[name]) for name in (column, f"val_{column}")
               if name in history and np.isfinite(history[name]).any()]  # fmt: skip
    if not present:
        _mark_missing(ax, title, f"no {column} or val_{column} column")
        return
    marker = "o" if len(epochs) <= 30 else None
    for name, values in present:
        ax.plot(epochs, values, marker=marker, markersize=3,
                label="val" if name.startswith("val_") else "train")  # fmt: skip
    val = history.get(f"val_{column}")
    if val is not None and np.isfinite(val).any():
        best = int(np.nanargmax(val) if higher_is_better else np.nanargmin(val))
        ax.plot(epochs[best], val[best], "*", color="black", markersize=11,
                label=f"best val {val[best]:.3f} (epoch {epochs[best]:.0f})")  # fmt: skip
    ax.set(title=title, xlabel="epoch", ylabel=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _plot_learning_rate(ax: Any, history: Mapping[str, np.ndarray], epochs: np.ndarray) -> None:
    """The logged learning rate (Keras names it `learning_rate`, older versions `lr`)."""
    rate = next((history[c] for c in ("learning_rate", "lr")
                 if c in history and np.isfinite(history[c]).any()), None)  # fmt: skip
    if rate is None:
        _mark_missing(ax, "learning rate", "no learning_rate or lr column")
        return
    ax.plot(epochs, rate, marker="o" if len(epochs) <= 30 else None, markersize=3)
    ax.set(title="learning rate", xlabel="epoch", ylabel="learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    ax.grid(alpha=0.3)


def _mark_missing(ax: Any, title: str, reason: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, f"not logged\n({reason})", ha="center", va="center", color="grey",
            transform=ax.transAxes)  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])


def _is_number(text: str | None) -> bool:
    return not np.isnan(_to_float(text))


def _to_float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else float("nan")
    except ValueError:
        return float("nan")
