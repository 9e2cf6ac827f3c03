"""`emotionkit data inspect`: counts, duplicates, blanks and failures on a planted folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from emotionkit.cli import app
from emotionkit.data.inspect import AUGMENTED_COPIES, augmented_copies, inspect_data
from emotionkit.data.spec import DataSpec
from emotionkit.data.synthetic import FER_CLASSES
from emotionkit.errors import DataError
from emotionkit.runtime import RuntimeSpec, configure_frameworks, resolve_runtime
from tests.conftest import BACKEND

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
AUGMENT = [{"flip": {}}, {"rotate": {"degrees": 15}}]


def write_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tf.io.encode_png(pixels).numpy())


def build_planted_folder(root: Path) -> dict[str, np.ndarray]:
    """7 classes x 3 random 48x48 train images and 1 val image each, plus planted problems:

    - train/happy/happy_dup.png: a copy of train/happy/happy_0.png (duplicate within train);
    - train/angry/sad_0.png: a copy of train/sad/sad_0.png (conflicting labels, and the same
      file name in two class folders);
    - train/neutral/blank.png: constant grey (blank);
    - train/fear/broken.png: not an image (decode failure, skipped);
    - val/surprise/leak.png: a copy of train/surprise/surprise_1.png (val image in train).

    Returns the pixels of every decodable train image by id, for the expected statistics.
    """
    rng = np.random.default_rng(0)
    train: dict[str, np.ndarray] = {}
    for name in FER_CLASSES:
        for i in range(3):
            train[f"train/{name}/{name}_{i}.png"] = rng.integers(0, 256, (48, 48, 1), np.uint8)
        write_png(root / f"val/{name}/{name}_v.png", rng.integers(0, 256, (48, 48, 1), np.uint8))
    train["train/happy/happy_dup.png"] = train["train/happy/happy_0.png"]
    train["train/angry/sad_0.png"] = train["train/sad/sad_0.png"]
    train["train/neutral/blank.png"] = np.full((48, 48, 1), 128, np.uint8)
    for image_id, pixels in train.items():
        write_png(root / image_id, pixels)
    (root / "train/fear/broken.png").write_bytes(b"not a png at all")
    shutil.copy(root / "train/surprise/surprise_1.png", root / "val/surprise/leak.png")
    return train


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("planted")
    return root, build_planted_folder(root)


@pytest.fixture(scope="module")
def report(planted: tuple[Path, dict[str, np.ndarray]]) -> tuple[dict[str, Any], Path]:
    root, _ = planted
    configure_frameworks(resolve_runtime(RuntimeSpec(backend=BACKEND)), seed=0)
    spec = DataSpec(source={"kind": "image_folder", "path": root}, augment=AUGMENT)
    out_dir = root.parent / "inspect_out"
    return inspect_data(spec, seed=3, out_dir=out_dir), out_dir


def test_counts_percentages_and_imbalance(report: tuple[dict[str, Any], Path]) -> None:
    splits = report[0]["splits"]
    expected = dict.fromkeys(FER_CLASSES, 3) | {"angry": 4, "happy": 4, "neutral": 4}
    assert splits["train"]["class_counts"] == expected
    assert splits["train"]["size"] == 24
    assert splits["train"]["class_percent"]["angry"] == round(100 * 4 / 24, 2)
    assert splits["train"]["imbalance_ratio"] == 1.33
    assert splits["val"]["class_counts"] == dict.fromkeys(FER_CLASSES, 1) | {"surprise": 2}
    assert splits["val"]["imbalance_ratio"] == 2.0
    assert splits["train"]["image_shape"] == [48, 48, 1]
    assert splits["train"]["on_disk"] == {"48x48 L PNG": 24}


def test_pixel_and_contrast_statistics(
    report: tuple[dict[str, Any], Path], planted: tuple[Path, dict[str, np.ndarray]]
) -> None:
    train = report[0]["splits"]["train"]
    pixels = np.stack(list(planted[1].values())).astype(np.float64)
    assert train["pixel_mean"] == pytest.approx(pixels.mean(), abs=1e-3)
    assert train["pixel_std"] == pytest.approx(pixels.std(), abs=1e-3)
    assert train["pixel_std_01"] == pytest.approx(pixels.std() / 255, abs=1e-4)
    flat = pixels.reshape(len(pixels), -1)
    per_image_std = flat.std(axis=1)
    assert train["contrast"]["std"]["mean"] == pytest.approx(per_image_std.mean(), abs=0.01)
    assert train["contrast"]["std"]["p50"] == pytest.approx(np.median(per_image_std), abs=0.01)
    ranges = np.percentile(flat, 99, axis=1) - np.percentile(flat, 1, axis=1)
    assert train["contrast"]["p1_p99_range"]["p5"] == pytest.approx(
        np.percentile(ranges, 5), abs=0.01
    )


def test_duplicates_blanks_and_failures(report: tuple[dict[str, Any], Path]) -> None:
    found = report[0]
    within = found["duplicates"]["within_split"]
    assert within["train"]["groups"] == 2 and within["train"]["extra_copies"] == 2
    assert sorted(within["train"]["examples"]) == [
        ["train/angry/sad_0.png", "train/sad/sad_0.png"],
        ["train/happy/happy_0.png", "train/happy/happy_dup.png"],
    ]
    assert within["val"] == {"groups": 0, "extra_copies": 0, "examples": []}
    assert found["duplicates"]["also_in_train"]["val"] == {
        "images": 1,
        "examples": [
            {"id": "val/surprise/leak.png", "train_ids": ["train/surprise/surprise_1.png"]}
        ],
    }
    conflicts = found["duplicates"]["conflicting_labels"]
    assert conflicts["groups"] == 1 and conflicts["images"] == 2
    assert conflicts["examples"][0]["labels"] == ["angry", "sad"]
    assert found["blank_images"] == {
        "count": 1,
        "by_split": {"train": 1, "val": 0},
        "ids": ["train/neutral/blank.png"],
    }
    assert found["same_file_name"]["names"] == 1
    assert found["decode_failures"]["count"] == 1
    assert found["decode_failures"]["files"][0]["path"].endswith("train/fear/broken.png")


def test_files_are_written(report: tuple[dict[str, Any], Path]) -> None:
    found, out_dir = report
    assert json.loads((out_dir / "data_report.json").read_text()) == found
    for name in ("samples.png", "augment_preview.png"):
        encoded = (out_dir / name).read_bytes()
        assert encoded.startswith(PNG_MAGIC)
        height, width, _ = tf.io.decode_png(encoded).shape
        assert height > 200 and width > 200


def test_augmented_copies_differ_and_empty_augment_gives_none() -> None:
    configure_frameworks(resolve_runtime(RuntimeSpec(backend=BACKEND)), seed=0)
    image = np.tile(np.arange(48, dtype=np.uint8)[None, :, None] * 5, (48, 1, 1))
    copies = augmented_copies(image, AUGMENT, seed=1, num_classes=7)
    assert copies.shape == (AUGMENTED_COPIES, 48, 48, 1) and copies.dtype == np.uint8
    assert sum(not np.array_equal(copy, image) for copy in copies) >= AUGMENTED_COPIES - 1
    assert augmented_copies(image, [], seed=1, num_classes=7).shape == (0, 48, 48, 1)


def test_cli_prints_counts_and_writes_the_report(
    planted: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    recipe = tmp_path / "inspect.yaml"
    recipe.write_text("name: planted\ndata: {source: {kind: image_folder, path: nowhere}}\n")
    out_dir = tmp_path / "out"
    args = ["data", "inspect", str(recipe), f"data.source.path={planted[0]}", "--out", str(out_dir)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "4 (16.7 %)" in result.output and "24" in result.output
    assert "identical images with different labels: 1 group(s) of 2 images" in result.output
    assert result.output.strip().splitlines()[-1] == str(out_dir)
    saved = json.loads((out_dir / "data_report.json").read_text())
    assert saved["splits"]["train"]["class_counts"]["happy"] == 4
    assert (out_dir / "augment_preview.png").read_bytes().startswith(PNG_MAGIC)


def test_cli_missing_data_folder_names_it(tmp_path: Path) -> None:
    recipe = tmp_path / "inspect.yaml"
    recipe.write_text(f"name: gone\ndata: {{source: {{kind: image_folder, path: {tmp_path}/x}}}}\n")
    result = CliRunner().invoke(app, ["data", "inspect", str(recipe), "--out", str(tmp_path)])
    assert isinstance(result.exception, DataError)
    assert f"{tmp_path}/x" in str(result.exception)
