"""GPU figures for the FER2013 recipes: epoch time, images/s, validation accuracy and macro-F1.

    python benchmarks/fer2013_gpu.py recipes/fer2013_resnet18.yaml \
        --pixels .devcarry/fer2013_x.u8.xz --labels .devcarry/fer2013_y.npy

Runs the recipe's runtime (auto: JAX + mixed_bfloat16 + XLA on a GPU), model, optimizer,
schedule, loss, class weights and EMA through `keras.Model.fit`, on the FER2013
train split held in memory. It exists because the GPU machine we borrow has JAX but no
TensorFlow (so no tf.data): the recipe's augmentations run through JAX stand-ins
(`benchmarks/jax_augment.py`, same distributions, one jitted call per epoch on the GPU), or
are skipped with `--no-augment`. The validation split is the recipe's (stratified,
duplicate-aware, seeded), scored with the same metrics as `emotionkit train`.

The pixels file is the 28,709 training images (sorted by path) as raw 48x48 uint8 bytes, LZMA
compressed; labels are int8 in the folder-name class order.
"""

from __future__ import annotations

import argparse
import json
import lzma
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from emotionkit.data.pipeline import class_weights_from_counts, pixel_mean_std
from emotionkit.data.splits import content_hashes, stratified_split
from emotionkit.data.synthetic import FER_CLASSES
from emotionkit.recipe import Recipe, load_recipe
from emotionkit.runtime import configure_frameworks, resolve_runtime


def load_arrays(pixels: Path, labels: Path, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    raw = np.frombuffer(lzma.decompress(pixels.read_bytes()), dtype=np.uint8)
    return raw.reshape(-1, size, size, 1), np.load(labels).astype(np.int32)


def gpu_name() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "no nvidia-smi"


def train_and_score(
    recipe: Recipe, x: np.ndarray, y: np.ndarray, budget_s: float, augment: bool
) -> dict[str, Any]:

    from emotionkit.evaluate import classification_metrics
    from emotionkit.models import build_model
    from emotionkit.training import compile_model

    # the same duplicate-aware split as `emotionkit train` (exact copies stay on one side)
    train_idx, val_idx = stratified_split(
        y, recipe.data.val_split, recipe.seed, groups=content_hashes(x)
    )
    mean, std = pixel_mean_std(x[train_idx])
    model = build_model(
        recipe.model, image_size=48, channels=1, num_classes=7, pixel_mean=mean, pixel_std=std
    )
    batch = recipe.data.batch_size
    steps = len(train_idx) // batch
    counts = np.bincount(y[train_idx], minlength=7).tolist()
    compile_model(model, recipe.train, steps, jit_compile=True, class_counts=counts)
    weights = class_weights_from_counts(counts) if recipe.data.balance == "class_weights" else None
    timer = epoch_timer(budget_s)
    x_float = x.astype(np.float32)
    one_hot = np.eye(7, dtype=np.float32)[y]
    ops = recipe.data.augment if augment else []
    epochs = augmented_epochs(x_float[train_idx], one_hot[train_idx], ops, batch, recipe.seed)
    model.fit(
        epochs,
        epochs=recipe.train.epochs,
        class_weight=weights,
        callbacks=[timer],
        verbose=2,
    )
    logits = model.predict(x_float[val_idx], batch_size=1024, verbose=0)
    metrics = classification_metrics(y[val_idx], np.asarray(logits, np.float32), list(FER_CLASSES))
    steady = timer.epoch_seconds[1:] or timer.epoch_seconds
    return {
        "augment": [next(iter(op)) for op in ops] if ops else "none",
        "epochs_run": len(timer.epoch_seconds),
        "epochs_planned": recipe.train.epochs,
        "first_epoch_s": round(timer.epoch_seconds[0], 2),
        "median_epoch_s": round(float(np.median(steady)), 2),
        "train_images_per_s": round(steps * batch / float(np.median(steady))),
        "val_accuracy": round(metrics["accuracy"], 4),
        "val_macro_f1": round(metrics["macro_f1"], 4),
        "val_per_class_f1": {k: round(v["f1"], 3) for k, v in metrics["per_class"].items()},
        "parameters": int(model.count_params()),
    }


def augmented_epochs(
    images: np.ndarray, targets: np.ndarray, ops: list[Any], batch: int, seed: int
) -> Any:
    """A `keras.utils.PyDataset` of shuffled, augmented epochs made on the GPU in one call each.

    One `fit` call over it (not one per epoch): `fit` ends by copying the EMA weights into the
    model, which must happen once, at the end.
    """
    import jax
    import keras
    from jax_augment import build_epoch_augment  # benchmarks/, next to this script

    augment = build_epoch_augment(ops) if ops else None
    images_on_device, targets_on_device = jax.device_put(images), jax.device_put(targets)

    class AugmentedEpochs(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0
            self.on_epoch_end()

        def __len__(self) -> int:
            return -(-len(images) // batch)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            rows = slice(index * batch, (index + 1) * batch)
            return self.images[rows], self.targets[rows]

        def on_epoch_end(self) -> None:
            key = jax.random.fold_in(jax.random.key(seed), self.epoch)
            order = jax.random.permutation(jax.random.fold_in(key, 1_000_000), len(images))
            x, y = images_on_device[order], targets_on_device[order]
            if augment is not None:
                x, y = augment(key, x, y)
            self.images, self.targets = np.asarray(x), np.asarray(y)
            self.epoch += 1

    return AugmentedEpochs()


def epoch_timer(budget_s: float) -> Any:
    """Epoch wall times; stops training when the time budget is spent (recorded, not hidden).

    A factory rather than a module-level class: keras may only be imported after
    `configure_frameworks` has chosen the backend.
    """
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epoch_seconds: list[float] = []
            self.started = self.begin = 0.0

        def on_train_begin(self, logs: Any = None) -> None:
            self.begin = time.perf_counter()

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.epoch_seconds.append(time.perf_counter() - self.started)
            if time.perf_counter() - self.begin > budget_s:
                self.model.stop_training = True

    return EpochTimer()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--pixels", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, default=1e9, help="stop after this long")
    parser.add_argument(
        "--no-augment", action="store_true", help="skip data.augment (no-aug figures)"
    )
    parser.add_argument("--limit", type=int, help="random subset of this many images (smoke)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    recipe = load_recipe(args.recipe, args.overrides)
    choice = resolve_runtime(recipe.runtime)
    configure_frameworks(choice, recipe.seed)
    x, y = load_arrays(args.pixels, args.labels)
    if args.limit:
        keep = np.sort(np.random.default_rng(0).permutation(len(y))[: args.limit])
        x, y = x[keep], y[keep]
    started = time.perf_counter()
    result = {
        "recipe": str(args.recipe),
        "overrides": args.overrides,
        "gpu": gpu_name(),
        **{k: v for k, v in choice.as_dict().items() if k != "gpu_visible"},
        **train_and_score(recipe, x, y, args.budget_s, not args.no_augment),
        "wall_s": None,
    }
    result["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
