"""Ship a trained run's ONNX as the package's bundled model (maintainers).

    emotionkit train recipes/fer2013_cpu.yaml [data.source.path=DIR]
    python docs/tools/bundle_model.py RUN_DIR ["the training command, as run"]

Copies RUN_DIR/export/model.onnx (it must have passed the parity gate) to
emotionkit/assets/fer2013_cpu.onnx with the recipe, command, commit, data fingerprint and
validation metrics in its metadata, and the run's record (manifest.json, metrics.json,
export/export.json, recipe.yaml, history.csv) to benchmarks/results/fer2013_cpu_<created>/,
where the docs read the bundled model's figures (`tests/test_docs_figures.py` checks every
one of them against these files and the new metadata: run it and update the pages it names).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from emotionkit.bundled import bundle_run

REPO = Path(__file__).resolve().parents[2]
COMMAND = "emotionkit train recipes/fer2013_cpu.yaml"
RECORD = ("manifest.json", "metrics.json", "export/export.json", "recipe.yaml", "history.csv")


def keep_run_record(run_dir: Path, model_file: Path) -> Path:
    """The run's record under benchmarks/results/, named as the docs checks look it up."""
    created = json.loads((run_dir / "manifest.json").read_text())["created"]
    target = REPO / "benchmarks" / "results" / f"{model_file.stem}_{created[:19].replace(':', '-')}"
    target.mkdir(parents=True, exist_ok=True)
    for name in RECORD:
        shutil.copy2(run_dir / name, target / Path(name).name)
    return target


if __name__ == "__main__":
    run = Path(sys.argv[1])
    bundled = bundle_run(run, command=sys.argv[2] if len(sys.argv) > 2 else COMMAND)
    print(bundled)
    print(keep_run_record(run, bundled))
