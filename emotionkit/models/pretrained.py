"""Initialise a model from a local weights file, layer by layer, skipping what does not fit.

Fine-tuning almost never reuses a checkpoint unchanged: the head has another class count,
or the stem was trained on RGB and the model takes grayscale. Keras' own `load_weights`
fails on the first mismatch (or, with `skip_mismatch=True`, skips silently). Here every layer
is matched by name and by the shapes of its variables; what fits is loaded, what does not is
listed in a report that the workflow saves in `manifest.json` under `pretrained`.

File kinds:
- a bundled model's name (`emotionkit models list`, e.g. `fer2013-cpu`) or an `.onnx` file
  exported by emotionkit: read by `onnx_weights` (BatchNorm folded into the convolutions, so
  the model needs `model.freeze_batchnorm`). Its class names are known, so the head keeps
  the pretrained row of every class the new class list shares with it, by name.
- `.keras`: the saved model is rebuilt (stock layers only) and layers are matched by name.
- `.weights.h5`: Keras 3 stores no layer names in it, only `layers/<class>_<n>` keys (n-th
  layer of that class in `model.layers`). Layers are matched by that key and by shape, so the
  file must come from the same architecture; prefer `.keras` files across architectures.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.bundled import BUNDLED_FILES, bundled_model_path
from emotionkit.errors import ModelError
from emotionkit.models import onnx_weights
from emotionkit.models.layer_names import LOGITS

Store = dict[str, np.ndarray]


def resolve_weights_path(path: Path) -> Path:
    """A weights file, a bundled model's name, or a KerasCV/Keras-Hub preset name found in a
    local download cache.

    A preset is accepted only when its files are already on disk (Kaggle's cache, where
    `from_preset` puts them: `$KAGGLEHUB_CACHE` or `~/.cache/kagglehub`); nothing is fetched.
    """
    if path.is_file():
        return path
    if str(path) in BUNDLED_FILES:
        return bundled_model_path(str(path))
    if path.suffix or len(path.parts) != 1:
        raise ModelError(f"model.weights: file not found: {path}")
    cached = find_cached_preset(str(path))
    if cached is None:
        raise ModelError(
            f"model.weights: preset {str(path)!r} is not in the local cache "
            f"({kagglehub_cache()}) and emotionkit never downloads weights: on a machine with "
            "network access run `from_preset` once (or save the weights to a .weights.h5 / "
            ".keras file) and copy the cache or the file here."
        )
    return cached


def kagglehub_cache() -> Path:
    """Where KerasCV/Keras-Hub `from_preset` stores downloaded presets."""
    return Path(os.environ.get("KAGGLEHUB_CACHE", Path.home() / ".cache" / "kagglehub"))


def find_cached_preset(name: str) -> Path | None:
    """`models/keras/<family>/keras/<name>/<version>/model.weights.h5`, newest version first."""
    pattern = f"models/keras/*/keras/{name}/*/model.weights.h5"
    candidates = sorted(kagglehub_cache().glob(pattern), key=lambda p: p.parent.name)
    return candidates[-1] if candidates else None


def load_pretrained_weights(
    model: Any, path: str | Path, strict: bool = False, class_names: list[str] | None = None
) -> dict[str, Any]:
    """Copy every variable of `path` whose layer and shape match into `model`.

    Args:
        model: the freshly built model (modified in place).
        path: a `.keras`, `.weights.h5` or emotionkit `.onnx` file, or a bundled model's
            name (the recipe's `model.weights`).
        strict: raise instead of skipping when any layer does not match.
        class_names: the model's classes; with a file that names its own (ONNX), the head
            rows are matched by class name, so a subset or reordering keeps them.

    Returns:
        A report: `path`, `loaded` (layer names), `skipped` (layer, expected and found
        shapes), `missing` (model layers with weights absent from the file) and `unused`
        (file entries no model layer took); from an ONNX file also `head_classes` (the
        classes whose head row came from the file) and `folded_batchnorm: true`.

    Raises:
        ModelError: the file is missing or unreadable, or `strict` and something mismatched.

    Example:
        >>> report = load_pretrained_weights(model, "runs/fer/best.keras")
        >>> report["skipped"]
        [{'layer': 'logits', 'expected': [[512, 7], [7]], 'found': [[512, 8], [8]]}]
    """
    path = resolve_weights_path(Path(path))
    extra: dict[str, Any] = {}
    if path.suffix == ".onnx":
        source, metadata = onnx_weights.stores_from_onnx(path)
        by_layer = {layer.name: layer.name for layer in model.layers}
        source_classes = onnx_weights.class_names_of(metadata)
        if class_names and source_classes and LOGITS in source:
            source[LOGITS], taken = onnx_weights.select_head_rows(
                source[LOGITS], source_classes, class_names, _own_store(model.get_layer(LOGITS))
            )
            extra = {"head_classes": taken}
        extra["folded_batchnorm"] = True
    elif path.name.endswith(".keras"):
        source = _stores_from_keras_file(path)
        by_layer = {layer.name: layer.name for layer in model.layers}
    elif path.name.endswith(".weights.h5"):
        source = _stores_from_weights_file(path)
        by_layer = weights_file_keys(model)
    else:
        raise ModelError(f"model.weights: {path} is not a `.keras`, `.weights.h5` or `.onnx` file.")
    report = {**_copy_matching(model, source, by_layer), **extra, "path": str(path)}
    mismatched = report["skipped"] or report["missing"] or report["unused"]
    if strict and mismatched:
        raise ModelError(
            f"model.weights: {path} does not fit the model (model.weights_strict is true): "
            f"{_describe_mismatch(report)}. Set model.weights_strict: false to skip them."
        )
    return report


def weights_file_keys(model: Any) -> dict[str, str]:
    """Layer name -> the key Keras 3 gives that layer in a `.weights.h5` file.

    Mirrors `keras.src.saving.saving_lib._save_container_state`: snake_case class name, then
    `_1`, `_2`, ... for later layers of the same class, in `model.layers` order.
    `tests/test_models.py` round-trips a file through this mapping, so a change in Keras
    shows up as a failing test rather than silently misplaced weights.
    """
    used: dict[str, int] = {}
    keys: dict[str, str] = {}
    for layer in model.layers:
        base = _snake_case(type(layer).__name__)
        count = used.get(base)
        used[base] = 0 if count is None else count + 1
        keys[layer.name] = base if count is None else f"{base}_{count + 1}"
    return keys


def _snake_case(name: str) -> str:
    """Keras' `naming.to_snake_case`."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _stores_from_keras_file(path: Path) -> dict[str, Store]:
    import keras

    try:
        source = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types for a bad or foreign file
        raise ModelError(f"model.weights: cannot load {path} as a Keras model: {error}") from None
    return {layer.name: _own_store(layer) for layer in source.layers if layer.weights}


def _stores_from_weights_file(path: Path) -> dict[str, Store]:
    import h5py

    try:
        with h5py.File(path, "r") as file:
            layers = file.get("layers")
            if layers is None:
                raise ModelError(f"model.weights: {path} has no `layers` group (not Keras 3).")
            return {
                key: {name: np.asarray(array) for name, array in group["vars"].items()}
                for key, group in layers.items()
                if "vars" in group and len(group["vars"])
            }
    except OSError as error:
        raise ModelError(f"model.weights: cannot read {path}: {error}") from None


def _own_store(layer: Any) -> Store:
    """The layer's variables in Keras' save order (trainable first), as NumPy arrays."""
    store: dict[str, Any] = {}
    layer.save_own_variables(store)
    return {key: np.asarray(value) for key, value in store.items()}


def _copy_matching(model: Any, source: dict[str, Store], key_of: dict[str, str]) -> dict[str, Any]:
    loaded: list[str] = []
    skipped: list[dict[str, Any]] = []
    missing: list[str] = []
    used: set[str] = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        key = key_of[layer.name]
        found = source.get(key)
        if found is None:
            missing.append(layer.name)
            continue
        used.add(key)
        expected = _own_store(layer)
        if _shapes(expected) != _shapes(found):
            skipped.append(
                {"layer": layer.name, "expected": _shapes(expected), "found": _shapes(found)}
            )
            continue
        layer.load_own_variables(found)
        loaded.append(layer.name)
    unused = sorted(set(source) - used)
    return {"loaded": loaded, "skipped": skipped, "missing": missing, "unused": unused}


def _shapes(store: Store) -> list[list[int]]:
    return [list(store[key].shape) for key in sorted(store, key=int)]


def _describe_mismatch(report: dict[str, Any]) -> str:
    parts = []
    if report["skipped"]:
        shapes = ", ".join(
            f"{item['layer']} (model {item['expected']}, file {item['found']})"
            for item in report["skipped"]
        )
        parts.append(f"shape mismatch in {shapes}")
    if report["missing"]:
        parts.append(f"not in the file: {', '.join(report['missing'])}")
    if report["unused"]:
        parts.append(f"unused entries of the file: {', '.join(report['unused'])}")
    return "; ".join(parts)
