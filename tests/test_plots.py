"""Evaluation plots: the files `write_eval_plots` promises the report, ECE and gallery picks.

No Keras here: a fake evaluation directory (random logits, 3 classes, 30 images of 8x8x1)
stands in for what `emotionkit evaluate` writes.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from emotionkit.errors import EmotionkitError
from emotionkit.evaluate.galleries import (
    most_confident_mistakes,
    plot_gallery,
    random_correct_examples,
)
from emotionkit.evaluate.metrics import expected_calibration_error
from emotionkit.evaluate.plots import read_history, write_eval_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALWAYS = {"confusion_counts", "confusion_normalized", "reliability", "per_class", "mistakes",
          "correct"}  # fmt: skip
"""Plots written for every evaluation that stores its images."""


def make_eval_dir(
    root: Path,
    *,
    soft: bool = False,
    num_images: int = 30,
    class_names: tuple[str, ...] = ("angry", "happy", "sad"),
    channels: int = 1,
    embeddings: bool = True,
) -> Path:
    """metrics.json + predictions.npz as the evaluate command writes them (values random)."""
    rng = np.random.default_rng(0)
    k = len(class_names)
    labels = np.arange(num_images) % k  # every class present
    targets = np.eye(k, dtype=np.float32)[labels]
    if soft:
        targets = (0.6 * targets + 0.4 * rng.dirichlet(np.ones(k), num_images)).astype(np.float32)
    logits = rng.normal(size=(num_images, k)).astype(np.float32)
    logits[np.arange(num_images), labels] += 1.0
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (labels, logits.argmax(axis=1)), 1)
    per_class = {
        name: {"precision": 0.5, "recall": 0.6, "f1": 0.55, "support": int(matrix[i].sum())}
        for i, name in enumerate(class_names)
    }
    metrics = {"target": "run", "target_kind": "keras", "split": "test", "tta": "none",
               "class_names": list(class_names), "num_images": num_images,
               "accuracy": float(np.trace(matrix) / num_images), "per_class": per_class,
               "confusion_matrix": matrix.tolist()}  # fmt: skip
    if soft:
        metrics["soft_label"] = {"tvd": 0.3, "kl": 0.4, "emd": 0.5}
    arrays = {
        "logits": logits,
        "targets": targets,
        "labels": labels.astype(np.int64),
        "ids": np.array([f"img{i}.png" for i in range(num_images)]),
        "images": rng.integers(0, 256, (num_images, 8, 8, channels), dtype=np.uint8),
    }
    if embeddings:
        arrays["embeddings"] = rng.normal(size=(num_images, 6)).astype(np.float32)
    eval_dir = root / "eval" / "test"
    eval_dir.mkdir(parents=True)
    (eval_dir / "metrics.json").write_text(json.dumps(metrics))
    np.savez(eval_dir / "predictions.npz", **arrays)
    return eval_dir


def write_history(path: Path, lr_column: str = "learning_rate") -> Path:
    """A 4-epoch CSVLogger file (0-based epochs, alphabetical columns, no val_macro_f1)."""
    columns = ["epoch", "accuracy", "loss", lr_column, "macro_f1", "val_accuracy", "val_loss"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for epoch in range(4):
            writer.writerow([epoch, 0.4 + 0.1 * epoch, 1.5 - 0.2 * epoch, 1e-3, 0.3, 0.5, ""])
    return path


def assert_png(path: Path) -> None:
    """A real PNG that matplotlib reads back as an RGB(A) image of a readable size."""
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4), (path, pixels.shape)
    assert pixels.shape[0] >= 200 and pixels.shape[1] >= 200, (path, pixels.shape)
    assert pixels.std() > 0, f"{path} is blank"


def test_write_eval_plots_writes_every_promised_png(tmp_path: Path) -> None:
    eval_dir = make_eval_dir(tmp_path)
    history = write_history(tmp_path / "history.csv")
    written = write_eval_plots(eval_dir, history)
    expected = ALWAYS | {"curves", "tsne"}
    assert set(written) == expected
    assert {p.name for p in (eval_dir / "plots").iterdir()} == {f"{n}.png" for n in expected}
    for name, path in written.items():
        assert path == eval_dir / "plots" / f"{name}.png"
        assert_png(path)


def test_soft_labels_without_history_or_embeddings(tmp_path: Path) -> None:
    """distributions.png for soft labels; no curves.png or tsne.png without their inputs.

    A stale curves.png from an earlier evaluation goes; Grad-CAM's file stays.
    """
    eval_dir = make_eval_dir(tmp_path, soft=True, embeddings=False)
    plots = eval_dir / "plots"
    plots.mkdir()
    (plots / "gradcam.png").write_bytes(b"not ours")
    (plots / "curves.png").write_bytes(b"stale")
    written = write_eval_plots(eval_dir, tmp_path / "missing-history.csv")
    assert set(written) == ALWAYS | {"distributions"}
    assert not (plots / "curves.png").exists()
    assert (plots / "gradcam.png").read_bytes() == b"not ours"
    assert_png(written["distributions"])


def test_tiny_split_two_classes_five_rgb_images(tmp_path: Path) -> None:
    eval_dir = make_eval_dir(tmp_path, num_images=5, class_names=("a", "b"), channels=3)
    written = write_eval_plots(eval_dir)
    assert set(written) == ALWAYS | {"tsne"}  # 5 images: the smallest t-SNE we draw
    assert_png(written["tsne"])
    assert_png(written["mistakes"])


def test_missing_predictions_names_the_file(tmp_path: Path) -> None:
    eval_dir = make_eval_dir(tmp_path)
    (eval_dir / "predictions.npz").unlink()
    with pytest.raises(EmotionkitError, match=r"predictions\.npz not found"):
        write_eval_plots(eval_dir)


def test_predictions_without_images_skip_the_galleries(tmp_path: Path) -> None:
    """Large splits are stored without pixels: no galleries, the rest as usual."""
    eval_dir = make_eval_dir(tmp_path, embeddings=False)
    arrays = dict(np.load(eval_dir / "predictions.npz"))
    del arrays["images"]
    np.savez(eval_dir / "predictions.npz", **arrays)
    written = write_eval_plots(eval_dir)
    assert set(written) == ALWAYS - {"mistakes", "correct"}
    del arrays["labels"]
    np.savez(eval_dir / "predictions.npz", **arrays)
    with pytest.raises(EmotionkitError, match="lacks labels"):
        write_eval_plots(eval_dir)


def test_read_history_accepts_lr_and_blank_cells(tmp_path: Path) -> None:
    history = read_history(write_history(tmp_path / "history.csv", lr_column="lr"))
    np.testing.assert_array_equal(history["epoch"], [0, 1, 2, 3])
    np.testing.assert_allclose(history["lr"], 1e-3)
    assert np.isnan(history["val_loss"]).all()  # blank cells, not a crash


def reference_ece(probabilities: np.ndarray, labels: np.ndarray, bins: int) -> float:
    """Guo et al. (2017), written out: bins (lo, hi], gap weighted by the bin's share."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in pairwise(edges):
        members = (confidence > lo) & (confidence <= hi)
        if members.any():
            gap = abs(correct[members].mean() - confidence[members].mean())
            total += members.mean() * gap
    return total


