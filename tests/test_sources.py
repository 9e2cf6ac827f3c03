"""The tabular and TFDS sources: fer2013.csv, soft-label CSVs, .npz and prepared TFDS data.

Every fixture is written to tmp_path; nothing is downloaded. The acceptance test loads the
same faces via `image_folder`, `fer2013_csv` and `npz` and asserts identical arrays.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from emotionkit.data import load_source
from emotionkit.data.csv_sources import FER2013_CSV_LABELS
from emotionkit.data.decode import resize_pixels
from emotionkit.data.spec import DataSpec
from emotionkit.data.synthetic import FER_CLASSES, generate_synthetic_faces
from emotionkit.errors import DataError
from emotionkit.recipe import validate_recipe
from tests.conftest import REPO

FER_TRAIN = REPO.parent / "shared" / "data" / "fer2013" / "train"
"""Real FER2013 PNGs (read-only) when the checkout has them; synthetic faces otherwise."""
FER_PLUS_COLUMNS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear"]
FER_PLUS_HEADER = ["Usage", "Image name", *FER_PLUS_COLUMNS, "contempt", "unknown", "NF"]


def data_spec(source: dict[str, Any], **data: Any) -> DataSpec:
    """The `data` section of a recipe validated the way `emotionkit train` validates it."""
    return validate_recipe({"name": "sources", "data": {"source": source, **data}}).data


def fer_faces(per_class: int = 2) -> dict[str, list[np.ndarray]]:
    """(48, 48) uint8 faces per FER class, in file-name order."""
    if FER_TRAIN.is_dir():
        return {
            name: [
                tf.io.decode_png(path.read_bytes(), channels=1).numpy()[..., 0]
                for path in sorted((FER_TRAIN / name).glob("*.png"))[:per_class]
            ]
            for name in FER_CLASSES
        }
    images, labels = generate_synthetic_faces(7 * per_class, seed=0, image_size=48)
    return {
        name: [images[i, ..., 0] for i in np.flatnonzero(labels == c)[:per_class]]
        for c, name in enumerate(FER_CLASSES)
    }


def pixel_string(image: np.ndarray) -> str:
    return " ".join(map(str, image.ravel()))


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tf.io.encode_png(image.reshape(*image.shape[:2], -1)).numpy())


def fer2013_rows(usages: dict[str, int], seed: int = 0) -> list[list[Any]]:
    """`emotion,pixels,Usage` rows: for each Usage, `count` rows cycling through emotions 0-6."""
    rng = np.random.default_rng(seed)
    return [
        [i % 7, pixel_string(rng.integers(0, 256, (48, 48), dtype=np.uint8)), usage]
        for usage, count in usages.items()
        for i in range(count)
    ]


@pytest.mark.parametrize(("image_size", "channels"), [(48, 1), (40, 3)])
def test_same_faces_via_image_folder_fer2013_csv_and_npz_are_identical(
    tmp_path: Path, image_size: int, channels: int
) -> None:
    faces = fer_faces()
    rows, x, y = [], [], []
    for label, name in enumerate(FER_CLASSES):  # image_folder's order: classes, then files
        for i, face in enumerate(faces[name]):
            write_png(tmp_path / "folder" / "train" / name / f"{i}.png", face)
            rows.append([FER2013_CSV_LABELS.index(name), pixel_string(face), "Training"])
            x.append(face)
            y.append(label)
    write_csv(tmp_path / "fer2013.csv", ["emotion", "pixels", "Usage"], rows)
    np.savez(tmp_path / "faces.npz", x=np.stack(x), y=np.array(y))
    sources = {
        "image_folder": {"kind": "image_folder", "path": str(tmp_path / "folder")},
        "fer2013_csv": {"kind": "fer2013_csv", "path": str(tmp_path / "fer2013.csv")},
        "npz": {"kind": "npz", "path": str(tmp_path / "faces.npz")},
    }
    loaded = {
        kind: load_source(data_spec(source, image_size=image_size, channels=channels), seed=0)
        for kind, source in sources.items()
    }
    reference = loaded["image_folder"].splits["train"]
    assert reference.images.shape == (14, image_size, image_size, channels)
    assert reference.labels.tolist() == np.repeat(np.arange(7), 2).tolist()
    for kind, data in loaded.items():
        assert data.class_names == list(FER_CLASSES), kind
        assert list(data.splits) == ["train"], kind
        train = data.splits["train"]
        assert train.images.dtype == np.uint8 and train.labels.dtype == np.int32, kind
        np.testing.assert_array_equal(train.images, reference.images, err_msg=kind)
        np.testing.assert_array_equal(train.labels, reference.labels, err_msg=kind)


def test_fer2013_csv_maps_usage_to_splits(tmp_path: Path) -> None:
    rows = fer2013_rows({"Training": 14, "PublicTest": 7, "PrivateTest": 3, "Extra": 2})
    path = write_csv(tmp_path / "fer2013.csv", ["emotion", "pixels", "Usage"], rows)
    data = load_source(data_spec({"kind": "fer2013_csv", "path": str(path)}), seed=0)
    assert {name: len(split) for name, split in data.splits.items()} == {
        "train": 14,
        "val": 7,
        "test": 3,
    }
    assert data.dropped == {"unlisted_split": 2}
    assert data.splits["val"].ids[0] == "row:16"  # header is row 1, 14 train rows follow
    # emotion 6 (FER's neutral) is class 4 of the sorted names; 4 (sad) is class 5.
    assert data.splits["train"].labels[:7].tolist() == [0, 1, 2, 3, 5, 6, 4]
    np.testing.assert_array_equal(
        data.splits["train"].images[0, ..., 0],
        np.array(rows[0][1].split(), dtype=np.uint8).reshape(48, 48),
    )


def test_fer2013_csv_custom_usage_splits_and_classes(tmp_path: Path) -> None:
    rows = fer2013_rows({"Training": 7, "PublicTest": 3, "PrivateTest": 2})
    path = write_csv(tmp_path / "fer2013.csv", ["emotion", "pixels", "Usage"], rows)
    source = {
        "kind": "fer2013_csv",
        "path": str(path),
        "usage_splits": {"Training": "train", "PublicTest": "test", "PrivateTest": "test"},
    }
    classes = list(FER2013_CSV_LABELS)  # FER's own order: labels become the raw emotions
    data = load_source(data_spec(source, classes=classes, image_size=32, channels=3), seed=0)
    assert list(data.splits) == ["train", "test"] and len(data.splits["test"]) == 5
    assert data.class_names == classes
    assert data.splits["train"].labels.tolist() == list(range(7))
    assert data.splits["test"].images.shape == (5, 32, 32, 3)


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        ("1 2 3", "3 pixel values, expected 2304"),
        (" ".join(["7"] * 2303 + ["x"]), "whole numbers"),
        (" ".join(["7"] * 2303 + ["1.5"]), "whole numbers"),
        (" ".join(["7"] * 2303 + ["256"]), "pixel value 256 is outside 0-255"),
        (" ".join(["-1"] + ["7"] * 2303), "pixel value -1"),
    ],
)
def test_fer2013_csv_malformed_pixels_name_file_and_row(
    tmp_path: Path, pixels: str, message: str
) -> None:
    rows = fer2013_rows({"Training": 7})
    rows[2][1] = pixels
    path = write_csv(tmp_path / "fer2013.csv", ["emotion", "pixels", "Usage"], rows)
    with pytest.raises(DataError, match=rf"fer2013\.csv row 4: .*{message}"):
        load_source(data_spec({"kind": "fer2013_csv", "path": str(path)}), seed=0)


def test_fer2013_csv_bad_emotion_short_row_missing_column_and_file(tmp_path: Path) -> None:
    rows = fer2013_rows({"Training": 7})
    rows[5][0] = 7
    path = write_csv(tmp_path / "fer2013.csv", ["emotion", "pixels", "Usage"], rows)
    spec = data_spec({"kind": "fer2013_csv", "path": str(path)})
    with pytest.raises(DataError, match=r"row 7: emotion '7' .*label_names \(0-6\)"):
        load_source(spec, seed=0)
    write_csv(path, ["emotion", "pixels", "Usage"], [*rows[:3], [0, "1 2 3"]])
    with pytest.raises(DataError, match="row 5: fewer cells than the header"):
        load_source(spec, seed=0)
    write_csv(path, ["emotion", "pixel", "Usage"], rows)
    with pytest.raises(DataError, match=r"fer2013\.csv: missing column\(s\) \['pixels'\]"):
        load_source(spec, seed=0)
    write_csv(path, ["emotion", "pixels", "Usage"], fer2013_rows({"PublicTest": 7}))
    with pytest.raises(DataError, match="no train rows"):
        load_source(spec, seed=0)
    path.unlink()
    with pytest.raises(DataError, match=r"data\.source\.path: .*fer2013\.csv not found"):
        load_source(spec, seed=0)


def test_soft_label_csv_normalises_votes_and_drops_rows_without_votes(tmp_path: Path) -> None:
    image = np.arange(16 * 16, dtype=np.uint8).reshape(16, 16)
    rows = [
        ["Training", pixel_string(image), 3, 1, 0],
        ["Training", pixel_string(image[::-1]), 0.2, 0.0, 0.8],
        ["Training", pixel_string(image), 0, 0, 0],  # no votes: dropped and counted
        ["PublicTest", pixel_string(image.T), 0, 5, 5],
        ["Unused", pixel_string(image), 1, 1, 1],  # split not in split_values
    ]
    path = write_csv(tmp_path / "votes.csv", ["Usage", "pixels", "a", "b", "c"], rows)
    source = {
        "kind": "soft_label_csv",
        "path": str(path),
        "pixels_column": "pixels",
        "class_columns": ["a", "b", "c"],
        "split_column": "Usage",
    }
    data = load_source(data_spec(source, classes=["x", "y", "z"], image_size=32), seed=0)
    assert data.class_names == ["x", "y", "z"]
    assert data.dropped == {"no_votes": 1, "unlisted_split": 1}
    train = data.splits["train"]
    assert train.labels.dtype == np.float32 and train.is_soft
    np.testing.assert_allclose(train.labels, [[0.75, 0.25, 0.0], [0.2, 0.0, 0.8]], atol=1e-7)
    np.testing.assert_allclose(data.splits["val"].labels, [[0.0, 0.5, 0.5]])
    assert train.ids == ["row:2", "row:3"] and data.splits["val"].ids == ["row:5"]
    expected = resize_pixels(np.stack([image, image[::-1]]), 32, 1)
    np.testing.assert_array_equal(train.images, expected)


def test_soft_label_csv_errors_name_the_row_or_key(tmp_path: Path) -> None:
    rows = [["1 2 3 4", 1, 0], ["1 2 3 4", 2, -1]]
    path = write_csv(tmp_path / "votes.csv", ["pixels", "a", "b"], rows)
    source = {"kind": "soft_label_csv", "path": str(path), "pixels_column": "pixels"}
    with pytest.raises(DataError, match=r"class_columns: set it \(or data\.classes\)"):
        load_source(data_spec(source), seed=0)
    with pytest.raises(DataError, match=r"votes\.csv row 3: votes must be finite and >= 0"):
        load_source(data_spec({**source, "class_columns": ["a", "b"]}), seed=0)
    with pytest.raises(DataError, match=r"missing column\(s\) \['c'\]"):
        load_source(data_spec(source, classes=["a", "c"]), seed=0)
    write_csv(path, ["pixels", "a", "b"], [["1 2 3 4", 1, 0], ["1 2 3 4 5 6 7 8 9", 2, 1]])
    with pytest.raises(DataError, match="row 3: 9 pixel values, expected 4"):
        load_source(data_spec(source, classes=["a", "b"]), seed=0)


def write_fer_plus(folder: Path) -> Path:
    """A `fer2013new.csv` next to its PNGs: 8 faces, one corrupt file, one non-face row."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        name = f"fer{i:07d}.png"
        write_png(folder / name, rng.integers(0, 256, (48, 48), dtype=np.uint8))
        votes = [0] * len(FER_PLUS_COLUMNS)
        votes[i % len(FER_PLUS_COLUMNS)] = 6
        votes[(i + 1) % len(FER_PLUS_COLUMNS)] = 4
        rows.append(["Training" if i < 6 else "PrivateTest", name, *votes, 0, 0, 0])
    (folder / "fer0000003.png").write_bytes(b"not a png")
    rows.append(["Training", "", *[0] * len(FER_PLUS_COLUMNS), 0, 0, 10])  # FER+ "not a face"
    return write_csv(folder / "fer2013new.csv", FER_PLUS_HEADER, rows)


