"""`model_summary`, `emotionkit model summary` and the FLOPs convention."""

from __future__ import annotations

import json
import subprocess

import pytest
from rich.console import Console

from emotionkit.models import build_model, model_summary
from emotionkit.models.resnet import ResNetSpec
from emotionkit.models.summary import summary_lines, summary_table
from tests.conftest import REPO, TINY_OVERRIDES, TINY_STAGE_BLOCKS
from tests.test_cli import run_cli_concurrently


def tiny_summary(stage_blocks: tuple[int, ...] = (1, 1, 1, 1)) -> dict:
    spec = ResNetSpec(width=0.125, stage_blocks=list(stage_blocks))
    return model_summary(build_model(spec, image_size=32, channels=1, num_classes=7))


def test_resnet18_imagenet_flops_match_the_published_figure() -> None:
    # torchvision/fvcore: ResNet-18 at 224x224x3 is 1.81 GMACs = 3.63 GFLOPs (1000 classes)
    spec = ResNetSpec(depth=18, stem="imagenet")
    summary = model_summary(build_model(spec, image_size=224, channels=3, num_classes=1000))
    assert summary["flops_per_image"] == pytest.approx(3.63e9, rel=0.01)
    assert summary["feature_map"] == [7, 7, 512]


def test_stage_rows_add_up() -> None:
    summary = tiny_summary()
    stages = {row["stage"]: row for row in summary["stages"]}
    assert list(stages) == ["input", "stem", "stage0", "stage1", "stage2", "stage3", "head"]
    # CIFAR stem at width 1/8: a 3x3 conv, 1 -> 8 channels, at 32x32
    assert stages["stem"]["flops"] == 2 * 3 * 3 * 1 * 8 * 32 * 32
    assert stages["head"]["flops"] == 2 * 64 * 7
    assert sum(row["parameters"] for row in stages.values()) == summary["parameters"]["total"]
    assert sum(row["flops"] for row in stages.values()) == summary["flops_per_image"]
    assert stages["stage3"]["output_shape"] == [4, 4, 64] == summary["feature_map"]


def test_rendering_shows_the_headline_numbers() -> None:
    summary = tiny_summary()
    console = Console(record=True, width=100)
    console.print(summary_table(summary))
    for line in summary_lines(summary):
        console.print(line)
    text = console.export_text()
    assert "stage3" in text and "4x4x64" in text
    assert f"{summary['parameters']['total']:,} total" in text


@pytest.fixture(scope="module")
def cli_summaries() -> dict[str, subprocess.CompletedProcess[str]]:
    """This module's two `emotionkit model summary` runs, started together: each spends most
    of its time importing the framework."""
    quickstart = str(REPO / "recipes" / "quickstart.yaml")
    tiny, bad_freeze = run_cli_concurrently(
        ["model", "summary", quickstart, *TINY_OVERRIDES, "--json"],
        ["model", "summary", quickstart, "model.freeze=[nope*]"],
    )
    return {"tiny": tiny, "bad_freeze": bad_freeze}


def test_cli_model_summary_json(cli_summaries: dict[str, subprocess.CompletedProcess[str]]) -> None:
    result = cli_summaries["tiny"]
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(json.dumps(tiny_summary(TINY_STAGE_BLOCKS)))


def test_cli_model_summary_bad_freeze_pattern_exits_2(
    cli_summaries: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    result = cli_summaries["bad_freeze"]
    assert result.returncode == 2 and "model.freeze" in result.stderr


def test_summary_of_a_recipe_whose_data_is_not_here_assumes_the_fer_classes() -> None:
    from emotionkit.recipe import load_recipe
    from emotionkit.workflow import describe_model
    from tests.conftest import BACKEND

    recipe = load_recipe(
        REPO / "recipes" / "fer2013_cpu.yaml",
        ["data.source.path=/nonexistent/fer2013", f"runtime.backend={BACKEND}"],
    )
    summary = describe_model(recipe)
    assert summary["stages"][-1]["output_shape"] == [7]
