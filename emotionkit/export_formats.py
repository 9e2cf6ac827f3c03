"""The artifact writers behind `emotionkit.export`: SavedModel, ONNX and INT8 ONNX.

Every artifact has the same contract, so any runtime can use it without emotionkit:

- input `image`: float32 NHWC, dynamic batch, raw pixel values 0-255 (uint8 callers cast);
  normalisation is inside the graph (the model's `normalize` layer);
- outputs `logits` and `probabilities` (softmax of the logits; for a multi-label model,
  one sigmoid per class, independent of the others), float32 (N, K); with
  `export.tta: hflip` the logits are the mean of the image's and its horizontal mirror's
  (2x the compute), with `hflip_crops` the mean over ten views (the centre and four corner
  crops of the reflect-padded image, each with its mirror: 10x the compute), so every
  caller gets test-time augmentation without knowing about it;
- metadata: class names in output order, input size and channels, the normalisation, the
  test-time augmentation (`tta`: `none`, `hflip` or `hflip_crops`), the target kind
  (`targets`: `single`,
  `distribution` or `multi_label`, with the per-class `thresholds` chosen on validation for
  multi-label), for a model trained with `data.faces` its detector and crop policy
  (`face_crop`, JSON), the emotionkit version and the SHA-256 of the run's recipe — ONNX
  `metadata_props` (strings, lists as JSON), SavedModel
  `assets.extra/emotionkit.json`.

All need TensorFlow (tf2onnx converts a `tf.function`); `emotionkit.export` runs them in a
TensorFlow-backend process.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.errors import ExportError

METADATA_FILE = "emotionkit.json"
MAX_OPSET_TRIES = 4


def artifact_metadata(run_dir: Path, model: Any, tta: str = "none") -> dict[str, str]:
    """String metadata for every artifact (ONNX metadata_props only holds strings)."""
    from emotionkit.version import __version__

    _, size, _, channels = model.input_shape
    mapping = json.loads((run_dir / "labels_mapping.json").read_text())
    mean, std = _normalisation(model)
    targets = _target_kind(run_dir)
    return {
        "class_names": json.dumps([mapping[str(i)] for i in range(len(mapping))]),
        "image_size": str(size),
        "channels": str(channels),
        "input_range": "0-255",
        "pixel_mean": repr(mean),
        "pixel_std": repr(std),
        "tta": tta,
        "targets": targets,
        **({"thresholds": json.dumps(_thresholds(run_dir))} if targets == "multi_label" else {}),
        **_face_crop(run_dir),
        "emotionkit_version": __version__,
        "recipe_sha256": hashlib.sha256((run_dir / "recipe.yaml").read_bytes()).hexdigest(),
    }


def _face_crop(run_dir: Path) -> dict[str, str]:
    """`face_crop`: the detector and crop policy of a run trained with `data.faces`, which
    `predict` and `serve` then use (`{}` for a run trained on ready-made crops)."""
    import yaml

    from emotionkit.data.faces import FacesSpec, faces_setting

    recipe = yaml.safe_load((run_dir / "recipe.yaml").read_text()) or {}
    setting = faces_setting((recipe.get("data") or {}).get("faces"))
    return {} if setting is None else {"face_crop": FacesSpec.model_validate(setting).metadata()}


def _target_kind(run_dir: Path) -> str:
    """What the run learned (`data.targets` as loaded); runs from before it: `single`."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return str(manifest.get("data", {}).get("targets") or "single")


def _thresholds(run_dir: Path) -> list[float]:
    """The per-class thresholds the run chose on its validation split."""
    val = json.loads((run_dir / "metrics.json").read_text())["val"]
    return [scores["threshold"] for scores in val["multi_label"]["per_class"].values()]


def is_multi_label(metadata: dict[str, str]) -> bool:
    return metadata.get("targets") == "multi_label"


def _normalisation(model: Any) -> tuple[float, float]:
    """Mean and std folded into the model's `normalize` Rescaling (x * 1/std - mean/std)."""
    layer = model.get_layer("normalize")
    std = 1.0 / float(np.asarray(layer.scale).reshape(-1)[0])
    return -float(np.asarray(layer.offset).reshape(-1)[0]) * std, std


def serving_function(model: Any, tta: str = "none", multi_label: bool = False) -> Any:
    """A `tf.function`: `image` (N, H, W, C) float32 0-255 -> {logits, probabilities}.

    Args:
        model: a float32 Keras model (TensorFlow backend).
        tta: `none`; `hflip` or `hflip_crops`: the logits are the mean over the views of
            `tta_views`, which run through the model as one batch of V*N images (one model
            call in the graph, whatever the mode).
        multi_label: probabilities are per-class sigmoids instead of one softmax.
    """
    import tensorflow as tf

    from emotionkit.tta import VIEW_COUNTS

    _, size, _, channels = model.input_shape
    spec = tf.TensorSpec([None, size, size, channels], tf.float32, name="image")
    num_classes = model.output_shape[-1]

    @tf.function(input_signature=[spec])
    def serve(image: Any) -> dict[str, Any]:
        logits = tf.cast(model(tta_views(image, tta), training=False), tf.float32)
        if tta != "none":  # (V*N, K) -> (V, N, K): the views are stacked view-major
            logits = tf.reduce_mean(tf.reshape(logits, [VIEW_COUNTS[tta], -1, num_classes]), 0)
        probabilities = tf.sigmoid(logits) if multi_label else tf.nn.softmax(logits)
        return {"logits": logits, "probabilities": probabilities}

    return serve


