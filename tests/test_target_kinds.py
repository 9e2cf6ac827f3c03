"""`data.targets` (single, distribution, multi-label) and FER+'s unknown/NF protocol."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from emotionkit.data import load_source
from emotionkit.data.target_kinds import convert_targets
from emotionkit.data.types import LoadedData, SplitData
from emotionkit.errors import RecipeError
from emotionkit.recipe import load_recipe
from tests.test_sources import data_spec, pixel_string, write_csv

VOTES = np.array([[0.6, 0.3, 0.1], [0.4, 0.4, 0.2], [0.0, 0.2, 0.8]], dtype=np.float32)


def loaded(labels: np.ndarray) -> LoadedData:
    images = np.zeros((len(labels), 1, 1, 1), np.uint8)
    return LoadedData(["a", "b", "c"], {"train": SplitData(images, labels, ["0", "1", "2"])})


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        ("single", [0, 0, 2]),  # the majority class, the first one on a tie
        ("distribution", VOTES.tolist()),
        ("multi_label", [[1, 1, 0], [1, 1, 0], [0, 0, 1]]),  # >= 0.3 of the votes
    ],
)
def test_votes_become_each_kind(targets: str, expected: list) -> None:
    data = convert_targets(loaded(VOTES.copy()), targets, min_share=0.3)
    np.testing.assert_allclose(data.splits["train"].labels, expected)
    assert data.targets == targets and data.summary()["targets"] == targets


def test_one_class_per_image_becomes_one_hot_or_stays() -> None:
    labels = np.array([2, 0, 1], dtype=np.int32)
    single = convert_targets(loaded(labels.copy()), "single", 0.3)
    assert single.splits["train"].labels.tolist() == [2, 0, 1]
    for kind in ("distribution", "multi_label"):
        rows = convert_targets(loaded(labels.copy()), kind, 0.3).splits["train"].labels
        np.testing.assert_array_equal(rows, np.eye(3)[labels])
    assert convert_targets(loaded(labels.copy()), "auto", 0.3).targets == "single"
    assert convert_targets(loaded(VOTES.copy()), "auto", 0.3).targets == "distribution"


def test_ferplus_rows_led_by_unknown_or_not_a_face_are_dropped(tmp_path: Path) -> None:
    image = pixel_string(np.arange(16 * 16, dtype=np.uint8).reshape(16, 16))
    header = ["Usage", "pixels", "happy", "sad", "unknown", "NF"]
    rows = [
        ["Training", image, 6, 2, 2, 0],
        ["Training", image, 2, 2, 6, 0],  # unknown leads: dropped
        ["Training", image, 1, 0, 0, 9],  # not a face: dropped
        ["Training", image, 3, 2, 3, 2],  # a tie with a class keeps the row
    ]
    source = {"kind": "soft_label_csv", "path": str(write_csv(tmp_path / "v.csv", header, rows)),
              "pixels_column": "pixels", "class_columns": ["happy", "sad"],
              "split_column": "Usage", "drop_majority": ["unknown", "NF"]}  # fmt: skip
    data = convert_targets(load_source(data_spec(source, image_size=16), 0), "multi_label", 0.3)
    assert data.dropped == {"majority_unknown_or_NF": 2}
    kept = np.concatenate([split.labels for split in data.splits.values()])
    assert sorted(map(tuple, kept.tolist())) == [(1.0, 0.0), (1.0, 1.0)]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (["train.loss.name=bce"], "train.loss.name: bce is the multi-label loss"),
        (["data.targets=multi_label"], "data.targets: multi_label needs train.loss.name: bce"),
    ],
)
def test_multi_label_loss_and_targets_go_together(overrides: list[str], field: str) -> None:
    with pytest.raises(RecipeError, match=field):
        load_recipe("quickstart", overrides)
    load_recipe("quickstart", ["train.loss.name=bce", "data.targets=multi_label"])


def test_a_multi_label_loss_on_single_label_data_exits_2_naming_the_field() -> None:
    result = subprocess.run(
        ["emotionkit", "train", "quickstart", "train.loss.name=bce"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert "train.loss.name: bce is the multi-label loss" in result.stderr + result.stdout
