"""Evaluation plots: one PNG per question a reader asks of an evaluated split.

`write_eval_plots(eval_dir, history_csv)` reads `metrics.json` and `predictions.npz` from an
evaluation directory (`RUN_DIR/eval/<split>/`) and writes `PLOT_NAMES` into its `plots/`
folder, where the HTML report embeds them by file name. Each `plot_*` function draws one
figure from plain arrays, so notebooks and other commands can call it directly.

Figures are `matplotlib.figure.Figure` objects, never pyplot: `savefig` renders PNGs with the
Agg canvas without selecting a global backend, so this runs headless and does not switch a
notebook's backend as `matplotlib.use("Agg")` would. Matplotlib and scikit-learn are imported
inside the functions, so importing this module (the CLI does) costs only NumPy.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.errors import EmotionkitError
from emotionkit.evaluate.galleries import plot_gallery
from emotionkit.evaluate.metrics import calibration_bins, expected_calibration_error, softmax
from emotionkit.figures import hide_frame, new_figure, save_figure, show_image

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
MIN_TSNE_POINTS = 5  # fewer points than this make a meaningless t-SNE (perplexity < 4)


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
    fontsize = max(6, 11 - k // 3)
    for (row, column), value in np.ndenumerate(values):
        text = (f"{100 * value:.0f}%" if support[row] else "n/a") if normalize else f"{value:d}"
        colour = "white" if value > 0.55 * top else "black"
        ax.text(column, row, text, ha="center", va="center", color=colour, fontsize=fontsize)
    ax.set_xticks(range(k), list(class_names), rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), [f"{name} ({n})" for name, n in zip(class_names, support, strict=True)])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (support)")
    total = int(counts.sum())
    if normalize:  # the mean of the diagonal: what a reader of this version compares
        recall = np.diag(values)[support > 0]
        summary = f"mean recall (balanced accuracy) {recall.mean() if recall.size else 0.0:.3f}"
        kind = "row-normalised (diagonal = recall)"
    else:
        summary = f"accuracy {np.trace(counts) / total if total else 0.0:.3f}"
        kind = "counts"
    ax.set_title(f"Confusion matrix, {kind}\n{summary} on {total} images")
    return save_figure(figure, path)


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
    rate = next((history[c] for c in ("learning_rate", "lr")
                 if c in history and np.isfinite(history[c]).any()), None)  # fmt: skip
    if rate is None:
        _mark_missing(axes[3], "learning rate", "no learning_rate or lr column")
    else:
        axes[3].plot(epochs, rate, marker="o" if length <= 30 else None, markersize=3)
        axes[3].set(title="learning rate", xlabel="epoch", ylabel="learning rate")
        axes[3].ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        axes[3].grid(alpha=0.3)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 2.5
    figure.suptitle(f"Training curves ({Path(history_csv).name}, {length} epochs)")
    return save_figure(figure, path)


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


def plot_tsne(
    embeddings: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    path: Path,
    seed: int = 0,
    max_points: int = 2000,
) -> Path:
    """2-D t-SNE of the embeddings, coloured by true class.

    t-SNE is quadratic-ish in points, so a seeded subsample of `max_points` keeps it to
    seconds; perplexity is capped at n - 1, which scikit-learn requires for tiny splits.
    It runs on one OpenMP thread: its 1000 short iterations each end in a thread barrier,
    and on a busy machine (shared CI, a training job alongside) descheduled threads made
    30 points take 0.5-20 s instead of 0.1 s; one thread costs seconds at most at 2000.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    embeddings, labels = np.asarray(embeddings), np.asarray(labels)
    rng = np.random.default_rng(seed)
    total = len(embeddings)
    keep = np.sort(rng.choice(total, max_points, replace=False)) if total > max_points else None
    points = embeddings if keep is None else embeddings[keep]
    kept_labels = labels if keep is None else labels[keep]
    if len(points) < 2:
        raise ValueError(f"t-SNE needs at least 2 embeddings, got {len(points)}")
    perplexity = float(min(30, len(points) - 1))
    tsne = TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity)
    with threadpool_limits(limits=1, user_api="openmp"):
        coords = tsne.fit_transform(points.reshape(len(points), -1).astype(np.float32))
    figure = new_figure(8.5, 6.5)
    ax = figure.subplots()
    colours = _class_colours(len(class_names))
    for label, name in enumerate(class_names):
        mask = kept_labels == label
        ax.scatter(*coords[mask].T, s=10, alpha=0.7, color=colours[label],
                   label=f"{name} ({int(mask.sum())})")  # fmt: skip
    ax.set(xticks=[], yticks=[], xlabel="t-SNE 1", ylabel="t-SNE 2")
    ax.legend(title="true class", loc="upper left", bbox_to_anchor=(1.0, 1.0), markerscale=2)
    ax.set_title(f"t-SNE of embeddings: {len(points)} of {total} images "
                 f"(perplexity {perplexity:g}, seed {seed})")  # fmt: skip
    return save_figure(figure, path)


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


def _mark_missing(ax: Any, title: str, reason: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, f"not logged\n({reason})", ha="center", va="center", color="grey",
            transform=ax.transAxes)  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])


def _distribution_bars(
    ax: Any, target: np.ndarray, predicted: np.ndarray, class_names: Sequence[str]
) -> None:
    x = np.arange(len(class_names))
    ax.bar(x - 0.2, target, 0.4, color="grey", label="target")
    ax.bar(x + 0.2, predicted, 0.4, color="tab:blue", label="predicted")
    ax.set_xticks(x, list(class_names), rotation=45, ha="right", fontsize=8)
    ax.set(ylim=(0, 1), ylabel="probability")
    ax.grid(axis="y", alpha=0.3)


def _class_colours(count: int) -> list[Any]:
    """Qualitative colours: tab10 up to 10 classes, tab20 up to 20, then a sampled colormap."""
    from matplotlib import colormaps

    if count <= 10:
        return [colormaps["tab10"](i) for i in range(count)]
    if count <= 20:
        return [colormaps["tab20"](i) for i in range(count)]
    return [colormaps["turbo"](value) for value in np.linspace(0, 1, count)]


def _is_number(text: str | None) -> bool:
    return not np.isnan(_to_float(text))


def _to_float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else float("nan")
    except ValueError:
        return float("nan")
