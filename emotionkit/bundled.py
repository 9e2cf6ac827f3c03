"""Models shipped inside the package: `emotionkit predict IMAGE` works with no model argument.

Each bundled model is an ONNX file under `emotionkit/assets/` that follows the export
contract (raw pixels in; logits, probabilities and class names inside) plus provenance in its
metadata: the recipe, the training command, the git commit, the data fingerprint and the
validation metrics. `docs/models.md` gives the command that rebuilds each one. A bundled
model's name picks it wherever a model is given (`predict --model NAME`, `serve --model NAME`,
`Predictor("NAME")`): `emotionkit.predict.onnx_model.resolve_model_path` does that, for all.
"""

from __future__ import annotations

import json
import statistics
import time
from importlib import resources
from pathlib import Path

from emotionkit.errors import EmotionkitError

DEFAULT_MODEL = "fer2013-cpu"
# Name -> file under assets_dir(). Registered here, in one place: a name is listed, picked by
# `--model NAME` and resolved by `bundled_model_path` exactly when it is a key.
BUNDLED_FILES = {
    "fer2013-cpu": "fer2013_cpu.onnx",  # FER2013's 7 classes, one label per face
    "ferplus-cpu": "ferplus_cpu.onnx",  # FER+'s 8 classes, trained on the 10 votes per face
}
PROVENANCE_KEYS = (
    "val_accuracy",
    "val_macro_f1",
    "val_images",
    "training_command",
    "git_commit",
    "data_fingerprint",
    "trained_at",
    "training_wall_seconds",
)
# Batch-1 latency for `models list`: the first runs pay for ORT's lazy allocations, so they
# are left out; the median of the rest shrugs off the odd run a busy machine slows down.
LATENCY_WARMUP_RUNS = 3
LATENCY_TIMED_RUNS = 20


def assets_dir() -> Path:
    """The folder of the bundled ONNX files, inside the installed package."""
    return Path(str(resources.files("emotionkit") / "assets"))


def bundled_names() -> str:
    """The bundled models' names, comma-separated, for error messages."""
    return ", ".join(sorted(BUNDLED_FILES))


def bundled_model_path(name: str = DEFAULT_MODEL) -> Path:
    """The path of a bundled ONNX model (inside the installed package)."""
    if name not in BUNDLED_FILES:
        raise EmotionkitError(f"no bundled model {name!r}; bundled: {bundled_names()}")
    path = assets_dir() / BUNDLED_FILES[name]
    if not path.is_file():
        raise EmotionkitError(f"bundled model file {path} is missing: reinstall emotionkit")
    return path


def list_bundled(latency: bool = False) -> list[dict[str, object]]:
    """Name, file, size, classes, input, provenance and CPU latency of every bundled model.

    Args:
        latency: Also time each model on this CPU (`latency_ms`, see `batch1_latency_ms`:
            under a second a model); False (default) reads the metadata only and sets
            `latency_ms` to None.

    Returns:
        One dict per model, by name; `default` marks `DEFAULT_MODEL`.
    """
    import onnx

    rows: list[dict[str, object]] = []
    for name in sorted(BUNDLED_FILES):
        path = bundled_model_path(name)
        proto = onnx.load(str(path), load_external_data=False)
        metadata = {entry.key: entry.value for entry in proto.metadata_props}
        size, channels = metadata.get("image_size"), metadata.get("channels")
        rows.append(
            {
                "name": name,
                "default": name == DEFAULT_MODEL,
                "path": str(path),
                "size_mb": round(path.stat().st_size / 2**20, 2),
                "classes": json.loads(metadata.get("class_names", "[]")),
                "input": f"{size}x{size}x{channels}",
                **{key: metadata.get(key) for key in PROVENANCE_KEYS},
                "latency_ms": batch1_latency_ms(path) if latency else None,
            }
        )
    return rows


def batch1_latency_ms(path: Path) -> float:
    """Median milliseconds of one single-image `session.run` of `path` on this CPU.

    The session is onnxruntime's CPU provider with its default threads, as `Predictor`
    opens it; the image is random pixels of the model's input shape (the time does not
    depend on the values). `LATENCY_WARMUP_RUNS` untimed runs, then the median of
    `LATENCY_TIMED_RUNS`.
    """
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    metadata = session.get_modelmeta().custom_metadata_map
    (node,) = session.get_inputs()
    shape = (1, int(metadata["image_size"]), int(metadata["image_size"]), int(metadata["channels"]))
    feed = {node.name: np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)}
    for _ in range(LATENCY_WARMUP_RUNS):
        session.run(None, feed)
    seconds = []
    for _ in range(LATENCY_TIMED_RUNS):
        started = time.perf_counter()
        session.run(None, feed)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds) * 1000


def bundle_run(run_dir: Path, name: str = DEFAULT_MODEL, command: str = "") -> Path:
    """Copy a run's gated `export/model.onnx` into the package assets with its provenance.

    Maintainers only (it writes into the source tree): see docs/models.md for the command that
    rebuilds the shipped model.
    """
    import onnx

    if name not in BUNDLED_FILES:
        raise EmotionkitError(
            f"no bundled model {name!r}: add it to BUNDLED_FILES in emotionkit/bundled.py first"
        )
    export = json.loads((run_dir / "export" / "export.json").read_text())
    if not export.get("passed") or "onnx" not in export.get("checks", {}):
        raise EmotionkitError(f"{run_dir}: no ONNX export that passed the parity gate")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    val = json.loads((run_dir / "metrics.json").read_text())["val"]
    proto = onnx.load(str(run_dir / "export" / "model.onnx"))
    provenance = {
        "bundled_name": name,
        "val_accuracy": f"{val['accuracy']:.4f}",
        "val_macro_f1": f"{val['macro_f1']:.4f}",
        "val_images": str(val["num_images"]),
        "training_command": command,
        "git_commit": str(manifest.get("git_commit")),
        "data_fingerprint": manifest["data"]["fingerprint"],
        "trained_at": manifest["created"],
        "training_wall_seconds": str(manifest.get("wall_seconds")),
        "recipe_yaml": (run_dir / "recipe.yaml").read_text(),
        "export_parity_max_abs_diff": str(export["checks"]["onnx"]["max_abs_diff"]),
    }
    kept = [entry for entry in proto.metadata_props if entry.key not in provenance]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in provenance.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    target = assets_dir() / BUNDLED_FILES[name]
    onnx.save(proto, str(target))
    return target
