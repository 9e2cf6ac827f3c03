"""The ONNX contract that `emotionkit export` writes and that `Predictor` reads.

One input `image`: float32 NHWC [N, H, W, C], raw 0-255 pixels (the graph normalises).
Two outputs `logits` and `probabilities`: float32 [N, K]. The file's `metadata_props` say
what the K outputs and the input are (`class_names`, `image_size`, `channels`,
`input_range`, ...). Only onnxruntime is used here: `import onnx` alone costs more than
the session we need, and the session already exposes the metadata.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

from emotionkit.bundled import BUNDLED_FILES, bundled_model_path, bundled_names
from emotionkit.errors import DataError

INPUT_NAME = "image"
OUTPUT_NAMES = ("logits", "probabilities")
# Keys the predictor needs to feed the model and name its outputs; the others the exporter
# writes (`pixel_mean`, `pixel_std`, `emotionkit_version`, `recipe_sha256`) are informational.
REQUIRED_METADATA = ("class_names", "image_size", "channels", "input_range")
INPUT_RANGE = "0-255"
# Raised by InferenceSession for a file that is not a loadable ONNX model.
_LOAD_ERRORS = (
    ort_errors.Fail,
    ort_errors.InvalidArgument,
    ort_errors.InvalidGraph,
    ort_errors.InvalidProtobuf,
    ort_errors.NoSuchFile,
    ort_errors.NotImplemented,
    ort_errors.RuntimeException,
)


@dataclass(frozen=True)
class ModelInfo:
    """What the predictor needs to know about an exported model, from its metadata.

    Attributes:
        path: The `.onnx` file.
        class_names: The K class names, in output order.
        image_size: Input height and width in pixels (H == W).
        channels: 1 for grayscale, 3 for RGB.
        metadata: Every `metadata_props` entry, as stored (strings).
        thresholds: For a multi-label model (metadata `targets: multi_label`, whose
            `probabilities` are independent sigmoids), the per-class probability above which
            a class is present; None for single-label models (softmax).
    """

    path: Path
    class_names: tuple[str, ...]
    image_size: int
    channels: int
    metadata: dict[str, str]
    thresholds: tuple[float, ...] | None = None

    @property
    def multi_label(self) -> bool:
        return self.thresholds is not None


def resolve_model_path(model: str | Path) -> Path:
    """The `.onnx` file for `model`, the one place a model argument is resolved.

    `model` is an `.onnx` file, a run directory (its `export/model.onnx`) or a bundled
    model's name (`emotionkit models list`). A path that exists wins over a bundled name, so
    a file or folder of yours is never shadowed.

    Raises:
        DataError: Nothing of that name: the message lists the bundled names.
    """
    path = Path(model)
    if not path.exists() and str(path) in BUNDLED_FILES:
        return bundled_model_path(str(path))
    if path.is_dir():
        onnx_path = path / "export" / "model.onnx"
        if onnx_path.is_file():
            return onnx_path
        if (path / "recipe.yaml").is_file():
            raise DataError(
                f"{onnx_path} not found: {path} is a run directory without an ONNX export; "
                f"make it with `emotionkit export {path} --format onnx`."
            )
        raise DataError(
            f"{onnx_path} not found: {path} is a folder but not an exported run "
            "(run `emotionkit export RUN_DIR`, or give the .onnx file)."
        )
    if not path.is_file():
        close = difflib.get_close_matches(str(path), BUNDLED_FILES, n=1)
        hint = f"; did you mean {close[0]}?" if close else "."
        raise DataError(
            f"{path} not found: give an .onnx file, a run directory or a bundled model's name "
            f"({bundled_names()}){hint}"
        )
    return path


def open_session(model: str | Path) -> tuple[ort.InferenceSession, ModelInfo]:
    """Open `model` (see `resolve_model_path`) on the CPU and read its contract."""
    onnx_path = resolve_model_path(model)
    try:
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except _LOAD_ERRORS as error:
        raise DataError(f"{onnx_path} is not a loadable ONNX model: {error}") from error
    return session, read_model_info(session, onnx_path)


def read_model_info(session: ort.InferenceSession, path: Path) -> ModelInfo:
    """Check the session's input, outputs and metadata against the contract."""
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise DataError(
            f"{path} is not an emotionkit ONNX model: metadata_props lacks {', '.join(missing)} "
            "(export it with `emotionkit export`)."
        )
    info = ModelInfo(
        path=path,
        class_names=_parse_class_names(metadata["class_names"], path),
        image_size=_parse_int(metadata, "image_size", path),
        channels=_parse_int(metadata, "channels", path),
        metadata=metadata,
        thresholds=_parse_thresholds(metadata, path),
    )
    _check_metadata_values(info, path)
    _check_signature(session, info, path)
    return info


