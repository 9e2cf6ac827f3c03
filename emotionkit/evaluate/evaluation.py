"""`emotionkit evaluate`: score a target on a split and write its evaluation folder.

What is scored comes from `eval_data` (the run's split, another recipe or a data path). Each
model gets its own folder, named after what was evaluated, so scoring a run's checkpoint and
then its ONNX export keeps both: `RUN/eval/<split>/` is the run's best checkpoint (what
`report` and `compare` read), `RUN/eval/<split>-onnx/`, `<split>-saved_model/`... its other
models. A folder holding another model's evaluation is never overwritten.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.data.types import SplitData
from emotionkit.errors import EmotionkitError
from emotionkit.evaluate.eval_data import load_eval_split
from emotionkit.evaluate.metrics import evaluation_metrics
from emotionkit.evaluate.target_metrics import multi_label_metrics
from emotionkit.evaluate.targets import Target, load_target
from emotionkit.recipe import load_recipe
from emotionkit.runs import write_json
from emotionkit.tta import tta_logits

MAX_STORED_IMAGE_BYTES = 64 * 2**20
"""Above this the split's pixels are not copied into predictions.npz (galleries go blank)."""
BEST_CHECKPOINT = ("checkpoints", "best.keras")
"""A run's own model, relative to the run: its evaluation is `RUN/eval/<split>/`."""


@dataclass
class Evaluation:
    """What one `evaluate` call produced."""

    metrics: dict[str, Any]
    eval_dir: Path
    target: Target


def evaluate(
    target_path: Path,
    data: Path | None = None,
    split: str = "val",
    tta: str | None = None,
    out: Path | None = None,
) -> Evaluation:
    """Score `target_path` on `split` and write metrics.json + predictions.npz.

    Args:
        target_path: a run directory, `.keras`, SavedModel directory or `.onnx` file.
        data: a recipe (`.yaml`) or a data path (image folder root, `.csv`, `.npz`); default:
            the target's run, with its saved split. An image folder needs only the asked
            split's folder (`ROOT/test/<class>/*` for `split="test"`).
        split: `train`, `val` or `test` (when the source has one).
        tta: `none`, `hflip` or `hflip_crops` (see `emotionkit.tta`); default: the
            run's `export.tta` for a run directory (so the scores reproduce its
            `metrics.json`), `none` for a model file (an export made with `export.tta: hflip`
            already averages the mirror views inside).
        out: the output folder; default `default_eval_dir(target, split)`.

    Raises:
        EmotionkitError: the output folder holds the evaluation of another model.
    """
    target = load_target(target_path)
    tta = tta or _default_tta(Path(target_path), target)
    eval_dir = Path(out) if out is not None else default_eval_dir(target, split)
    _refuse_to_replace_another_model(eval_dir, target)
    scored = load_eval_split(target, data, split)
    images = scored.split.images.astype(np.float32)
    plain = target.logits(images)
    logits = plain if tta == "none" else tta_logits(target.logits, images, tta)
    class_names, targets = scored.class_names, scored.targets
    metrics = {
        "target": str(target.path),
        "target_kind": target.kind,
        "split": split,
        "tta": tta,
        "class_names": class_names,
        **evaluation_metrics(
            targets, logits, class_names, soft=scored.split.is_soft, ordinal=scored.ordinal
        ),
    }
    thresholds = multi_label_thresholds(target)
    if thresholds is not None:
        metrics["multi_label"] = multi_label_metrics(targets, logits, thresholds, class_names)
    if tta != "none":
        without = evaluation_metrics(targets, plain, class_names)
        metrics["without_tta"] = {k: without[k] for k in ("accuracy", "macro_f1", "log_loss")}
    eval_dir.mkdir(parents=True, exist_ok=True)
    write_json(eval_dir / "metrics.json", metrics)
    _save_predictions(eval_dir, target, scored.split, images, targets, logits, plain, tta)
    return Evaluation(metrics=metrics, eval_dir=eval_dir, target=target)


