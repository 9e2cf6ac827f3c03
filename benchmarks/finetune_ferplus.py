"""Fine-tuning the bundled model against training from scratch, on a few hundred real faces.

Runs the packaged `finetune` recipe and the same recipe from scratch (no weights, nothing
frozen, the same epochs) on the folder `ferplus_holdout_folder.py` writes: ~300 FER+-labelled
faces the bundled model never trained on, scored on the ~2,400 others (its `test/`). Two
tasks: FER's 7 classes (FER+ names mapped with `data.class_map`, contempt left out) and a
merged binary task, happy against everything else. The bundled model as it ships (no
training) is scored on the same test faces. Every run is the real CLI.

    python benchmarks/ferplus_holdout_folder.py --data ../shared/data --out /tmp/ferplus_holdout
    python benchmarks/finetune_ferplus.py /tmp/ferplus_holdout \
        --out benchmarks/results/finetune_ferplus_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

FER_FROM_FERPLUS = {
    "angry": ["anger"],
    "disgust": ["disgust"],
    "fear": ["fear"],
    "happy": ["happiness"],
    "neutral": ["neutral"],
    "sad": ["sadness"],
    "surprise": ["surprise"],
}
HAPPY_OR_NOT = {
    "happy": ["happiness"],
    "not_happy": ["neutral", "surprise", "sadness", "anger", "disgust", "fear", "contempt"],
}
TASKS = {"fer7": FER_FROM_FERPLUS, "happy_vs_rest": HAPPY_OR_NOT}
FROM_SCRATCH = [
    "model.weights=null",
    "model.freeze=none",
    "model.freeze_batchnorm=false",
    "train.unfreeze_at_epoch=null",
    "train.backbone_lr_scale=1.0",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    results: dict[str, Any] = {
        "folder": json.loads((args.folder / "summary.json").read_text()),
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        "tasks": {},
    }
    with tempfile.TemporaryDirectory() as runs:
        for task, class_map in TASKS.items():
            rows = {"bundled_as_shipped": score_bundled(args.folder, class_map)}
            for start, extra in (("finetune", []), ("scratch", FROM_SCRATCH)):
                rows[start] = train(args.folder, class_map, extra, Path(runs) / task / start)
                print(task, start, rows[start], flush=True)
            results["tasks"][task] = {"class_map": class_map, **rows}
    args.out.write_text(json.dumps(results, indent=2) + "\n")


def train(folder: Path, class_map: dict[str, list[str]], extra: list[str], runs: Path) -> dict:
    """One `emotionkit train finetune` run: its test scores and wall time."""
    mapping = "{" + ", ".join(f"{k}: [{', '.join(v)}]" for k, v in class_map.items()) + "}"
    command = ["emotionkit", "train", "finetune", f"data.source.path={folder}",
               f"data.class_map={mapping}", *extra, "--runs-dir", str(runs)]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    (run_dir,) = runs.glob("*/*")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "command": " ".join([*command[:4], f"'{command[4]}'", *command[5:-2]]),
        "test_accuracy": round(metrics["test"]["accuracy"], 4),
        "test_macro_f1": round(metrics["test"]["macro_f1"], 4),
        "test_images": metrics["test"]["num_images"],
        "best_epoch": metrics["best_epoch"],
        "wall_seconds": round(wall, 1),
    }


def score_bundled(folder: Path, class_map: dict[str, list[str]]) -> dict:
    """The bundled model with no training: its 7 classes folded into the task's classes."""
    import cv2
    import onnxruntime as ort

    from emotionkit.bundled import bundled_model_path, list_bundled
    from emotionkit.evaluate.metrics import classification_metrics

    bundled_classes = list_bundled()[0]["classes"]
    task_of_fer = {fer: task for task, members in class_map.items() for fer in _fer_names(members)}
    session = ort.InferenceSession(str(bundled_model_path()))
    truth, scores_per_image = [], []
    for task_index, members in enumerate(class_map.values()):
        for member in members:
            files = sorted((folder / "test" / member).glob("*.png"))
            if not files:
                continue
            images = np.stack([cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files])
            pixels = images[..., None].astype(np.float32)
            probabilities = session.run(["probabilities"], {"image": pixels})[0]
            task_probabilities = np.zeros((len(files), len(class_map)))
            for fer_index, fer in enumerate(bundled_classes):
                column = list(class_map).index(task_of_fer[fer])
                task_probabilities[:, column] += probabilities[:, fer_index]
            truth.extend([task_index] * len(files))
            scores_per_image.append(task_probabilities)
    scores = classification_metrics(
        np.asarray(truth), np.concatenate(scores_per_image), list(class_map)
    )
    return {
        "test_accuracy": round(scores["accuracy"], 4),
        "test_macro_f1": round(scores["macro_f1"], 4),
        "test_images": len(truth),
    }


def _fer_names(ferplus_names: list[str]) -> list[str]:
    """FER2013 class names of FER+ names (contempt has none)."""
    inverse = {members[0]: fer for fer, members in FER_FROM_FERPLUS.items()}
    return [inverse[name] for name in ferplus_names if name in inverse]


if __name__ == "__main__":
    main()