def tta_views(image: Any, tta: str) -> Any:
    """The views of `tta.views(image, tta)` in TensorFlow, stacked on the batch axis.

    (N, H, W, C) -> (V*N, H, W, C), view-major: the image, then (`hflip_crops`) its crops
    of the reflect-padded image at `crop_corners`, then the same for the mirror image. Only
    ops tf2onnx converts (Reverse, Pad REFLECT, strided Slice, Concat).
    """
    import tensorflow as tf

    from emotionkit.tta import CROP_PAD, TTA_MODES, crop_corners

    if tta not in TTA_MODES:
        raise ExportError(f"export.tta must be one of {', '.join(TTA_MODES)}, got {tta!r}")
    if tta == "none":
        return image
    bases = [image, tf.reverse(image, axis=[2])]  # NHWC: axis 2 is the width
    if tta == "hflip":
        return tf.concat(bases, axis=0)
    pad, corners = CROP_PAD, crop_corners(CROP_PAD)
    height, width = image.shape[1], image.shape[2]
    crops = []
    for base in bases:
        padded = tf.pad(base, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        crops += [padded[:, top : top + height, left : left + width] for top, left in corners]
    return tf.concat(crops, axis=0)


def write_saved_model(model: Any, path: Path, metadata: dict[str, str], tta: str = "none") -> None:
    """SavedModel with the `serving_default` signature of `serving_function`."""
    import keras

    serve = serving_function(model, tta, is_multi_label(metadata))
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serve", fn=serve)
    archive.write_out(str(path), verbose=False)
    extra = path / "assets.extra"  # TF Serving's folder for files beside the graph
    extra.mkdir(exist_ok=True)
    (extra / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")


def write_onnx(
    model: Any, path: Path, metadata: dict[str, str], opset: int | None, tta: str = "none"
) -> dict[str, Any]:
    """Convert with tf2onnx at `opset` (or the newest that works); returns opset + fallbacks.

    `opset: null` tries the newest opset tf2onnx and onnx both know, then lower ones, and
    records why each was refused; a fixed opset is tried alone.
    """
    fallbacks: list[dict[str, Any]] = []
    for candidate in _opset_candidates(opset):
        try:
            _convert(model, path, candidate, tta, is_multi_label(metadata))
            _check_loads(path)
        except Exception as error:  # tf2onnx and onnxruntime raise many types
            fallbacks.append({"opset": candidate, "reason": f"{type(error).__name__}: {error}"})
            continue
        _set_metadata(path, metadata)
        return {"opset": candidate, "opset_fallbacks": fallbacks}
    raise ExportError(f"ONNX conversion failed at every opset tried: {json.dumps(fallbacks)}")


def _opset_candidates(opset: int | None) -> list[int]:
    if opset is not None:
        return [opset]
    import onnx
    import tf2onnx.constants

    newest = min(max(tf2onnx.constants.OPSET_TO_IR_VERSION), onnx.defs.onnx_opset_version())
    return list(range(newest, newest - MAX_OPSET_TRIES, -1))


def _convert(model: Any, path: Path, opset: int, tta: str, multi_label: bool) -> None:
    import tf2onnx
    from keras.src.export.tf2onnx_lib import patch_tf2onnx

    patch_tf2onnx()  # tf2onnx 1.17 still uses NumPy aliases removed in NumPy 2 (as Keras does)
    serve = serving_function(model, tta, multi_label)
    tf2onnx.convert.from_function(
        serve, input_signature=serve.input_signature, opset=opset, output_path=str(path)
    )


def _check_loads(path: Path) -> None:
    import onnxruntime as ort

    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _set_metadata(path: Path, metadata: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def read_onnx_metadata(path: Path) -> dict[str, str]:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {entry.key: entry.value for entry in proto.metadata_props}


def quantize_int8(
    float_path: Path, int8_path: Path, calibration: np.ndarray, metadata: dict[str, str]
) -> None:
    """Static INT8 (QDQ, per-channel weights) calibrated on `calibration` images.

    Static rather than dynamic quantisation: convolutions dominate, and onnxruntime's dynamic
    mode only quantises MatMul/Gemm weights.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[np.ndarray] = iter(np.array_split(calibration, 8))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None or not len(batch) else {"image": batch}

    prepared = int8_path.with_name("prepared.onnx")
    quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)  # no sympy
    quantize_static(
        str(prepared),
        str(int8_path),
        Batches(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    prepared.unlink()
    _set_metadata(int8_path, {**metadata, "quantization": "int8-static-qdq"})


def onnx_outputs(path: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    """{logits, probabilities} of an ONNX file on float32 images (onnxruntime, CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    values = session.run(names, {"image": images.astype(np.float32)})
    return dict(zip(names, (np.asarray(v) for v in values), strict=True))


def saved_model_outputs(path: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    """{logits, probabilities} of a SavedModel's `serving_default` signature."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    outputs = signature(image=tf.constant(images.astype(np.float32)))
    return {name: np.asarray(value) for name, value in outputs.items()}
