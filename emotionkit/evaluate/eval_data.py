"""What `emotionkit evaluate` scores: one split's images and its targets in the model's classes.

The data comes from the run the target belongs to (its recipe and its saved `split.json`, so
"val" is exactly the validation split it was trained against), from another recipe, or from a
data path in one of the recipe's source formats. Images go through the same decoding as
training; labels are mapped to the model's classes by name.

An image folder is read one split folder at a time wherever that gives the same images as
the whole source: `ROOT/test/` always, `ROOT/train/` and `ROOT/val/` when the folder has its
own `val/` and no run's `split.json` re-cuts them. So a folder that holds only
`test/<class>/*` can be scored, and `--split test` never decodes the training images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emotionkit.data.decode import IMAGE_EXTENSIONS, decode_files
from emotionkit.data.image_folder import ImageFolderSource
from emotionkit.data.sources import load_data
from emotionkit.data.types import LoadedData, SplitData, resolve_class_names
from emotionkit.errors import DataError, EmotionkitError
from emotionkit.evaluate.targets import Target, run_class_names
from emotionkit.recipe import Recipe, load_recipe, validate_recipe

if TYPE_CHECKING:
    from emotionkit.data.spec import DataSpec


@dataclass
class EvalSplit:
    """The images to score and their (N, K) target rows, in the model's class order."""

    split: SplitData
    class_names: list[str]
    targets: np.ndarray
    ordinal: bool = False  # `data.ordinal`: the distances include EMD


def load_eval_split(target: Target, data: Path | None, split: str) -> EvalSplit:
    """The split `evaluate` scores `target` on, with targets mapped to its outputs by name.

    Args:
        target: the model (its run, when it has one, gives the data and the class names).
        data: a recipe (`.yaml`) or a data path (image folder root, `.csv`, `.npz`); None:
            the target's run, with its saved split.
        split: `train`, `val` or `test`.

    Raises:
        DataError: the split is absent (naming the folder, for an image folder), the data has
            classes the model lacks, or its images do not fit the model's input.
    """
    recipe, split_file = _data_recipe(target, data)
    folder = _split_folder(recipe.data, split, split_file)
    if folder is not None:
        data_names, chosen = _read_split_folder(folder, recipe.data)
    else:
        loaded = load_data(recipe.data, recipe.seed, split_file)
        data_names, chosen = loaded.class_names, _pick_split(loaded, split)
    class_names = _model_class_names(target, data_names)
    unknown = sorted(set(data_names) - set(class_names))
    if unknown:
        raise DataError(f"evaluate: the data has classes the model lacks: {', '.join(unknown)}")
    _check_input_shape(target, chosen.images)
    targets = _targets(chosen, data_names, class_names)
    return EvalSplit(chosen, class_names, targets, recipe.data.ordinal)


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


def _split_folder(data: DataSpec, split: str, split_file: Path | None) -> Path | None:
    """`ROOT/<split>` when an image folder's split can be read alone, else None.

    None means the whole source is read: train and val are then cut by the run's
    `split.json`, or val is carved from `train/` when the folder has no `val/`.

    Raises:
        DataError: the split's folder does not exist, naming it and the folders there are.
    """
    source = data.source
    if not isinstance(source, ImageFolderSource):
        return None
    root = Path(source.path)
    if not root.is_dir():
        raise DataError(f"data.source.path: {root} not found.")
    cut_from_train = split != "test" and (split_file is not None or not (root / "val").is_dir())
    if cut_from_train and (root / "train").is_dir():
        return None
    folder = root / split
    if not folder.is_dir():
        present = sorted(f"{p.name}/" for p in root.iterdir() if p.is_dir())
        raise DataError(
            f"--split {split}: {folder} not found ({root} holds "
            f"{', '.join(present) or 'no folders'}); give a --split that has a folder there"
        )
    return folder


def _read_split_folder(folder: Path, data: DataSpec) -> tuple[list[str], SplitData]:
    """`folder/<class>/*` decoded as training decodes it; classes from its sub-folders."""
    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not found:
        raise DataError(f"{folder} has no class sub-folders; expected {folder}/<class>/*.png")
    class_names = resolve_class_names(data.classes, found, str(folder))
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(class_names):
        files = sorted(p for p in (folder / name).glob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        paths.extend(files)
        labels.extend([label] * len(files))
    if not paths:
        raise DataError(f"{folder}: its class folders hold no images ({IMAGE_EXTENSIONS}).")
    images, kept, _ = decode_files(paths, data)
    ids = [str(paths[i].relative_to(folder.parent)) for i in kept]
    return class_names, SplitData(images, np.asarray(labels, np.int32)[kept], ids)


def _pick_split(loaded: LoadedData, split: str) -> SplitData:
    if split not in loaded.splits:
        raise DataError(
            f"--split {split}: the data has splits {', '.join(loaded.splits)} (a test split "
            "needs a test/ folder or the source's test rows)"
        )
    return loaded.splits[split]


def _model_class_names(target: Target, data_names: list[str]) -> list[str]:
    """The model's output classes: the run's mapping, else the data's (counts must agree)."""
    names = run_class_names(target.run_dir) if target.run_dir else data_names
    if len(names) != target.num_classes:
        raise DataError(
            f"evaluate: {target.path} has {target.num_classes} outputs but the class list has "
            f"{len(names)} ({', '.join(names)}); set data.classes in the --data recipe"
        )
    return names


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