@pytest.mark.parametrize("on_error", ["skip", "raise"])
def test_soft_label_csv_fer_plus_images_with_a_corrupt_file(tmp_path: Path, on_error: str) -> None:
    source = {
        "kind": "soft_label_csv",
        "path": str(write_fer_plus(tmp_path)),
        "image_column": "Image name",
        "class_columns": FER_PLUS_COLUMNS,
        "split_column": "Usage",
    }
    spec = data_spec(source, on_error=on_error)
    if on_error == "raise":
        with pytest.raises(DataError, match=r"Cannot decode image .*fer0000003\.png"):
            load_source(spec, seed=0)
        return
    data = load_source(spec, seed=0)
    assert data.class_names == FER_PLUS_COLUMNS
    assert [Path(error["path"]).name for error in data.errors] == ["fer0000003.png"]
    assert data.dropped == {"no_votes": 1}
    train, test = data.splits["train"], data.splits["test"]
    assert train.ids == ["row:2", "row:3", "row:4", "row:6", "row:7"]
    assert len(test) == 2 and train.images.shape == (5, 48, 48, 1)
    np.testing.assert_allclose(train.labels[0], [0.6, 0.4, 0, 0, 0, 0, 0], atol=1e-7)
    np.testing.assert_allclose(train.labels.sum(axis=1), 1.0, atol=1e-6)
    expected = tf.io.decode_png((tmp_path / "fer0000004.png").read_bytes()).numpy()
    np.testing.assert_array_equal(train.images[3], expected)
    with (tmp_path / "fer2013new.csv").open("a", newline="") as handle:
        csv.writer(handle).writerow(["Training", "gone.png", 1, *[0] * 9])
    data = load_source(spec, seed=0)
    assert [error["reason"] for error in data.errors][-1] == "file not found"
    assert len(data.splits["train"]) == 5


