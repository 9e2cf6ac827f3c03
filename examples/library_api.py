"""The library API end to end: recipe -> train (+ export) -> evaluate -> predict.

A notebook-free tour of what `emotionkit train`, `evaluate` and `predict` do, as function
calls, on the built-in synthetic faces (no download). The quickstart recipe is shrunk in code
to a run of under a minute on 2 CPU cores, the same shrinking the tests use
(tests/conftest.py), so the numbers it prints show the plumbing, not a good model.

Run it from the repository root:
    python examples/library_api.py                     # TensorFlow on a CPU-only machine
    python examples/library_api.py --backend jax
    python examples/library_api.py --runs-dir /tmp/runs
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import emotionkit
from emotionkit.data.synthetic import FER_CLASSES, generate_synthetic_faces

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "recipes" / "quickstart.yaml"
# Shrinks recipes/quickstart.yaml (3,000 images at 48 px, 6 epochs, ~2 min) to 1,400 training
# images at 32 px and 5 epochs (the tests' 280 images and 2 epochs stay at chance level; this is
# about the least that learns the synthetic task visibly), on the quickstart's 1/8-width ResNet.
TINY_OVERRIDES = [
    "name=library-api-example",
    "data.source={kind: synthetic, train_size: 1400, val_size: 210, test_size: 0}",
    "data.image_size=32",
    "data.batch_size=32",
    "model.width=0.125",
    "model.stage_blocks=[1, 1, 1, 1]",
    "train.epochs=5",
    "train.schedule.warmup_epochs=0.5",
    "export.parity_samples=16",
]


def parse_args() -> argparse.Namespace:
    """Command-line options: only what changes where the run goes and on which backend."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["auto", "tensorflow", "jax"], default="auto")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    return parser.parse_args()


def train_tiny_run(backend: str, runs_dir: Path) -> Any:
    """Load the quickstart recipe with the shrinking overrides and train it.

    `emotionkit.train` also evaluates the best checkpoint and exports it (SavedModel + ONNX,
    each gated against the Keras logits), as `export.formats` in the recipe asks.
    """
    recipe = emotionkit.load_recipe(QUICKSTART, [*TINY_OVERRIDES, f"runtime.backend={backend}"])
    print(
        f"recipe {recipe.name}: {recipe.model.name}-{recipe.model.depth}, "
        f"{recipe.train.epochs} epochs on {recipe.data.source.kind} data"
    )
    return emotionkit.train(recipe, runs_dir=runs_dir)


def evaluate_with_tta(run_dir: Path) -> dict[str, Any]:
    """Score the run's best checkpoint on its validation split, with mirror TTA.

    Imported here rather than at the top: the evaluation module pulls in the plotting and
    model-loading stack, which the train call above has already paid for.
    """
    from emotionkit.evaluate.evaluation import evaluate

    evaluation = evaluate(run_dir, split="val", tta="hflip")
    metrics = evaluation.metrics
    plain = metrics["without_tta"]
    print(
        f"evaluate (val, tta=hflip): accuracy {metrics['accuracy']:.3f}, "
        f"macro-F1 {metrics['macro_f1']:.3f} (without TTA: accuracy {plain['accuracy']:.3f}) "
        f"-> {evaluation.eval_dir}"
    )
    return metrics


def print_export_checks(run_dir: Path) -> Path:
    """Print the parity checks that `train` recorded in export/export.json.

    Returns:
        The exported ONNX model, which `Predictor` loads.
    """
    report = json.loads((run_dir / "export" / "export.json").read_text())
    print(f"export passed: {report.get('passed')}")
    for name, check in report.get("checks", {}).items():
        print(f"  {name}: {json.dumps(check, sort_keys=True)}")
    return run_dir / "export" / "model.onnx"


def predict_a_few(onnx_path: Path, image_size: int = 32, count: int = 5) -> None:
    """Classify a few fresh synthetic faces (a seed the training never saw) with the ONNX model.

    `Predictor` needs onnxruntime and OpenCV only; the images are face crops already, so
    `faces="none"` classifies each one whole instead of running the face detector.
    """
    images, labels = generate_synthetic_faces(count, seed=2026, image_size=image_size)
    predictor = emotionkit.Predictor(onnx_path)
    predictions = predictor.predict(images, faces="none")
    for prediction, label in zip(predictions, labels, strict=True):
        top = ", ".join(f"{name} {p:.2f}" for name, p in prediction.top(2))
        print(f"  true {FER_CLASSES[label]:<8} predicted {prediction.label:<8} ({top})")


def main() -> None:
    """Run the four stages and say how long the whole tour took."""
    args = parse_args()
    started = time.perf_counter()
    result = train_tiny_run(args.backend, args.runs_dir)
    print(f"trained: {result.run_dir}, val accuracy {result.metrics['val']['accuracy']:.3f}")
    evaluate_with_tta(result.run_dir)
    onnx_path = print_export_checks(result.run_dir)
    print(f"predict with {onnx_path.name}:")
    predict_a_few(onnx_path)
    print(f"done in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
