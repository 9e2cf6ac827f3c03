"""Models shipped inside the package: `emotionkit predict IMAGE` works with no model argument.

Each bundled model is an ONNX file under `emotionkit/assets/` that follows the export
contract (raw pixels in; logits, probabilities and class names inside) plus provenance in its
metadata: the recipe, the training command, the git commit, the data fingerprint and the
validation metrics. `docs/models.md` gives the command that rebuilds each one.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from emotionkit.errors import EmotionkitError

DEFAULT_MODEL = "fer2013-cpu"
BUNDLED_FILES = {"fer2013-cpu": "fer2013_cpu.onnx"}
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


def bundled_model_path(name: str = DEFAULT_MODEL) -> Path:
    """The path of a bundled ONNX model (inside the installed package)."""
    if name not in BUNDLED_FILES:
        raise EmotionkitError(
            f"no bundled model {name!r}; bundled: {', '.join(sorted(BUNDLED_FILES))}"
        )
    path = Path(str(resources.files("emotionkit") / "assets" / BUNDLED_FILES[name]))
    if not path.is_file():
        raise EmotionkitError(f"bundled model file {path} is missing: reinstall emotionkit")
    return path


def list_bundled() -> list[dict[str, object]]:
    """Name, file, size, classes and provenance of every bundled model (reads metadata only)."""
    import onnx

    rows: list[dict[str, object]] = []
    for name in sorted(BUNDLED_FILES):
        path = bundled_model_path(name)
        proto = onnx.load(str(path), load_external_data=False)
        metadata = {entry.key: entry.value for entry in proto.metadata_props}
        rows.append(
            {
                "name": name,
                "default": name == DEFAULT_MODEL,
                "path": str(path),
                "size_mb": round(path.stat().st_size / 2**20, 2),
                "classes": json.loads(metadata.get("class_names", "[]")),
                "input": f"{metadata.get('image_size')}x{metadata.get('image_size')}x"
                f"{metadata.get('channels')}",
                **{key: metadata.get(key) for key in PROVENANCE_KEYS},
            }
        )
    return rows


def bundle_run(run_dir: Path, name: str = DEFAULT_MODEL, command: str = "") -> Path:
    """Copy a run's gated `export/model.onnx` into the package assets with its provenance.

    Maintainers only (it writes into the source tree): see docs/models.md for the command that
    rebuilds the shipped model.
    """
    import onnx

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
    target = Path(str(resources.files("emotionkit") / "assets" / BUNDLED_FILES[name]))
    onnx.save(proto, str(target))
    return target
