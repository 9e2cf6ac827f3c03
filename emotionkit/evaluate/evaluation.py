"""`emotionkit evaluate`: score a target on a split and write `eval/<split>/`.

The data comes from the run the target belongs to (its recipe and its saved `split.json`, so
"val" is exactly the validation split it was trained against), from another recipe, or from a
data path in one of the recipe's source formats. Images go through the same loader (decode,
resize, class mapping) as training; labels are mapped to the model's classes by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.data.sources import load_data
from emotionkit.data.types import LoadedData, SplitData
from emotionkit.errors import DataError, EmotionkitError
from emotionkit.evaluate.metrics import evaluation_metrics
from emotionkit.evaluate.targets import Target, load_target, run_class_names
from emotionkit.evaluate.tta import tta_logits
from emotionkit.recipe import Recipe, load_recipe, validate_recipe
from emotionkit.runs import write_json

MAX_STORED_IMAGE_BYTES = 64 * 2**20
"""Above this the split's pixels are not copied into predictions.npz (galleries go blank)."""


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
            the target's run, with its saved split.
        split: `train`, `val` or `test` (when the source has one).
        tta: `none`, `hflip` or `hflip_crops` (see `emotionkit.evaluate.tta`); default: the
            run's `export.tta` for a run directory (so the scores reproduce its
            `metrics.json`), `none` for a model file (an export made with `export.tta: hflip`
            already averages the mirror views inside).
        out: the output folder; default `RUN/eval/<split>` (or `eval/<model>/<split>`).
    """
    target = load_target(target_path)
    tta = tta or _default_tta(Path(target_path), target)
    recipe, split_file = _data_recipe(target, data)
    loaded = load_data(recipe.data, recipe.seed, split_file)
    class_names = _model_class_names(target, loaded)
    chosen = _pick_split(loaded, split, class_names)
    images = chosen.images.astype(np.float32)
    _check_input_shape(target, images)
    targets = _targets(chosen, loaded.class_names, class_names)
    plain = target.logits(images)
    logits = plain if tta == "none" else tta_logits(target.logits, images, tta)
    metrics = {
        "target": str(target.path),
        "target_kind": target.kind,
        "split": split,
        "tta": tta,
        "class_names": class_names,
        **evaluation_metrics(targets, logits, class_names, soft=chosen.is_soft),
    }
    if tta != "none":
        without = evaluation_metrics(targets, plain, class_names)
        metrics["without_tta"] = {k: without[k] for k in ("accuracy", "macro_f1", "log_loss")}
    eval_dir = out or _default_eval_dir(target, split)
    eval_dir.mkdir(parents=True, exist_ok=True)
    write_json(eval_dir / "metrics.json", metrics)
    _save_predictions(eval_dir, target, chosen, images, targets, logits, plain, tta)
    return Evaluation(metrics=metrics, eval_dir=eval_dir, target=target)


def _default_tta(target_path: Path, target: Target) -> str:
    """A run directory scores as its exports do (`export.tta`); a model file as it is."""
    if target.run_dir is None or target_path.resolve() != target.run_dir.resolve():
        return "none"
    return load_recipe(target.run_dir / "recipe.yaml").export.tta


def _data_recipe(target: Target, data: Path | None) -> tuple[Recipe, Path | None]:
    """The recipe whose data section to read, and the run's split file when it applies."""
    run_recipe = load_recipe(target.run_dir / "recipe.yaml") if target.run_dir else None
    if data is None:
        if run_recipe is None or target.run_dir is None:
            raise EmotionkitError(
                f"evaluate: {target.path} is not inside a run directory; name the data with "
                "--data RECIPE.yaml or --data PATH"
            )
        split_file = target.run_dir / "split.json"
        return run_recipe, split_file if split_file.exists() else None
    data = Path(data)
    if data.suffix in (".yaml", ".yml"):
        return load_recipe(data), None
    raw: dict[str, Any] = run_recipe.model_dump(mode="json") if run_recipe else {"name": "eval"}
    raw.setdefault("data", {})
    raw["data"]["source"] = _source_for_path(data)
    raw["data"]["image_size"], raw["data"]["channels"] = target.image_size, target.channels
    return validate_recipe(raw, source=f"--data {data}"), None


def _source_for_path(path: Path) -> dict[str, Any]:
    if path.is_dir():
        return {"kind": "image_folder", "path": str(path)}
    if path.suffix == ".csv":
        return {"kind": "fer2013_csv", "path": str(path)}
    if path.suffix == ".npz":
        return {"kind": "npz", "path": str(path)}
    raise DataError(
        f"--data {path}: expected a recipe (.yaml), an image folder root (with train/, val/ or "
        "test/), a FER2013-style .csv or an .npz; for other formats write a recipe"
    )


def _model_class_names(target: Target, loaded: LoadedData) -> list[str]:
    """The model's output classes: the run's mapping, else the data's (counts must agree)."""
    names = run_class_names(target.run_dir) if target.run_dir else loaded.class_names
    if len(names) != target.num_classes:
        raise DataError(
            f"evaluate: {target.path} has {target.num_classes} outputs but the class list has "
            f"{len(names)} ({', '.join(names)}); set data.classes in the --data recipe"
        )
    return names


def _pick_split(loaded: LoadedData, split: str, class_names: list[str]) -> SplitData:
    if split not in loaded.splits:
        raise DataError(
            f"--split {split}: the data has splits {', '.join(loaded.splits)} (a test split "
            "needs a test/ folder or the source's test rows)"
        )
    unknown = sorted(set(loaded.class_names) - set(class_names))
    if unknown:
        raise DataError(f"evaluate: the data has classes the model lacks: {', '.join(unknown)}")
    return loaded.splits[split]


def _targets(split: SplitData, data_names: list[str], model_names: list[str]) -> np.ndarray:
    """(N, K) target rows in the model's class order (data classes matched by name)."""
    rows = (
        split.labels if split.is_soft else np.eye(len(data_names), dtype=np.float32)[split.labels]
    )
    order = [data_names.index(name) if name in data_names else -1 for name in model_names]
    mapped = np.zeros((len(split), len(model_names)), np.float32)
    for model_index, data_index in enumerate(order):
        if data_index >= 0:
            mapped[:, model_index] = rows[:, data_index]
    return mapped


def _check_input_shape(target: Target, images: np.ndarray) -> None:
    expected = (target.image_size, target.image_size, target.channels)
    if images.shape[1:] != expected:
        raise DataError(
            f"evaluate: the data gives {images.shape[1:]} images, {target.path} takes "
            f"{expected}; set data.image_size / data.channels in the --data recipe"
        )


def _default_eval_dir(target: Target, split: str) -> Path:
    if target.run_dir is not None:
        return target.run_dir / "eval" / split
    return Path("eval") / target.path.stem / split


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
        lines.append(
            f"soft labels: TVD {soft['tvd']:.4f}, KL {soft['kl']:.4f}, EMD {soft['emd']:.4f}"
        )
    if "without_tta" in metrics:
        before = metrics["without_tta"]
        lines.append(
            f"TTA {metrics['tta']}: accuracy {before['accuracy']:.4f} -> "
            f"{metrics['accuracy']:.4f}, "
            f"macro-F1 {before['macro_f1']:.4f} -> {metrics['macro_f1']:.4f}"
        )
    return lines