def test_npz_distributions_splits_and_class_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (4, 24, 24, 3), dtype=np.uint8)
    y = np.array([[2, 0, 2], [0, 0, 0], [0.5, 0.5, 0], [0, 0, 1]], np.float32)
    np.savez(
        tmp_path / "votes.npz",
        x=x,
        y=y,
        x_val=x[:2, ..., :1],
        y_val=y[[0, 2]],
        class_names=np.array(["sad", "happy", "neutral"]),
    )
    spec = data_spec(
        {"kind": "npz", "path": str(tmp_path / "votes.npz")},
        classes=["happy", "neutral", "sad"],
        image_size=24,
        channels=3,
    )
    data = load_source(spec, seed=0)
    assert data.class_names == ["happy", "neutral", "sad"]
    assert data.dropped == {"no_votes": 1}
    train = data.splits["train"]
    assert train.ids == ["x:0", "x:2", "x:3"] and train.labels.dtype == np.float32
    # columns follow data.classes: file column "sad" moves to the last place
    np.testing.assert_allclose(train.labels, [[0, 0.5, 0.5], [0.5, 0, 0.5], [0, 1, 0]])
    np.testing.assert_array_equal(train.images, x[[0, 2, 3]])
    assert data.splits["val"].images.shape == (2, 24, 24, 3)  # grey x_val made RGB