def multi_label_thresholds(target: Target) -> list[float] | None:
    """The per-class thresholds a multi-label target chose on its validation split: from an
    exported file's metadata, else from its run's `metrics.json`; `None` for other targets.
    """
    from emotionkit.export_formats import is_multi_label, read_onnx_metadata

    if target.kind == "onnx":
        metadata = read_onnx_metadata(target.path)
        return json.loads(metadata["thresholds"]) if is_multi_label(metadata) else None
    if target.run_dir is None or not (target.run_dir / "metrics.json").is_file():
        return None
    val = json.loads((target.run_dir / "metrics.json").read_text()).get("val", {})
    if "multi_label" not in val:
        return None
    return [scores["threshold"] for scores in val["multi_label"]["per_class"].values()]


def _default_tta(target_path: Path, target: Target) -> str:
    """A run directory scores as its exports do (`export.tta`); a model file as it is."""
    if target.run_dir is None or target_path.resolve() != target.run_dir.resolve():
        return "none"
    return load_recipe(target.run_dir / "recipe.yaml").export.tta


def default_eval_dir(target: Target, split: str) -> Path:
    """Where `evaluate` writes when `--out` is not given: one folder per model and split.

    `RUN/eval/<split>` for the run's best checkpoint; `RUN/eval/<split>-<kind>[-<name>]` for
    the run's other models (`val-onnx`, `val-onnx-int8`, `val-saved_model`,
    `val-keras-last`); `eval/<file stem>/<split>-<kind>` for a model outside any run.
    """
    run_dir = target.run_dir
    if run_dir is None:
        return Path("eval") / target.path.stem / f"{split}-{target.kind}"
    if _path_in_run(target.path, run_dir) == BEST_CHECKPOINT:
        return run_dir / "eval" / split
    qualifiers = [
        word for word in target.path.name.split(".") if word not in {"model", target.kind}
    ]
    return run_dir / "eval" / "-".join([split, target.kind, *qualifiers])


def _path_in_run(path: Path, run_dir: Path) -> tuple[str, ...]:
    return path.resolve().relative_to(run_dir.resolve()).parts


def _refuse_to_replace_another_model(eval_dir: Path, target: Target) -> None:
    """Stop before `eval_dir` loses the evaluation of another model; the same one is redone.

    A model inside a run is recognised by its path in the run, so a copied or moved run
    still owns its folders.
    """
    stored = eval_dir / "metrics.json"
    if not stored.is_file():
        return
    try:
        owner = json.loads(stored.read_text()).get("target")
    except (OSError, ValueError, AttributeError):
        owner = None
    if isinstance(owner, str) and _is_same_model(Path(owner), target):
        return
    raise EmotionkitError(
        f"evaluate: {eval_dir} already holds the evaluation of {owner or 'another model'}; "
        "pass --out DIR to write this one elsewhere, or move that folder away first"
    )


def _is_same_model(owner: Path, target: Target) -> bool:
    if target.run_dir is None:
        return owner.resolve() == target.path.resolve()
    in_run = _path_in_run(target.path, target.run_dir)
    return owner.parts[-len(in_run) :] == in_run


def _save_predictions(
    eval_dir: Path,
    target: Target,
    split: SplitData,
    images: np.ndarray,
    targets: np.ndarray,
    logits: np.ndarray,
    plain: np.ndarray,
    tta: str,
) -> None:
    """predictions.npz: everything the plots and the report need, written atomically."""
    arrays: dict[str, Any] = {
        "logits": logits,
        "targets": targets,
        "labels": targets.argmax(axis=-1).astype(np.int64),
        "ids": np.asarray(split.ids, dtype=str),
    }
    if split.images.nbytes <= MAX_STORED_IMAGE_BYTES:
        arrays["images"] = split.images
    embeddings = target.embeddings(images)
    if embeddings is not None:
        arrays["embeddings"] = embeddings
    if tta != "none":
        arrays["logits_no_tta"] = plain
    temporary = eval_dir / ".predictions.tmp.npz"
    np.savez_compressed(temporary, **arrays)
    os.replace(temporary, eval_dir / "predictions.npz")


