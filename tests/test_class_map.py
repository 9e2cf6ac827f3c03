"""`data.class_map`: merged, kept and renamed classes, for hard and soft labels."""

from __future__ import annotations

import numpy as np
import pytest

from emotionkit.data.class_map import apply_class_map
from emotionkit.data.spec import DataSpec
from emotionkit.data.types import LoadedData, SplitData
from emotionkit.errors import DataError, RecipeError
from emotionkit.recipe import load_recipe

CLASSES = ["angry", "happy", "sad", "surprise"]


def loaded(labels: np.ndarray) -> LoadedData:
    images = np.arange(len(labels), dtype=np.uint8).reshape(-1, 1, 1, 1)
    split = SplitData(images, labels, [f"img{i}" for i in range(len(labels))])
    return LoadedData(list(CLASSES), {"train": split})


def test_merging_relabels_and_leaving_out_drops() -> None:
    data = loaded(np.array([0, 1, 2, 3, 1, 2], dtype=np.int32))
    mapped = apply_class_map(data, {"positive": ["happy", "surprise"], "negative": ["sad"]})
    train = mapped.splits["train"]
    assert mapped.class_names == ["positive", "negative"]
    assert train.labels.tolist() == [0, 1, 0, 0, 1]
    assert train.ids == ["img1", "img2", "img3", "img4", "img5"]  # angry's image is dropped
    assert train.images[:, 0, 0, 0].tolist() == [1, 2, 3, 4, 5]
    assert mapped.dropped == {"not in data.class_map": 1}


def test_soft_labels_sum_merged_columns_and_renormalise() -> None:
    votes = np.array([[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.2, 0.2, 0.6]])
    mapped = apply_class_map(loaded(votes.astype(np.float32)), {"joy": ["happy", "surprise"]})
    assert mapped.splits["train"].labels.tolist() == [[1.0], [1.0]]  # all-angry row dropped
    mapped = apply_class_map(
        loaded(votes.astype(np.float32)), {"joy": ["happy", "surprise"], "sad": ["sad"]}
    )
    np.testing.assert_allclose(mapped.splits["train"].labels, [[1, 0], [0.8, 0.2]], atol=1e-6)


def test_unknown_class_names_the_map_entry() -> None:
    with pytest.raises(DataError, match=r"^data\.class_map\.joy: \['hapy'\] not among"):
        apply_class_map(loaded(np.array([1], dtype=np.int32)), {"joy": ["hapy"]})


@pytest.mark.parametrize(
    ("class_map", "message"),
    [
        ("{a: [happy], b: [happy, sad]}", "'happy' is in both 'a' and 'b'"),
        ("{a: []}", "data.class_map.a lists no source class"),
    ],
)
def test_a_class_in_two_entries_or_none_is_a_recipe_error(class_map: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        load_recipe("quickstart", [f"data.class_map={class_map}"])


def test_no_map_changes_nothing() -> None:
    data = loaded(np.array([0, 3], dtype=np.int32))
    assert apply_class_map(data, None) is data
    assert DataSpec().class_map is None
