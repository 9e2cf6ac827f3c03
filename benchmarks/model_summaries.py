"""Parameters, FLOPs per image and feature maps of the model variants docs/models.md quotes.

Builds each variant with `emotionkit.workflow.describe_model` (the code behind
`emotionkit model summary`: analytic FLOPs, 2 per multiply-add in Conv2D/Dense layers) on
the quickstart recipe with overrides, 48x48x1 input and the 7 synthetic classes unless the
variant says otherwise. Nothing is trained or timed, so the figures do not depend on the
machine; a run takes about a minute on 2 CPU cores (the ResNet-101 builds dominate).

Run from the repository root:
    python benchmarks/model_summaries.py
Writes benchmarks/results/model_summaries.json and prints one line per variant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "model_summaries.json"
BASE_RECIPE = REPO / "recipes" / "quickstart.yaml"
# The quickstart's tiny stage_blocks would override `model.depth`: every full-size variant
# sets it back to null so that depth picks the blocks.
FULL = ["model.stage_blocks=null", "model.width=1.0"]
DEPTHS = (18, 34, 50, 101)
VERSIONS = ("v1", "v2")
STEMS = ("cifar", "stride2", "imagenet")


def variants() -> dict[str, list[str]]:
    """Variant name -> overrides of the quickstart recipe."""
    table: dict[str, list[str]] = {}
    for depth in DEPTHS:
        for version in VERSIONS:
            for stem in STEMS:
                table[f"resnet{depth}_{version}_{stem}"] = [
                    *FULL,
                    f"model.depth={depth}",
                    f"model.version={version}",
                    f"model.stem={stem}",
                ]
    # Keys without dots (the docs address figures by dotted keys): width 0.5 -> "w050".
    for width, tag in (("0.5", "w050"), ("0.25", "w025")):
        for stem in ("cifar", "stride2"):
            table[f"resnet18_v1_{stem}_{tag}"] = [
                "model.stage_blocks=null",
                f"model.width={width}",
                f"model.stem={stem}",
            ]
    table["quickstart"] = []
    table["fer2013_cpu"] = [
        "model.stage_blocks=null",
        "model.width=0.375",
        "model.stem=deep_stride2",
    ]
    table["mobilenet_v3_small_width1"] = [
        "model.name=mobilenet_v3_small",
        "model.expand_channels=true",
        "model.width=1.0",
    ]
    # The published reference point: ResNet-18 (ImageNet stem) at 224x224x3 is 1.8 G
    # multiply-adds, 3.6 GFLOPs in this convention (a 1000-class head would add 1 MFLOP to
    # this 7-class one).
    table["resnet18_v1_imagenet_224x224x3"] = [
        *FULL,
        "model.stem=imagenet",
        "data.image_size=224",
        "data.channels=3",
    ]
    return table


def summarise(overrides: list[str]) -> dict[str, Any]:
    import keras

    from emotionkit import load_recipe
    from emotionkit.workflow import describe_model

    summary = describe_model(load_recipe(BASE_RECIPE, overrides))
    keras.backend.clear_session()
    return {
        "overrides": overrides,
        "parameters": summary["parameters"]["total"],
        "trainable_parameters": summary["parameters"]["trainable"],
        "flops_per_image": summary["flops_per_image"],
        "feature_map": summary["feature_map"],
    }


def main() -> int:
    results: dict[str, Any] = {"base_recipe": "recipes/quickstart.yaml", "variants": {}}
    for name, overrides in variants().items():
        row = summarise(overrides)
        results["variants"][name] = row
        print(f"{name:38s} {row['parameters']:>11,d} params {row['flops_per_image']:>16,d} FLOPs")
    rows = results["variants"]
    results["v2_over_v1_flops"] = {
        f"resnet{depth}_{stem}": round(
            rows[f"resnet{depth}_v2_{stem}"]["flops_per_image"]
            / rows[f"resnet{depth}_v1_{stem}"]["flops_per_image"],
            2,
        )
        for depth in DEPTHS
        for stem in STEMS
    }
    results["imagenet_stem_extra_parameters"] = (
        rows["resnet18_v1_imagenet"]["parameters"] - rows["resnet18_v1_cifar"]["parameters"]
    )
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