def test_npz_label_and_array_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "faces.npz"
    x = np.zeros((3, 8, 8), np.uint8)
    spec = data_spec({"kind": "npz", "path": str(path)})
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"y": np.array([0, 1, 7]), "class_names": np.array(FER_CLASSES)},
            r"faces\.npz: y holds labels outside 0-6",
        ),
        ({"y": np.array([0, 1, 2]), "class_names": np.array(["a", "b"])}, "outside 0-1"),
        ({"y": np.array([0, 1, 2])}, r"no class_names .* 3 classes: set data\.classes"),
        ({"y": np.array([0.0, 1.0, 2.0])}, r"y must be \(N,\) integer labels"),
        ({"y": np.array([0, 1])}, "x holds 3 images but 2 labels"),
        ({"y": np.array([0, 1, 6]), "x_val": x}, r"missing array\(s\) \['x_val/y_val'\]"),
        ({"y": np.array([0, 1, 6]), "x": x.astype(np.float32)}, "x must be uint8"),
    ]
    for arrays, message in cases:
        np.savez(path, **{"x": x, **arrays})
        with pytest.raises(DataError, match=message):
            load_source(spec, seed=0)
    path.write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"not an \.npz archive"):
        load_source(spec, seed=0)


TFDS_CLASSES = list(FER2013_CSV_LABELS)  # FER's label order, unsorted on purpose


