"""Epoch time of a recipe with `data.augment_on: host` against `device`, side by side.

Both placements train the same recipe in one process, one after the other, on the same
data, for `--epochs` epochs; the figure is the last epoch's wall time (the first one
includes tracing and compiling). Export is skipped. On CPU this is what `augment_on: auto`
is chosen by (docs/benchmarks.md).

    python benchmarks/augment_placement.py recipes/fer2013_cpu.yaml \
        data.source.path=../shared/data/fer2013 [--epochs 2] [--out results/FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/augment_placement_cpu.json")
    )
    args = parser.parse_args()
    results = {"load_average_at_start": os.getloadavg()[0], "recipe": args.recipe,
               "overrides": args.overrides, "epochs": args.epochs, "placements": {}}  # fmt: skip
    for placement in ("host", "device"):
        results["placements"][placement] = time_placement(args, placement)
        print(placement, results["placements"][placement], flush=True)
    host, device = (results["placements"][p]["last_epoch_s"] for p in ("host", "device"))
    results["device_over_host_time"] = round(device / host, 3)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"device / host epoch time: {results['device_over_host_time']}")


def time_placement(args: argparse.Namespace, placement: str) -> dict[str, Any]:
    import keras

    from emotionkit.recipe import load_recipe
    from emotionkit.workflow import train

    overrides = [*args.overrides, f"train.epochs={args.epochs}", "export.formats=[]",
                 f"data.augment_on={placement}"]  # fmt: skip
    recipe = load_recipe(args.recipe, overrides)
    epoch_seconds: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            epoch_seconds.append(time.perf_counter() - self.started)

    with tempfile.TemporaryDirectory() as runs:
        result = train(recipe, runs_dir=runs, callbacks=[EpochTimer()])
        train_images = json.loads((result.run_dir / "manifest.json").read_text())["data"]
    size = train_images["splits"]["train"]["size"]
    return {
        "epoch_s": [round(s, 1) for s in epoch_seconds],
        "last_epoch_s": round(epoch_seconds[-1], 1),
        "images_per_s": round(size / epoch_seconds[-1]),
        "val_accuracy_last": result.metrics["val"]["accuracy"],
    }


if __name__ == "__main__":
    main()