def test_expected_calibration_error_by_hand() -> None:
    # confidence: 0.5 0.45 | 0.8 0.7 0.9 ; correct: y n | y n y   (2 bins: (0, .5], (.5, 1])
    # low bin:  acc 1/2, conf 0.475 -> gap 0.025, weight 2/5 -> 0.01
    # high bin: acc 2/3, conf 0.8   -> gap 2/15,  weight 3/5 -> 0.08
    probabilities = np.array(
        [[0.5, 0.3, 0.2], [0.45, 0.35, 0.2], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.9, 0.05, 0.05]]
    )
    labels = np.array([0, 1, 1, 0, 0])
    assert reference_ece(probabilities, labels, bins=2) == pytest.approx(0.09)
    # 0.5 sits on the edge: the lower bin. (The upper bin would give 0.11.)
    assert expected_calibration_error(probabilities, labels, bins=2) == pytest.approx(0.09)


def test_expected_calibration_error_matches_reference_on_random_data() -> None:
    rng = np.random.default_rng(3)
    probabilities = rng.dirichlet(np.full(7, 0.5), 500)
    labels = rng.integers(0, 7, 500)
    expected = reference_ece(probabilities, labels, bins=15)
    assert expected > 0.05
    assert expected_calibration_error(probabilities, labels) == pytest.approx(expected)


def test_expected_calibration_error_is_zero_when_calibrated() -> None:
    # 10 images at 80% confidence, 8 right; 5 at 60%, 3 right: accuracy = confidence per bin.
    probabilities = np.array([[0.8, 0.2]] * 10 + [[0.4, 0.6]] * 5)
    labels = np.array([0] * 8 + [1] * 2 + [1] * 3 + [0] * 2)
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(np.zeros((0, 3)), np.zeros(0, dtype=int)) == 0.0


def test_most_confident_mistakes_orders_wrong_predictions_by_confidence() -> None:
    probabilities = np.array(
        [
            [0.99, 0.01],  # 0: right, most confident of all: never picked
            [0.30, 0.70],  # 1: wrong at 0.70
            [0.95, 0.05],  # 2: wrong at 0.95
            [0.40, 0.60],  # 3: right
            [0.20, 0.80],  # 4: wrong at 0.80
            [0.20, 0.80],  # 5: wrong at 0.80: a tie keeps dataset order
        ]
    )
    labels = np.array([0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(most_confident_mistakes(probabilities, labels, 10), [2, 4, 5, 1])
    np.testing.assert_array_equal(most_confident_mistakes(probabilities, labels, 2), [2, 4])
    assert most_confident_mistakes(probabilities, labels, 0).size == 0


def test_random_correct_examples_are_correct_seeded_and_capped() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    probabilities = rng.dirichlet(np.ones(3), 60)
    picks = random_correct_examples(probabilities, labels, 3, per_class=4, seed=7)
    again = random_correct_examples(probabilities, labels, 3, per_class=4, seed=7)
    for label, indices in enumerate(picks):
        assert 0 < len(indices) <= 4
        assert (labels[indices] == label).all()
        assert (probabilities[indices].argmax(axis=1) == label).all()
        np.testing.assert_array_equal(indices, again[label])


def test_gallery_rejects_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mistakes"):
        plot_gallery(np.zeros((1, 8, 8, 1), np.uint8), np.array([0]), np.array([[1.0, 0.0]]),
                     ["a", "b"], tmp_path / "x.png", kind="wrong")  # type: ignore[arg-type]  # fmt: skip


def test_importing_plots_stays_cheap() -> None:
    """The CLI imports this module: no matplotlib, scikit-learn or deep-learning framework."""
    heavy = ("matplotlib", "sklearn", "keras", "tensorflow", "jax")
    code = (
        "import sys, emotionkit.evaluate.plots\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
