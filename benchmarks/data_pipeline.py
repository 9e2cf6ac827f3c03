"""Is the input pipeline ever the bottleneck? Decode and pipeline images/s, and step-time ratio.

    python benchmarks/data_pipeline.py                       # FER2013 + recipes/fer2013_cpu.yaml
    python benchmarks/data_pipeline.py --steps 20 --rounds 2 --data ../shared/data/fer2013

Measures, in one process on the same machine:
1. decode: FER2013 train PNGs -> uint8 arrays with `decode_images` (OpenCV, threads), uncached;
2. pipeline: one epoch of the recipe's train `tf.data` pipeline alone (shuffle, augment,
   one-hot, batch, prefetch), no model;
3. step time of the recipe's model in `keras.Model.fit` fed (a) by that real pipeline and
   (b) by pre-batched in-memory tensors (batches taken from the same pipeline beforehand),
   alternating a/b for `--rounds` rounds so machine noise hits both alike. The median step
   after warm-up is reported per round, and the median over rounds of the a/b ratio
   (goal: <= 1.05).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from emotionkit.runtime import apply_tensorflow_workarounds

apply_tensorflow_workarounds()

REPO = Path(__file__).resolve().parents[1]


class StepTimer:
    """A Keras callback recording wall time per train batch (built lazily: keras import)."""

    @staticmethod
    def create() -> Any:
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.times: list[float] = []
                self._start = 0.0

            def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
                self._start = time.perf_counter()

            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                self.times.append(time.perf_counter() - self._start)

        return _Timer()


def measure_decode(spec: Any) -> dict[str, float]:
    from emotionkit.data.decode import IMAGE_EXTENSIONS, decode_images

    root = Path(spec.source.path) / "train"
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    started = time.perf_counter()
    images, _, errors = decode_images(paths, spec.image_size, spec.channels, on_error="skip")
    seconds = time.perf_counter() - started
    return {"images": len(images), "errors": len(errors), "images_per_s": len(images) / seconds}


def measure_pipeline_alone(dataset: Any, batch_size: int) -> dict[str, float]:
    started = time.perf_counter()
    batches = sum(1 for _ in dataset)
    seconds = time.perf_counter() - started
    return {"batches": batches, "images_per_s": batches * batch_size / seconds}


def median_step(model: Any, dataset: Any, steps: int, warmup: int) -> float:
    timer = StepTimer.create()
    model.fit(
        dataset, epochs=1, steps_per_epoch=warmup + steps, callbacks=[timer], shuffle=False,
        verbose=0,
    )  # fmt: skip
    return statistics.median(timer.times[warmup:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "fer2013_cpu.yaml"))
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "fer2013"))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps (tracing, XLA)")
    parser.add_argument("--rounds", type=int, default=5, help="a/b alternations")
    args = parser.parse_args()

    from emotionkit.recipe import load_recipe
    from emotionkit.runtime import configure_frameworks, resolve_runtime

    recipe = load_recipe(args.recipe, [f"data.source.path={args.data}", "data.cache=false"])
    choice = resolve_runtime(recipe.runtime)
    configure_frameworks(choice, recipe.seed)
    spec = recipe.data
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"backend {choice.backend}, {choice.precision}")  # fmt: skip

    decode = measure_decode(spec)
    print(f"decode: {decode['images']} images at {decode['images_per_s']:.0f} images/s")

    import tensorflow as tf

    from emotionkit.data import load_data
    from emotionkit.data.pipeline import build_dataset, pixel_mean_std
    from emotionkit.models import build_model
    from emotionkit.training import compile_model

    data = load_data(spec, recipe.seed)
    train = data.splits["train"]

    def real_pipeline() -> Any:
        return build_dataset(
            train, data.num_classes, spec.batch_size, training=True, seed=recipe.seed,
            augment=spec.augment, epochs=range(2),
        )  # fmt: skip

    alone = measure_pipeline_alone(real_pipeline().take(len(train) // spec.batch_size),
                                   spec.batch_size)  # fmt: skip
    print(f"pipeline alone (shuffle+augment+batch): {alone['images_per_s']:.0f} images/s")

    batches = list(real_pipeline().take(args.warmup + args.steps))
    images = tf.stack([x for x, _ in batches])
    targets = tf.stack([y for _, y in batches])
    in_memory = tf.data.Dataset.from_tensor_slices((images, targets)).repeat()

    mean, std = pixel_mean_std(train.images)
    model = build_model(recipe.model, image_size=spec.image_size, channels=spec.channels,
                        num_classes=data.num_classes, pixel_mean=mean, pixel_std=std)  # fmt: skip
    steps_per_epoch = len(train) // spec.batch_size
    compile_model(model, recipe.train, steps_per_epoch, choice.jit_compile)
    real_times, memory_times = [], []
    for _ in range(args.rounds):
        real_times.append(median_step(model, real_pipeline(), args.steps, args.warmup))
        memory_times.append(median_step(model, in_memory, args.steps, args.warmup))
    real, memory = statistics.median(real_times), statistics.median(memory_times)
    # Each round measures a then b back to back; the median of per-round ratios discounts
    # a burst of load from another process that hits only some rounds.
    ratio = statistics.median(a / b for a, b in zip(real_times, memory_times, strict=True))
    print(f"step time, real pipeline: {real * 1000:.0f} ms ({spec.batch_size / real:.0f} img/s)")
    print(
        f"step time, in-memory:     {memory * 1000:.0f} ms ({spec.batch_size / memory:.0f} img/s)"
    )
    print(f"ratio real / in-memory: {ratio:.3f} (goal <= 1.05)")
    result = {
        "recipe": args.recipe, "backend": choice.backend, "cores": os.cpu_count(),
        "decode": decode, "pipeline_alone": alone,
        "step_ms": {"real": real * 1000, "in_memory": memory * 1000},
        "rounds_ms": {"real": [t * 1000 for t in real_times],
                      "in_memory": [t * 1000 for t in memory_times]},
        "ratio_real_over_in_memory": ratio,
    }  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
