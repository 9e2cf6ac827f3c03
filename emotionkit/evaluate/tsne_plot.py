"""t-SNE of the embeddings: whether the classes separate before the logits layer.

`plot_tsne` maps the evaluation's stored embeddings (the output of `layer_names.EMBEDDING`)
to 2-D with scikit-learn and colours each point by its true class, as `tsne.png`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.figures import new_figure, save_figure

MIN_TSNE_POINTS = 5  # fewer points than this make a meaningless t-SNE (perplexity < 4)


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
    """
    embeddings, labels = np.asarray(embeddings), np.asarray(labels)
    rng = np.random.default_rng(seed)
    total = len(embeddings)
    keep = np.sort(rng.choice(total, max_points, replace=False)) if total > max_points else None
    points = embeddings if keep is None else embeddings[keep]
    kept_labels = labels if keep is None else labels[keep]
    if len(points) < 2:
        raise ValueError(f"t-SNE needs at least 2 embeddings, got {len(points)}")
    perplexity = float(min(30, len(points) - 1))
    coords = _tsne_coordinates(points, perplexity, seed)
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


def _tsne_coordinates(points: np.ndarray, perplexity: float, seed: int) -> np.ndarray:
    """(N, 2) t-SNE coordinates of the flattened points, on one OpenMP thread.

    t-SNE's 1000 short iterations each end in a thread barrier, and on a busy machine
    (shared CI, a training job alongside) descheduled threads made 30 points take 0.5-20 s
    instead of 0.1 s; one thread costs seconds at most at 2000 points.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    tsne = TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity)
    with threadpool_limits(limits=1, user_api="openmp"):
        coords: np.ndarray = tsne.fit_transform(points.reshape(len(points), -1).astype(np.float32))
    return coords


def _class_colours(count: int) -> list[Any]:
    """Qualitative colours: tab10 up to 10 classes, tab20 up to 20, then a sampled colormap."""
    from matplotlib import colormaps

    if count <= 10:
        return [colormaps["tab10"](i) for i in range(count)]
    if count <= 20:
        return [colormaps["tab20"](i) for i in range(count)]
    return [colormaps["turbo"](value) for value in np.linspace(0, 1, count)]
