"""Which training target learns FER+ best: the vote distribution, the majority vote, or
multi-label votes, side by side on the same short schedule.

Each variant is a real `emotionkit train` run of one recipe (default `ferplus_cpu`) with
`train.epochs` cut short and no export. Every run's best checkpoint is then scored the same
way, on the same carved validation faces against their votes: majority-vote accuracy (the
FER+ protocol) and, from the softmax (a multi-label model's sigmoids, normalised), the mean
KL(votes || predicted) and total variation. Cross-entropy and KL on the vote distribution
differ by the votes' entropy, a constant, so they train identically: only one is run.

    python benchmarks/ferplus_targets.py data.source.path=../shared/data/ferplus/train.csv \
        --epochs 6 --out benchmarks/results/ferplus_targets_cpu.json
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

VARIANTS = {
    "distribution_cross_entropy": ["data.targets=distribution", "train.loss.name=cross_entropy"],
    "majority_one_hot": [
        "data.targets=single",
        "train.loss.name=cross_entropy",
        "train.loss.label_smoothing=0.1",
    ],
    "multi_label_bce": ["data.targets=multi_label", "train.loss.name=bce"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--recipe", default="ferplus_cpu")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS), default=list(VARIANTS),
                        help="run these variants; others already in --out are kept")  # fmt: skip
    parser.add_argument("--runs-dir", type=Path, help="keep the runs here (default: deleted)")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "recipe": args.recipe,
        "overrides": args.overrides,
        "epochs": args.epochs,
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        "variants": json.loads(args.out.read_text())["variants"] if args.out.is_file() else {},
    }
    with tempfile.TemporaryDirectory() as scratch:
        runs = args.runs_dir or Path(scratch)
        for name in args.only:
            overrides = VARIANTS[name]
            started = time.perf_counter()
            command = ["emotionkit", "train", args.recipe, *args.overrides, *overrides,
                       f"train.epochs={args.epochs}", "export.formats=[]",
                       "--runs-dir", str(Path(runs) / name)]  # fmt: skip
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            (run_dir,) = (Path(runs) / name).glob("*/*")
            scores = score_against_votes(run_dir, multi_label=name.startswith("multi"))
            scores["wall_seconds"] = round(time.perf_counter() - started, 1)
            results["variants"][name] = {"overrides": overrides, **scores}
            print(name, scores, flush=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")  # after every variant


def score_against_votes(run_dir: Path, multi_label: bool) -> dict[str, Any]:
    """The run's best checkpoint on its own validation faces, against their vote shares."""
    import keras

    from emotionkit.data import load_data
    from emotionkit.evaluate.metrics import distribution_distances, softmax
    from emotionkit.recipe import load_recipe

    # the votes as distributions, whatever the run trained on (the loss does not matter here)
    votes_as_loaded = ["data.targets=distribution", "train.loss.name=cross_entropy"]
    recipe = load_recipe(run_dir / "recipe.yaml", votes_as_loaded)
    data = load_data(recipe.data, recipe.seed, split_file=run_dir / "split.json")
    val = data.splits["val"]
    model = keras.saving.load_model(run_dir / "checkpoints" / "best.keras", compile=False)
    logits = np.asarray(model.predict(val.images, batch_size=256, verbose=0), dtype=np.float64)
    if multi_label:
        sigmoid = 1 / (1 + np.exp(-logits))
        predicted = sigmoid / sigmoid.sum(axis=1, keepdims=True)
    else:
        predicted = softmax(logits)
    votes = val.labels.astype(np.float64)
    distances = distribution_distances(votes, np.clip(predicted, 1e-12, 1.0))
    return {
        "val_images": len(votes),
        "best_epoch": json.loads((run_dir / "metrics.json").read_text())["best_epoch"],
        "majority_vote_accuracy": round(float((logits.argmax(1) == votes.argmax(1)).mean()), 4),
        "kl": round(distances["kl"], 4),
        "tvd": round(distances["tvd"], 4),
    }


if __name__ == "__main__":
    main()
