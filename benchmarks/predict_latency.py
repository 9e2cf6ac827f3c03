"""CPU inference: batch-1 latency and batch-64 throughput of one model in five runtimes.

    python benchmarks/predict_latency.py RUN_DIR [--repeats 200] [--out results.json]

RUN_DIR is an exported run (`export.formats` with saved_model, onnx and onnx_int8; re-export
with `emotionkit export` after setting them). Side by side, in one process, on the same
validation-sized random images: Keras `model.predict`, a direct Keras call
`model(x, training=False)`, the SavedModel signature, onnxruntime on the float32 ONNX and on
the INT8 ONNX. Reports medians after warm-up, and every runtime's ratio to Keras `predict`.
TensorFlow backend (the export backend), float32, this machine's CPU threads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

Runner = Callable[[np.ndarray], Any]


def runners(run_dir: Path) -> dict[str, Runner]:
    import onnxruntime as ort
    import tensorflow as tf

    import emotionkit.training  # noqa: F401  (custom objects of the compiled checkpoint)
    from emotionkit.models.float32 import load_float32_model

    model = load_float32_model(run_dir / "checkpoints" / "best.keras")
    signature = tf.saved_model.load(str(run_dir / "export" / "saved_model")).signatures[
        "serving_default"
    ]

    def onnx_runner(name: str) -> Runner:
        session = ort.InferenceSession(
            str(run_dir / "export" / name), providers=["CPUExecutionProvider"]
        )
        return lambda x: session.run(["logits"], {"image": x})

    return {
        "keras_predict": lambda x: model.predict(x, batch_size=len(x), verbose=0),
        "keras_call": lambda x: model(x, training=False),
        "saved_model": lambda x: signature(image=tf.constant(x)),
        "onnx_float32": onnx_runner("model.onnx"),
        "onnx_int8": onnx_runner("model.int8.onnx"),
    }


def median_seconds(run: Runner, images: np.ndarray, repeats: int, warmup: int = 10) -> float:
    for _ in range(warmup):
        run(images)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run(images)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from emotionkit.runtime import apply_tensorflow_workarounds

    apply_tensorflow_workarounds()
    found = runners(args.run_dir)
    metadata = json.loads((args.run_dir / "export" / "export.json").read_text())["metadata"]
    size, channels = int(metadata["image_size"]), int(metadata["channels"])
    rng = np.random.default_rng(0)
    one = rng.uniform(0, 255, (1, size, size, channels)).astype(np.float32)
    batch = rng.uniform(0, 255, (64, size, size, channels)).astype(np.float32)
    rows = {}
    for name, run in found.items():
        latency = median_seconds(run, one, args.repeats)
        batch_time = median_seconds(run, batch, max(args.repeats // 10, 10))
        rows[name] = {"batch1_ms": 1000 * latency, "batch64_images_per_s": 64 / batch_time}
    base = rows["keras_predict"]
    print(f"{'runtime':<14}{'batch-1 ms':>12}{'vs predict':>12}{'b64 img/s':>12}{'vs predict':>12}")
    for name, row in rows.items():
        row["batch1_ratio_to_keras_predict"] = row["batch1_ms"] / base["batch1_ms"]
        row["batch64_ratio_to_keras_predict"] = (
            row["batch64_images_per_s"] / base["batch64_images_per_s"]
        )
        print(
            f"{name:<14}{row['batch1_ms']:>12.2f}{row['batch1_ratio_to_keras_predict']:>12.3f}"
            f"{row['batch64_images_per_s']:>12.0f}{row['batch64_ratio_to_keras_predict']:>12.2f}"
        )
    result = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "run_dir": str(args.run_dir), "runtimes": rows}  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
