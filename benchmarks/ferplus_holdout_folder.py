"""A small real fine-tuning set the bundled model never trained on: FER+ labels on held-out faces.

The bundled `fer2013-cpu` model trained on FER2013's train folder less the validation split
its recipe carved (seed 42). Only those 2,872 validation faces are unseen by it, so the
fine-tuning measurement (docs/finetune.md) draws both its training folder and its test
folder from them, labelled by FER+'s crowd votes instead of FER2013's original labels:

1. Re-carve the bundled model's validation split and check its data fingerprint against the
   model's metadata (the same faces, byte for byte).
2. Find each of those faces in `ferplus/train/` by pixels (the two copies differ by about
   1.5 grey levels: nearest neighbour on 16x16 means, then checked at full resolution).
3. Label it by FER+'s majority vote over the 8 emotions; faces whose majority is `unknown`
   or `NF`, or whose top vote is tied, are dropped (the FER+ protocol).
4. Write `OUT/train/<class>/` (`--train` faces, stratified, seeded) and `OUT/test/<class>/`
   (all the others), with FER+'s class names.

    python benchmarks/ferplus_holdout_folder.py --data ../shared/data --out /tmp/ferplus_holdout
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

EMOTIONS = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="holds fer2013/ and ferplus/")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    held_out = bundled_validation_faces(args.data / "fer2013")
    votes, ferplus_images = read_ferplus(args.data / "ferplus")
    match, gap = nearest_faces(held_out.images, ferplus_images)
    labels = majority_labels(votes[match])
    keep = np.flatnonzero((labels >= 0) & (gap <= 6.0))
    rng = np.random.default_rng(args.seed)
    train = stratified_pick(labels[keep], args.train, rng)
    write_folder(args.out, "train", held_out.images[keep[train]], labels[keep[train]])
    test = np.setdiff1d(np.arange(len(keep)), train)
    write_folder(args.out, "test", held_out.images[keep[test]], labels[keep[test]])
    summary = {
        "held_out_faces": len(held_out.images),
        "matched_mean_abs_gap": round(float(np.mean(gap)), 3),
        "kept": len(keep),
        "train": len(train),
        "test": len(test),
        "train_counts": np.bincount(labels[keep[train]], minlength=8).tolist(),
        "test_counts": np.bincount(labels[keep[test]], minlength=8).tolist(),
        "classes": EMOTIONS,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


def bundled_validation_faces(fer2013: Path) -> Any:
    """The validation split the bundled model's recipe carved, checked by fingerprint."""
    from emotionkit.bundled import list_bundled
    from emotionkit.data import load_data
    from emotionkit.data.image_folder import ImageFolderSource
    from emotionkit.data.spec import DataSpec

    spec = DataSpec(source=ImageFolderSource(path=fer2013), batch_size=128)
    data = load_data(spec, seed=42)
    expected = next(row for row in list_bundled() if row["name"] == "fer2013-cpu")
    if data.fingerprint != expected["data_fingerprint"]:
        raise SystemExit(f"fingerprint {data.fingerprint} != {expected['data_fingerprint']}")
    return data.splits["val"]


def read_ferplus(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Votes (N, 10) and images (N, 48, 48) of FER+'s train.csv."""
    votes, images = [], []
    with open(root / "train.csv", newline="") as file:
        for row in csv.DictReader(file):
            votes.append([int(row[name]) for name in [*EMOTIONS, "unknown", "NF"]])
            images.append(cv2.imread(str(root / row["Image name"]), cv2.IMREAD_GRAYSCALE))
    return np.asarray(votes), np.stack(images)


def nearest_faces(queries: np.ndarray, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each query's nearest pool image, and the mean absolute gap to it (0-255)."""
    small = lambda x: x.reshape(len(x), 16, 3, 16, 3).mean(axis=(2, 4)).reshape(len(x), -1)  # noqa: E731
    q, p = small(queries[..., 0].astype(np.float32)), small(pool.astype(np.float32))
    distances = (q**2).sum(1)[:, None] - 2 * q @ p.T + (p**2).sum(1)[None, :]
    match = distances.argmin(axis=1)
    gap = np.abs(queries[..., 0].astype(np.float32) - pool[match]).mean(axis=(1, 2))
    return match, gap


def majority_labels(votes: np.ndarray) -> np.ndarray:
    """The emotion with the most votes; -1 where unknown/NF lead or the top vote is tied."""
    top = votes.argmax(axis=1)
    emotion_votes = votes[:, : len(EMOTIONS)]
    best = emotion_votes.max(axis=1)
    tied = (emotion_votes == best[:, None]).sum(axis=1) > 1
    return np.where((top < len(EMOTIONS)) & ~tied, emotion_votes.argmax(axis=1), -1)


def stratified_pick(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` indices in the classes' proportions (at least 2 of each class present)."""
    picked = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        share = max(2, round(count * len(members) / len(labels)))
        picked.extend(rng.choice(members, size=min(share, len(members)), replace=False))
    return np.sort(np.asarray(picked))


def write_folder(out: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = out / split / EMOTIONS[label]
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{split}_{index:05d}.png"), image)


if __name__ == "__main__":
    main()
