"""The recipe's `export` section: the artifacts written after training and their gates."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from emotionkit.sections import Section

ExportFormat = Literal["saved_model", "onnx", "onnx_int8"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("saved_model", "onnx")


class ExportSpec(Section):
    """What is exported after training, and the parity gate it must pass."""

    formats: list[ExportFormat] = Field(
        default_factory=lambda: list(EXPORT_FORMATS),
        description="Artifacts written to `export/` after training ([] to skip): "
        "`saved_model`, `onnx` (float32) and `onnx_int8` (static INT8 quantisation of the "
        "ONNX model). Each must pass the parity gate.",
    )
    parity_samples: int = Field(
        64, ge=1, description="Validation images used to compare exports with Keras."
    )
    parity_atol: float = Field(
        1e-4, gt=0.0, description="Largest allowed absolute logit difference vs Keras."
    )
    opset: int | None = Field(
        None,
        ge=13,
        description="ONNX opset; `null`: the newest that both tf2onnx and onnx support, falling "
        "back to lower opsets (reason logged in export.json) when conversion or loading fails.",
    )
    int8_max_drop: float = Field(
        1.0,
        ge=0.0,
        description="`onnx_int8` gate: largest allowed validation accuracy drop of the INT8 "
        "model against the float ONNX model, in percentage points.",
    )
    int8_calibration_per_class: int = Field(
        32,
        ge=1,
        description="`onnx_int8`: train images per class (seeded, class-balanced) that "
        "calibrate the static quantisation ranges.",
    )
    tta: Literal["none", "hflip", "hflip_crops"] = Field(
        "none",
        description="Test-time augmentation baked into every artifact, as `evaluate --tta`: "
        "`hflip` makes the exported models return the mean logits of the image and its "
        "horizontal mirror (faces are near mirror-symmetric: +1.4 accuracy points on FER2013) "
        "at 2x the inference cost; `hflip_crops` the mean over ten views (the centre and four "
        "corner crops of the image reflect-padded by 2 px, each with its mirror) at 10x the "
        "inference cost. `metrics.json` then reports the averaged figures, with the "
        "single-view ones beside them.",
    )
