"""Ship a trained run's ONNX as the package's bundled model (maintainers).

    emotionkit train recipes/fer2013_cpu.yaml [data.source.path=DIR]
    python docs/tools/bundle_model.py RUN_DIR ["the training command, as run"] [--name NAME]

Copies RUN_DIR/export/model.onnx (it must have passed the parity gate) to the file
`emotionkit.bundled.BUNDLED_FILES` names for NAME (default `fer2013-cpu`:
emotionkit/assets/fer2013_cpu.onnx) with the recipe, command, commit, data fingerprint and
validation metrics in its metadata, and the run's record (manifest.json, metrics.json,
export/export.json, recipe.yaml, history.csv) to benchmarks/results/fer2013_cpu_<created>/,
where the docs read the bundled model's figures (`tests/test_docs_figures.py` checks every
one of them against these files and the new metadata: run it and update the pages it names).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from emotionkit.bundled import DEFAULT_MODEL, bundle_run

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("command", nargs="?", default=COMMAND)
    parser.add_argument("--name", default=DEFAULT_MODEL)
    args = parser.parse_args()
    bundled = bundle_run(args.run, name=args.name, command=args.command)
    print(bundled)
    print(keep_run_record(args.run, bundled))
