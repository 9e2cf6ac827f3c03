"""Duplicate-aware stratified split, saved splits, imbalance handling, bad files in a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emotionkit import load_recipe, train
from emotionkit.data import load_data
from emotionkit.data.pipeline import (
    balance_table,
    build_dataset,
    class_weights_from_counts,
    sampling_probabilities,
)
from emotionkit.data.spec import DataSpec
from emotionkit.data.splits import split_record, stratified_split
from emotionkit.data.types import SplitData
from emotionkit.errors import DataError
from tests.conftest import REPO
from tests.test_data import write_image_folder


def test_duplicates_stay_on_one_side_and_classes_keep_their_share() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), [300, 120, 45, 20])
    groups = [f"img{i}" for i in range(len(labels))]
    for _ in range(60):  # plant duplicate copies inside each class
        a, b = rng.choice(len(labels), 2, replace=False)
        if labels[a] == labels[b]:
            groups[b] = groups[a]
    train_idx, val_idx = stratified_split(labels, 0.2, seed=3, groups=groups)
    val_keys = {groups[i] for i in val_idx}
    assert not val_keys & {groups[i] for i in train_idx}
    for label, count in enumerate(np.bincount(labels)):
        assert abs(int(np.sum(labels[val_idx] == label)) - 0.2 * count) <= 1
    assert np.array_equal(val_idx, stratified_split(labels, 0.2, seed=3, groups=groups)[1])


def folder_spec(root: Path, **extra: object) -> DataSpec:
    return DataSpec(
        source={"kind": "image_folder", "path": root}, image_size=32, val_split=0.25, **extra
    )


def test_split_record_reloads_the_same_images(tmp_path: Path) -> None:
    write_image_folder(tmp_path, {"happy": 8, "sad": 8})
    data = load_data(folder_spec(tmp_path), seed=0)
    record = split_record(data.splits)
    (tmp_path / "split.json").write_text(json.dumps(record))
    again = load_data(folder_spec(tmp_path), seed=99, split_file=tmp_path / "split.json")
    assert again.splits["val"].ids == data.splits["val"].ids
    assert again.fingerprint == data.fingerprint
    record["val"]["ids"].append("train/happy/gone.png")
    (tmp_path / "split.json").write_text(json.dumps(record))
    with pytest.raises(DataError, match=r"gone\.png"):
        load_data(folder_spec(tmp_path), seed=0, split_file=tmp_path / "split.json")


SPLIT_HASH_SCRIPT = """
import sys
from emotionkit.data import load_data
from emotionkit.data.splits import split_record
from emotionkit.data.spec import DataSpec
spec = DataSpec(source={"kind": "image_folder", "path": sys.argv[1]}, image_size=32)
record = split_record(load_data(spec, seed=7).splits)
print(record["train"]["sha256"], record["val"]["sha256"])
"""


def test_carved_split_is_identical_across_runs_and_backends(tmp_path: Path) -> None:
    write_image_folder(tmp_path, {"a": 9, "b": 13, "c": 5})
    # The script once per backend in child processes, both at once, and its lines here, under
    # this session's backend, meanwhile: two processes per backend, two backends.
    children = [
        subprocess.Popen(
            [sys.executable, "-c", SPLIT_HASH_SCRIPT, str(tmp_path)],
            env={**os.environ, "KERAS_BACKEND": backend},
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for backend in ("tensorflow", "jax")
    ]
    spec = DataSpec(source={"kind": "image_folder", "path": tmp_path}, image_size=32)
    record = split_record(load_data(spec, seed=7).splits)
    hashes = {f"{record['train']['sha256']} {record['val']['sha256']}"}
    for child in children:
        stdout, _ = child.communicate(timeout=300)
        assert child.returncode == 0
        hashes.add(stdout.split("\n")[-2])
    assert len(hashes) == 1


def test_class_weights_inverse_frequency_and_effective_number() -> None:
    counts = [10, 30, 0]
    inverse = class_weights_from_counts(counts)
    assert inverse[0] == pytest.approx(3 * inverse[1]) and inverse[2] == 0
    assert (10 * inverse[0] + 30 * inverse[1]) / 40 == pytest.approx(1.0)
    beta = 0.9
    effective = class_weights_from_counts(counts, beta)
    raw = [(1 - beta) / (1 - beta**n) for n in counts[:2]]
    assert effective[0] / effective[1] == pytest.approx(raw[0] / raw[1])
    assert effective[0] / effective[1] < inverse[0] / inverse[1]


def test_oversampling_draws_the_target_distribution_deterministically() -> None:
    labels = np.repeat(np.arange(3), [200, 40, 10]).astype(np.int32)
    split = SplitData(np.zeros((250, 4, 4, 1), np.uint8), labels, [str(i) for i in range(250)])
    target = sampling_probabilities([200, 40, 10], exponent=0.0)
    assert target == pytest.approx([1 / 3] * 3)

    def drawn(seed: int) -> np.ndarray:
        dataset = build_dataset(
            split, 3, 50, training=True, seed=seed, class_sampling=target, epochs=range(12)
        )
        return np.concatenate([y.argmax(1) for _, y in dataset.as_numpy_iterator()])

    first = drawn(1)
    np.testing.assert_allclose(np.bincount(first) / len(first), target, atol=0.03)
    assert np.array_equal(first, drawn(1))
    spec = DataSpec(balance="oversample", oversample_exponent=0.5)
    table = balance_table(spec, [100, 25, 0])
    assert table is not None and table["sampling"] == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert balance_table(DataSpec(), [1, 2]) is None


def corrupt_folder(root: Path) -> None:
    write_image_folder(root, {"happy": 12, "sad": 12})
    (root / "train" / "happy" / "zero.png").write_bytes(b"")
    (root / "train" / "sad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")


@pytest.mark.slow
def test_bad_files_are_skipped_and_listed_or_raise(
    tmp_path: Path, tiny_overrides: list[str]
) -> None:
    corrupt_folder(tmp_path / "data")
    overrides = [
        *tiny_overrides,
        f"data.source={{kind: image_folder, path: {tmp_path / 'data'}}}",
        "data.balance=oversample",
        "train.epochs=1",
        "train.schedule.name=constant",
        "export.formats=[]",
    ]
    run = train(load_recipe(REPO / "recipes" / "quickstart.yaml", overrides), tmp_path / "runs")
    errors = json.loads((run.run_dir / "data_errors.json").read_text())
    assert sorted(Path(e["path"]).name for e in errors) == ["broken.png", "zero.png"]
    assert "0 bytes" in next(e["reason"] for e in errors if e["path"].endswith("zero.png"))
    manifest = json.loads((run.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["data"]["skipped_files"] == 2
    assert manifest["data"]["balance"]["sampling"] == pytest.approx([0.5, 0.5])
    split = json.loads((run.run_dir / "split.json").read_text())
    assert split["train"]["size"] + split["val"]["size"] == 24
    with pytest.raises(DataError, match=r"zero\.png|broken\.png"):
        load_data(folder_spec(tmp_path / "data", on_error="raise"), seed=0)


def test_decoded_images_are_cached_until_a_file_changes(tmp_path: Path) -> None:
    from emotionkit.data.decode import cached_decode, decode_images

    write_image_folder(tmp_path, {"happy": 3, "sad": 3})
    paths = sorted((tmp_path / "train").rglob("*.*"))
    fresh = decode_images(paths, 32, 1)
    first = cached_decode(paths, 32, 1)
    again = cached_decode(paths, 32, 1)
    np.testing.assert_array_equal(first[0], fresh[0])
    np.testing.assert_array_equal(again[0], fresh[0])
    paths[0].write_bytes(b"")  # an edited file invalidates the cache entry
    images, kept, errors = cached_decode(paths, 32, 1, on_error="skip")
    assert len(images) == 5 and 0 not in kept and "0 bytes" in errors[0]["reason"]
    with pytest.raises(DataError, match="0 bytes"):
        cached_decode(paths, 32, 1, on_error="raise")


def test_a_split_left_empty_by_duplicates_is_an_error_naming_the_field(tmp_path: Path) -> None:
    images = np.zeros((12, 48, 48), np.uint8)  # one image, twelve copies: one group
    np.savez(tmp_path / "copies.npz", x=images, y=np.arange(12) % 2)
    spec = DataSpec(source={"kind": "npz", "path": tmp_path / "copies.npz"}, classes=["a", "b"])
    with pytest.raises(DataError, match=r"data\.val_split .*empty validation split"):
        load_data(spec, seed=0)
