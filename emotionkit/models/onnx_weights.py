"""Read the weights of an emotionkit ONNX export back into per-layer Keras variables.

The shipped models are ONNX files only (a `.keras` copy would double the package), so
fine-tuning one starts from its ONNX graph. tf2onnx folds each BatchNormalization into the
convolution before it: the file holds `kernel * gamma / sqrt(var + eps)` and the folded bias,
and nothing else of the BatchNorm. Every convolution is filled with its folded kernel and its
BatchNorm is set to the identity plus that bias (gamma 1, mean 0, variance 1 - eps), which
computes exactly what the ONNX graph computes. The BatchNorm's statistics are gone, so a
model filled this way must keep its BatchNorm layers in inference mode while it trains
(`model.freeze_batchnorm: true`); batch statistics would renormalise the folded kernels.

Layers are found by name: tf2onnx names each initializer after the Keras layer that made it
(`<model>_1/stack0_block1_1_conv_1/convolution/merged_input:0`), so the second path part,
less TensorFlow's `_1` call suffix, is the layer.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.errors import ModelError
from emotionkit.models.layer_names import BN_EPSILON

Store = dict[str, np.ndarray]


def stores_from_onnx(path: Path) -> tuple[dict[str, Store], dict[str, str]]:
    """Per-layer variables (Keras save order) of an emotionkit ONNX export, and its metadata.

    Returns:
        `{layer name: {"0": array, "1": array, ...}}` for every convolution, its folded
        BatchNorm and the dense head, and the file's metadata (class names, normalisation).

    Raises:
        ModelError: not readable as ONNX, or a graph emotionkit did not export.
    """
    import onnx
    from onnx import numpy_helper

    try:
        proto = onnx.load(str(path))
    except Exception as error:  # onnx raises DecodeError, OSError, ...
        raise ModelError(f"model.weights: cannot read {path} as ONNX: {error}") from None
    arrays = {item.name: numpy_helper.to_array(item) for item in proto.graph.initializer}
    stores: dict[str, Store] = {}
    for node in proto.graph.node:
        if node.op_type == "Conv":
            _add_conv(stores, node, arrays, path)
        elif node.op_type == "MatMul" and node.input[1] in arrays:
            _add_dense(stores, node, proto.graph.node, arrays)
    if not stores:
        raise ModelError(f"model.weights: {path} holds no convolution or dense weights.")
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    return stores, metadata


def class_names_of(metadata: dict[str, str]) -> list[str] | None:
    """The exported model's class names, when its metadata has them."""
    names = metadata.get("class_names")
    return list(json.loads(names)) if names else None


def normalisation_of(path: Path) -> tuple[float, float] | None:
    """The input mean and std (0-255) an emotionkit ONNX export was trained with.

    A model fine-tuned from the file keeps them, so the pixels its first convolution sees
    are distributed as in pretraining. Reads only the metadata.
    """
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    if "pixel_mean" not in metadata or "pixel_std" not in metadata:
        return None
    return float(metadata["pixel_mean"]), float(metadata["pixel_std"])


def layer_of(initializer: str) -> str:
    """`model_1/stack0_block1_1_conv_1/convolution/...:0` -> `stack0_block1_1_conv`."""
    parts = initializer.split("/")
    return re.sub(r"_\d+$", "", parts[1]) if len(parts) > 2 else ""


def _add_conv(
    stores: dict[str, Store], node: Any, arrays: dict[str, np.ndarray], path: Path
) -> None:
    if node.input[1] not in arrays:
        raise ModelError(f"model.weights: {path} has a convolution whose kernel is computed.")
    if any(attribute.name == "group" and attribute.i != 1 for attribute in node.attribute):
        raise ModelError(
            f"model.weights: {path} has grouped (depthwise) convolutions; only ResNet exports "
            "can be read back."
        )
    conv = layer_of(node.input[1])
    if conv in stores:  # the same layer in the mirrored view of an `export.tta` graph
        return
    kernel = arrays[node.input[1]].transpose(2, 3, 1, 0)  # (out, in, h, w) -> (h, w, in, out)
    bias = arrays[node.input[2]] if len(node.input) > 2 and node.input[2] in arrays else None
    owner = layer_of(node.input[2]) if bias is not None else ""
    if bias is None or owner == conv:  # no BatchNorm after it (a biased v2 stem)
        stores[conv] = {"0": kernel} if bias is None else {"0": kernel, "1": bias}
        return
    stores[conv] = {"0": kernel}
    ones = np.ones_like(bias)
    stores[owner] = {
        "0": ones,  # gamma
        "1": bias,  # beta: the folded bias
        "2": np.zeros_like(bias),  # moving mean
        "3": ones - np.float32(BN_EPSILON),  # moving variance: var + eps == 1
    }


def _add_dense(
    stores: dict[str, Store], node: Any, nodes: Any, arrays: dict[str, np.ndarray]
) -> None:
    dense = layer_of(node.input[1])
    if dense in stores:
        return
    bias = next(
        (
            arrays[name]
            for other in nodes
            if other.op_type == "Add" and node.output[0] in other.input
            for name in other.input
            if name in arrays
        ),
        None,
    )
    kernel = arrays[node.input[1]]
    stores[dense] = {"0": kernel} if bias is None else {"0": kernel, "1": bias}


def select_head_rows(
    store: Store, source_classes: list[str], target_classes: list[str], fresh: Store
) -> tuple[Store, list[str]]:
    """The head's kernel columns (and biases) of the target classes the source also has.

    Classes the source lacks keep their fresh initialisation (`fresh`), so a subset or a
    reordering of the pretrained classes starts where the pretrained model is, and a new
    class starts from scratch.

    Returns:
        The store to load and the target classes taken from the source.
    """
    kernel, bias = np.array(fresh["0"]), np.array(fresh["1"])
    taken = []
    for column, name in enumerate(target_classes):
        if name in source_classes:
            kernel[:, column] = store["0"][:, source_classes.index(name)]
            bias[column] = store["1"][source_classes.index(name)]
            taken.append(name)
    return {"0": kernel, "1": bias}, taken
