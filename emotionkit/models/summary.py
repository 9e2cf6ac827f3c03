"""Model summary: parameters, FLOPs per image, feature-map size and a stage-level table.

FLOPs are computed analytically from layer shapes, not measured: a multiply-add counts as
2 FLOPs, so a `Conv2D` costs `2 * kh * kw * (cin / groups) * cout * H_out * W_out`, a
`DepthwiseConv2D` `2 * kh * kw * cin * multiplier * H_out * W_out` and a `Dense`
`2 * in * out` per position. BatchNorm, activations, additions, pooling and biases are left
out: they are under 1 % of a ResNet's count, and the convention matches the figures papers
quote (ResNet-18 at 224x224: 3.6 GFLOPs). The same numbers go to `model.json` in every run.
"""

from __future__ import annotations

import math
import re
from typing import Any

from emotionkit.models.layer_names import EMBEDDING, HEAD, NORMALIZE, STEM_PREFIX

# Layer-name prefix -> the stage it belongs to in the compact table.
_STAGE_PATTERNS = (
    (re.compile(rf"^{NORMALIZE}$"), "input"),
    (re.compile(rf"^({STEM_PREFIX}|pool1_)"), "stem"),
    (re.compile(r"^stack(\d+)_"), "stage{0}"),
    (re.compile(r"^post_"), "post"),
    (re.compile(rf"^({'|'.join((EMBEDDING, *HEAD))})$"), "head"),
)


def model_summary(model: Any) -> dict[str, Any]:
    """Parameters, FLOPs per image, feature-map size and per-stage rows of a built model.

    Returns:
        `name`, `input_shape`, `parameters` (`trainable`, `total`), `flops_per_image`,
        `feature_map` (H, W, C before pooling), `embedding_size` and `stages`: one row per
        stage with `layers`, `parameters`, `flops` and `output_shape`.

    Example:
        >>> model_summary(model)["feature_map"]
        [6, 6, 512]
    """
    stages: dict[str, dict[str, Any]] = {}
    for layer in model.layers:
        stage = stage_of(layer.name)
        if stage is None:
            continue
        row = stages.setdefault(stage, {"stage": stage, "layers": 0, "parameters": 0, "flops": 0})
        row["layers"] += 1
        row["parameters"] += int(layer.count_params())
        row["flops"] += layer_flops(layer)
        row["output_shape"] = list(layer.output.shape[1:])
    feature_map = list(model.get_layer(EMBEDDING).input.shape[1:])
    trainable = sum(math.prod(variable.shape) for variable in model.trainable_weights)
    return {
        "name": model.name,
        "input_shape": list(model.input.shape[1:]),
        "parameters": {"trainable": int(trainable), "total": int(model.count_params())},
        "flops_per_image": sum(row["flops"] for row in stages.values()),
        "feature_map": feature_map,
        "embedding_size": feature_map[-1],
        "stages": list(stages.values()),
    }


def stage_of(layer_name: str) -> str | None:
    """The table row a layer is counted in (`stem`, `stage0`, ..., `backbone`, `head`)."""
    for pattern, stage in _STAGE_PATTERNS:
        match = pattern.match(layer_name)
        if match:
            return stage.format(*match.groups())
    return None if layer_name == "image" else "backbone"  # e.g. MobileNetV3 layers


def layer_flops(layer: Any) -> int:
    """FLOPs of one layer for one image (see the module docstring for the convention)."""
    import keras

    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        _, height, width, channels = layer.output.shape
        return 2 * kh * kw * channels * height * width
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        cin = layer.input.shape[-1] // layer.groups
        _, height, width, cout = layer.output.shape
        return 2 * kh * kw * cin * cout * height * width
    if isinstance(layer, keras.layers.Dense):
        positions = math.prod(layer.input.shape[1:-1])
        return 2 * layer.input.shape[-1] * layer.units * positions
    return 0


def format_count(value: float) -> str:
    """12_345_678 -> '12.35M' (parameters and FLOPs in tables)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return str(int(value))


def summary_table(summary: dict[str, Any]) -> Any:
    """The stage rows of `model_summary` as a Rich table, as `emotionkit model summary` shows."""
    from rich.table import Table

    table = Table(title=f"{summary['name']}  input {_shape(summary['input_shape'])}")
    for column in ("stage", "layers", "parameters", "FLOPs", "output"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for row in summary["stages"]:
        table.add_row(
            row["stage"],
            str(row["layers"]),
            format_count(row["parameters"]),
            format_count(row["flops"]),
            _shape(row["output_shape"]),
        )
    return table


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The headline numbers of `model_summary`, one per line."""
    parameters = summary["parameters"]
    return [
        f"parameters: {parameters['total']:,} total, {parameters['trainable']:,} trainable",
        f"FLOPs per image: {format_count(summary['flops_per_image'])} "
        f"({summary['flops_per_image']:,}; 2 per multiply-add, Conv2D and Dense only)",
        f"feature map before pooling: {_shape(summary['feature_map'])} "
        f"(embedding size {summary['embedding_size']})",
    ]


def _shape(shape: list[int]) -> str:
    return "x".join(str(size) for size in shape)