def prepare_tiny_tfds(data_dir: Path) -> dict[str, np.ndarray]:
    """Prepare a 21 + 7 image TFDS dataset offline; returns the train images by label."""
    import tensorflow_datasets as tfds

    rng = np.random.default_rng(0)
    images = {
        split: rng.integers(0, 256, (n, 24, 24, 1), np.uint8)
        for split, n in (("train", 21), ("test", 7))
    }

    class EmotionkitTinyFaces(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """Seven-class 24x24 faces; the loader finds it from its files alone."""

        VERSION = tfds.core.Version("1.0.0")
        # tfds 4.9.10 looks up code_path with importlib_resources, which etils >= 1.15 no
        # longer installs; None skips that lookup (there is no checksum file to find).
        code_path = None

        def _info(self) -> Any:
            features = {
                "image": tfds.features.Image(shape=(24, 24, 1)),
                "label": tfds.features.ClassLabel(names=TFDS_CLASSES),
            }
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict(features)
            )

        def _split_generators(self, dl_manager: Any) -> Any:
            return {split: self._generate_examples(split) for split in images}

        def _generate_examples(self, split: str) -> Any:
            for i, image in enumerate(images[split]):
                yield i, {"image": image, "label": i % 7}

    EmotionkitTinyFaces(data_dir=str(data_dir)).download_and_prepare(
        download_dir=str(data_dir / "downloads")
    )
    return images


def test_tfds_reads_a_prepared_dataset_offline(tmp_path: Path) -> None:
    images = prepare_tiny_tfds(tmp_path)
    source = {
        "kind": "tfds",
        "name": "emotionkit_tiny_faces",
        "data_dir": str(tmp_path),
        "splits": {"train": "train[:14]", "val": "train[14:]", "test": "test"},
    }
    data = load_source(data_spec(source, image_size=32), seed=0)
    assert data.class_names == TFDS_CLASSES
    assert {name: len(split) for name, split in data.splits.items()} == {
        "train": 14,
        "val": 7,
        "test": 7,
    }
    assert data.splits["train"].ids[0].startswith("emotionkit_tiny_faces-train.tfrecord")
    # TFDS shuffles examples when preparing: compare the multiset of (label, pixels).
    loaded = np.concatenate([data.splits["train"].images, data.splits["val"].images])
    labels = np.concatenate([data.splits["train"].labels, data.splits["val"].labels])
    expected = resize_pixels(images["train"], 32, 1)
    expected_labels = np.arange(21) % 7
    assert sorted(zip(labels.tolist(), map(bytes, loaded), strict=True)) == sorted(
        zip(expected_labels.tolist(), map(bytes, expected), strict=True)
    )
    reordered = load_source(data_spec(source, classes=sorted(TFDS_CLASSES)), seed=0)
    assert reordered.class_names == sorted(TFDS_CLASSES)
    to_sorted = np.array([sorted(TFDS_CLASSES).index(name) for name in TFDS_CLASSES])
    np.testing.assert_array_equal(
        reordered.splits["test"].labels, to_sorted[data.splits["test"].labels]
    )


@pytest.mark.parametrize("name", ["emotionkit_tiny_faces", "mnist"])
def test_tfds_not_prepared_says_how_to_prepare(tmp_path: Path, name: str) -> None:
    spec = data_spec({"kind": "tfds", "name": name, "data_dir": str(tmp_path)})
    message = rf"{name}' is not prepared in {re.escape(str(tmp_path))}.*tfds build {name}"
    with pytest.raises(DataError, match=message):
        load_source(spec, seed=0)
    assert not any(tmp_path.iterdir())  # nothing was downloaded