def _parse_class_names(text: str, path: Path) -> tuple[str, ...]:
    try:
        names: Any = json.loads(text)
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DataError(f"{path}: metadata class_names must be a JSON list of names, got {text!r}.")
    return tuple(names)


def _parse_thresholds(metadata: dict[str, str], path: Path) -> tuple[float, ...] | None:
    """`thresholds` of a multi-label model (as export_formats.is_multi_label reads
    `targets`); 0.5 each when a multi-label export carries none."""
    if metadata.get("targets") != "multi_label":
        return None
    names: Any = json.loads(metadata["class_names"])
    text = metadata.get("thresholds")
    try:
        values: Any = [0.5] * len(names) if text is None else json.loads(text)
    except json.JSONDecodeError:
        values = None
    if not isinstance(values, list) or len(values) != len(names):
        raise DataError(f"{path}: metadata thresholds must be a JSON list of {len(names)} numbers.")
    try:
        return tuple(float(value) for value in values)
    except (TypeError, ValueError):
        raise DataError(f"{path}: metadata thresholds must be numbers, got {text!r}.") from None


def _parse_int(metadata: dict[str, str], key: str, path: Path) -> int:
    try:
        return int(metadata[key])
    except ValueError:
        raise DataError(
            f"{path}: metadata {key} must be an integer, got {metadata[key]!r}."
        ) from None


def _check_metadata_values(info: ModelInfo, path: Path) -> None:
    if info.channels not in (1, 3):
        raise DataError(f"{path}: metadata channels must be 1 or 3, got {info.channels}.")
    if info.image_size < 1:
        raise DataError(f"{path}: metadata image_size must be positive, got {info.image_size}.")
    if info.metadata["input_range"] != INPUT_RANGE:
        raise DataError(
            f"{path}: metadata input_range is {info.metadata['input_range']!r}; "
            f"this predictor feeds raw {INPUT_RANGE} pixels."
        )


def _check_signature(session: ort.InferenceSession, info: ModelInfo, path: Path) -> None:
    """The input and output names and static sizes must agree with the metadata."""
    inputs = {node.name: node.shape for node in session.get_inputs()}
    outputs = {node.name: node.shape for node in session.get_outputs()}
    if INPUT_NAME not in inputs or not set(OUTPUT_NAMES) <= set(outputs):
        raise DataError(
            f"{path}: expected input 'image' and outputs 'logits', 'probabilities'; "
            f"found inputs {sorted(inputs)} and outputs {sorted(outputs)}."
        )
    expected = [info.image_size, info.image_size, info.channels]
    shape = list(inputs[INPUT_NAME])
    # Dimensions may be symbolic (strings such as "N"): only fixed integers are compared.
    fits = len(shape) == 4 and all(
        not isinstance(have, int) or have == want
        for have, want in zip(shape[1:], expected, strict=True)
    )
    if not fits:
        raise DataError(
            f"{path}: input 'image' has shape {shape}, but the metadata says "
            f"[N, {info.image_size}, {info.image_size}, {info.channels}]."
        )
    classes = outputs["probabilities"][-1]
    if isinstance(classes, int) and classes != len(info.class_names):
        raise DataError(
            f"{path}: the model has {classes} outputs but metadata class_names lists "
            f"{len(info.class_names)} names."
        )