def write_plots(evaluation: Evaluation, gradcam_per_class: int = 2) -> dict[str, Path]:
    """All PNGs of `eval_dir/plots/`, plus Grad-CAM when the target is a Keras model."""
    from emotionkit.evaluate.gradcam import plot_gradcam_grid
    from emotionkit.evaluate.plots import write_eval_plots

    run_dir = evaluation.target.run_dir
    history = run_dir / "history.csv" if run_dir else None
    plots = write_eval_plots(evaluation.eval_dir, history if history and history.exists() else None)
    model = evaluation.target.keras_model
    if model is not None:
        with np.load(evaluation.eval_dir / "predictions.npz") as stored:
            if "images" in stored:
                plots["gradcam"] = plot_gradcam_grid(
                    model,
                    stored["images"].astype(np.float32),
                    stored["labels"],
                    evaluation.metrics["class_names"],
                    evaluation.eval_dir / "plots" / "gradcam.png",
                    per_class=gradcam_per_class,
                )
    return plots


def report_run(run_dir: Path, split: str = "val", tta: str | None = None) -> Path:
    """Evaluate the run's best checkpoint, draw every plot and write `report.html`.

    `tta` defaults to the run's `export.tta`, as in `evaluate`.
    """
    from emotionkit.evaluate.report import build_report

    evaluation = evaluate(run_dir, split=split, tta=tta)
    write_plots(evaluation)
    return build_report(run_dir, split=split)


def metrics_table(metrics: dict[str, Any]) -> Any:
    """A Rich table: one row per class (precision, recall, F1, support), then the totals."""
    from rich.table import Table

    title = (
        f"{metrics['target_kind']} on {metrics['split']} ({metrics['num_images']} images, "
        f"TTA {metrics['tta']}): accuracy {metrics['accuracy']:.4f}, "
        f"macro-F1 {metrics['macro_f1']:.4f}"
    )
    table = Table(title=title)
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, row in metrics["per_class"].items():
        table.add_row(
            name, f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}",
            str(row["support"]),
        )  # fmt: skip
    table.add_section()
    table.add_row(
        "macro", "", f"{metrics['balanced_accuracy']:.3f}", f"{metrics['macro_f1']:.3f}", ""
    )
    table.add_row("weighted", "", "", f"{metrics['weighted_f1']:.3f}", str(metrics["num_images"]))
    return table


def summary_lines(metrics: dict[str, Any]) -> list[str]:
    """The scalar metrics as short lines under the table."""
    top_k = ", ".join(f"top-{k} {v:.4f}" for k, v in metrics["top_k_accuracy"].items())
    lines = [
        f"{top_k}; balanced accuracy {metrics['balanced_accuracy']:.4f}; Cohen's kappa "
        f"{metrics['cohen_kappa']:.4f}; log-loss {metrics['log_loss']:.4f}; "
        f"ECE {metrics['ece']:.4f}"
    ]
    if "soft_label" in metrics:
        soft = metrics["soft_label"]
        emd = f", EMD {soft['emd']:.4f}" if "emd" in soft else ""
        lines.append(
            f"soft labels (accuracy is against the majority vote): KL {soft['kl']:.4f}, "
            f"TVD {soft['tvd']:.4f}, JS {soft['js']:.4f}{emd}"
        )
    if "multi_label" in metrics:
        multi = metrics["multi_label"]
        lines.append(
            f"multi-label at the validation thresholds: exact match {multi['exact_match']:.4f}, "
            f"micro-F1 {multi['micro_f1']:.4f}, macro-F1 {multi['macro_f1']:.4f}"
        )
    if "without_tta" in metrics:
        before = metrics["without_tta"]
        lines.append(
            f"TTA {metrics['tta']}: accuracy {before['accuracy']:.4f} -> "
            f"{metrics['accuracy']:.4f}, "
            f"macro-F1 {before['macro_f1']:.4f} -> {metrics['macro_f1']:.4f}"
        )
    return lines
