"""Training throughput: emotionkit's training internals against minimal loops, same network.

One ResNet-18 (CIFAR stem, 48x48x1 input, 7 classes, float32, batch 128, CPU), trained three
ways and timed in training images per second:

(a) emotionkit: the recipe's model (`build_model`), `compile_model` (AdamW with the cosine
    schedule, cross-entropy, the training metrics) and `fit_model` (our callbacks: NaN guard,
    checkpoints, resume backups, CSV log, progress) on a `build_dataset` `tf.data` stream of
    synthetic faces loaded by `load_data`: what `emotionkit train` runs, minus export.
(b) Keras, minimal: the same model built by `build_model`, compiled with plain AdamW and
    cross-entropy and no metrics, `model.fit` on in-memory NumPy arrays with no callbacks.
(c) PyTorch eager: the same architecture written in `torch.nn` (conv3x3 stem, basic blocks
    [2, 2, 2, 2], 1x1 projection shortcuts where the shape changes), AdamW, a plain loop;
(c') the same, with PyTorch's kernels capped at AVX2 as emotionkit caps TensorFlow's oneDNN
    (`emotionkit.runtime.apply_tensorflow_workarounds`): on an AVX-512 CPU this separates the
    instruction set from the framework in (a)/(c).

(a) and (b) run in one child process per Keras backend (the backend is fixed at import);
(c) in its own child, with a Python that has torch (`--torch-python`; torch is an optional
benchmark dependency, never a runtime one). Each measurement times `--steps` batches after
`--warmup` untimed ones (compilation, first allocations): a timing callback (or the loop)
reads the loss of the last warm-up and the last timed batch, which waits for the device
work, and images/s = batch x timed steps / elapsed. Validation at the epoch end is outside
the timed window. Ratios above 1 mean emotionkit is faster.

Run from the repository root:
    python benchmarks/train_throughput.py                        # 5 timed steps after 2
    python benchmarks/train_throughput.py --torch-python /path/to/venv/bin/python
    python benchmarks/train_throughput.py --quick                # tiny width, a few steps
Writes benchmarks/results/train_throughput.json (train_throughput_quick.json with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the child modes import emotionkit from this checkout
RESULTS = REPO / "benchmarks" / "results"
BACKENDS = ("tensorflow", "jax")
NUM_CLASSES = 7
# The instruction-set cap TensorFlow runs under here, applied to PyTorch for (c').
AVX2_CAP = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
IMAGE_SIZE = 48


def model_overrides(width: float, blocks: list[int], batch: int, images: int) -> list[str]:
    """Quickstart recipe -> the benchmark's ResNet-18: full depth and width, batch 128."""
    return [
        "name=train-throughput",
        f"data.source={{kind: synthetic, train_size: {images}, val_size: {batch}, test_size: 0}}",
        f"data.image_size={IMAGE_SIZE}",
        "data.channels=1",
        f"data.batch_size={batch}",
        "data.augment=[]",
        "model.stem=cifar",
        f"model.width={width}",
        f"model.stage_blocks={blocks}",
        "train.epochs=2",  # one epoch is timed; the schedule needs warmup < epochs
        "runtime.precision=float32",
        "export.formats=[]",
    ]


# --- child: (a) and (b) under one Keras backend --------------------------------------------


def _timer_callback(warmup: int, steps: int) -> Any:
    """A Keras callback that records the time at the end of the warm-up and the timed steps."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.marks: list[float] = []

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            if batch in (warmup - 1, warmup + steps - 1):
                float((logs or {})["loss"])  # a host read waits for the step's device work
                self.marks.append(time.perf_counter())

    return StepTimer()


def _rate(timer: Any, batch: int, steps: int) -> dict[str, float]:
    """Images/s and seconds per step between the two marks of a `StepTimer`."""
    elapsed = timer.marks[1] - timer.marks[0]
    return {"images_per_s": batch * steps / elapsed, "step_s": elapsed / steps}


def run_emotionkit(args: argparse.Namespace) -> dict[str, float]:
    """(a): compile_model + fit_model on a build_dataset stream, as the workflow wires them."""
    import tempfile

    from emotionkit.data import load_data
    from emotionkit.data.pipeline import build_dataset, pixel_mean_std
    from emotionkit.models import build_model
    from emotionkit.recipe import load_recipe
    from emotionkit.runtime import configure_frameworks, resolve_runtime
    from emotionkit.training import compile_model, fit_model

    images = args.batch * (args.warmup + args.steps)
    overrides = model_overrides(args.width, args.blocks, args.batch, images)
    recipe = load_recipe(REPO / "recipes" / "quickstart.yaml", overrides)
    choice = resolve_runtime(recipe.runtime)
    configure_frameworks(choice, recipe.seed)
    data = load_data(recipe.data, recipe.seed)
    train, val = data.splits["train"], data.splits["val"]
    mean, std = pixel_mean_std(train.images)
    model = build_model(
        recipe.model,
        image_size=IMAGE_SIZE,
        channels=1,
        num_classes=data.num_classes,
        pixel_mean=mean,
        pixel_std=std,
    )
    steps_per_epoch = len(train) // args.batch
    compile_model(model, recipe.train, steps_per_epoch, choice.jit_compile)
    stream = build_dataset(train, data.num_classes, args.batch, training=True, seed=recipe.seed)
    val_data = build_dataset(val, data.num_classes, args.batch, training=False, seed=0)
    timer = _timer_callback(args.warmup, args.steps)
    spec = recipe.train.model_copy(update={"epochs": 1})
    with tempfile.TemporaryDirectory(prefix="emotionkit-throughput-") as run_dir:
        fit_model(
            model,
            stream,
            val_data,
            spec,
            Path(run_dir),
            steps_per_epoch=steps_per_epoch,
            batch_size=args.batch,
            jit_compile=choice.jit_compile,
            extra_callbacks=[timer],
        )
    return {**_rate(timer, args.batch, args.steps), "jit_compile": str(choice.jit_compile)}


def run_keras_minimal(args: argparse.Namespace) -> dict[str, float]:
    """(b): the same model, plain compile, `fit` on NumPy arrays, no callbacks but the timer."""
    import keras
    import numpy as np

    from emotionkit.models import build_model
    from emotionkit.models.resnet import ResNetSpec

    keras.utils.clear_session()
    spec = ResNetSpec(stem="cifar", width=args.width, stage_blocks=args.blocks)
    model = build_model(spec, image_size=IMAGE_SIZE, channels=1, num_classes=NUM_CLASSES)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-3),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        jit_compile="auto",
    )
    count = args.batch * (args.warmup + args.steps)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (count, IMAGE_SIZE, IMAGE_SIZE, 1)).astype("float32")
    y = np.eye(NUM_CLASSES, dtype="float32")[rng.integers(0, NUM_CLASSES, count)]
    timer = _timer_callback(args.warmup, args.steps)
    model.fit(x, y, batch_size=args.batch, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
    return _rate(timer, args.batch, args.steps)


def keras_child(args: argparse.Namespace) -> None:
    """Both Keras measurements in this process; prints one JSON line."""
    from emotionkit.runtime import apply_tensorflow_workarounds

    apply_tensorflow_workarounds()  # before anything imports TensorFlow
    os.environ["KERAS_BACKEND"] = args.backend
    if args.minimal_first:  # checks that the order (load drifting on shared cores) is not the gap
        minimal = run_keras_minimal(args)
        result = {"emotionkit": run_emotionkit(args), "keras_minimal": minimal}
    else:
        result = {"emotionkit": run_emotionkit(args), "keras_minimal": run_keras_minimal(args)}
    print("RESULT " + json.dumps(result), flush=True)


# --- child: (c) PyTorch --------------------------------------------------------------------


def torch_resnet18(width: float, blocks: list[int]) -> Any:
    """ResNet-18 with the CIFAR stem, the layout `build_model` gives (KerasCV v1 blocks)."""
    import torch
    from torch import nn

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout, eps=1.001e-5)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout, eps=1.001e-5)
            self.shortcut: nn.Module = nn.Identity()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, eps=1.001e-5)
                )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    filters = [max(1, round(f * width)) for f in (64, 128, 256, 512)]
    layers: list[nn.Module] = [
        nn.Conv2d(1, filters[0], 3, 1, 1, bias=False),
        nn.BatchNorm2d(filters[0], eps=1.001e-5),
        nn.ReLU(),
    ]
    cin = filters[0]
    for stage, (cout, count) in enumerate(zip(filters, blocks, strict=True)):
        for block in range(count):
            layers.append(BasicBlock(cin, cout, 2 if stage > 0 and block == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, NUM_CLASSES)]
    return nn.Sequential(*layers)


def torch_child(args: argparse.Namespace) -> None:
    """(c): eager PyTorch training loop on in-memory tensors; prints one JSON line."""
    import torch

    torch.manual_seed(0)
    model = torch_resnet18(args.width, args.blocks).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(args.batch, 1, IMAGE_SIZE, IMAGE_SIZE) * 255.0
    y = torch.randint(0, NUM_CLASSES, (args.batch,))
    marks = []
    for step in range(args.warmup + args.steps):
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model((x - 127.5) / 64.0), y)
        loss.backward()
        optimizer.step()
        if step in (args.warmup - 1, args.warmup + args.steps - 1):
            marks.append(time.perf_counter())
    elapsed = marks[1] - marks[0]
    result = {
        "images_per_s": args.batch * args.steps / elapsed,
        "step_s": elapsed / args.steps,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    print("RESULT " + json.dumps({"pytorch": result}), flush=True)


# --- parent --------------------------------------------------------------------------------


def run_child(
    python: str,
    mode: str,
    args: argparse.Namespace,
    backend: str = "",
    extra_env: dict[str, str] | None = None,
) -> dict:
    """Run one child mode and parse its RESULT line; a failure is recorded, not raised."""
    argv = [
        python,
        __file__,
        "--child",
        mode,
        "--width",
        str(args.width),
        "--batch",
        str(args.batch),
        "--warmup",
        str(args.warmup),
        "--steps",
        str(args.steps),
        "--blocks",
        *map(str, args.blocks),
        "--backend",
        backend or "tensorflow",
        *(["--minimal-first"] if args.minimal_first else []),
    ]
    env = {**os.environ, **(extra_env or {})}
    if backend:
        env["KERAS_BACKEND"] = backend
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        return {"error": f"exit {result.returncode}: {result.stderr.strip()[-1500:]}"}
    return json.loads(lines[-1][len("RESULT ") :])


def torch_available(python: str) -> bool:
    """Whether `python` can import torch (it is not an emotionkit dependency)."""
    try:
        probe = subprocess.run([python, "-c", "import torch"], capture_output=True)
    except OSError:  # no such interpreter
        return False
    return probe.returncode == 0


def run_pytorch(args: argparse.Namespace) -> dict[str, Any]:
    """(c) as PyTorch ships, and (c') capped at AVX2 like emotionkit's TensorFlow.

    `emotionkit.runtime.apply_tensorflow_workarounds` caps TensorFlow's oneDNN at AVX2 (its
    AVX-512 kernels crash on AVX-512 AMD EPYC CPUs); PyTorch uses AVX-512 where the CPU has
    it. The capped run (same caps for PyTorch's oneDNN and ATen kernels) separates the
    instruction set from the framework in (a)/(c).
    """
    if not torch_available(args.torch_python):
        return {
            "error": f"{args.torch_python} cannot import torch: "
            "pip install torch (CPU wheel) or pass --torch-python"
        }
    native = run_child(args.torch_python, "torch", args)
    capped = run_child(args.torch_python, "torch", args, extra_env=AVX2_CAP)
    return {**native, "pytorch_avx2": capped.get("pytorch", capped)}


def ratios(keras: dict, torch_result: dict) -> dict[str, float | None]:
    """(a)/(b), (a)/(c) and (a)/(c') in images/s: above 1, emotionkit trains faster."""
    ours = keras.get("emotionkit", {}).get("images_per_s")
    minimal = keras.get("keras_minimal", {}).get("images_per_s")
    pytorch = torch_result.get("pytorch", {}).get("images_per_s")
    pytorch_avx2 = torch_result.get("pytorch_avx2", {}).get("images_per_s")
    return {
        "emotionkit_over_keras_minimal": _ratio(ours, minimal),
        "emotionkit_over_pytorch": _ratio(ours, pytorch),
        "emotionkit_over_pytorch_avx2": _ratio(ours, pytorch_avx2),
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 3) if numerator and denominator else None


def print_table(rows: dict[str, Any], torch_result: dict) -> None:
    """One line per backend: the three rates and the two ratios."""
    pt = torch_result.get("pytorch", {}).get("images_per_s")
    pt_avx2 = torch_result.get("pytorch_avx2", {}).get("images_per_s")
    headers = ["(a) emotionkit", "(b) keras min", "(c) pytorch", "(c') pt avx2"]
    headers += ["(a)/(b)", "(a)/(c)", "(a)/(c')"]
    print(f"{'backend':<11} " + " ".join(f"{h:>14}" for h in headers))
    for backend, row in rows.items():
        a = row["keras"].get("emotionkit", {}).get("images_per_s")
        b = row["keras"].get("keras_minimal", {}).get("images_per_s")
        cells = [f"{v:.1f}" if v else "n/a" for v in (a, b, pt, pt_avx2)]
        cells += [f"{v:.3f}" if v else "n/a" for v in row["ratios"].values()]
        print(f"{backend:<11} " + " ".join(f"{c:>14}" for c in cells))
        if "error" in row["keras"]:
            print(f"  {backend} failed: {row['keras']['error']}")
    if "error" in torch_result:
        print(f"  pytorch: {torch_result['error']}")


def parse_args() -> argparse.Namespace:
    """Defaults are the full measurement; --quick shrinks it for smoke use."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="width 1/8, one block per stage, batch 32, 3 steps after 1",
    )
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--blocks", type=int, nargs=4, default=[2, 2, 2, 2])
    parser.add_argument("--batch", type=int, default=128)
    # ~10 s per full-width step on a 2-core CPU: 5 timed steps keep a run to minutes.
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument(
        "--torch-python",
        default=sys.executable,
        help="a Python with torch installed (default: this one)",
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--minimal-first", action="store_true", help="time (b) before (a)")
    parser.add_argument("--child", choices=["keras", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="tensorflow", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.width, args.blocks, args.batch, args.warmup, args.steps = 0.125, [1, 1, 1, 1], 32, 1, 3
    return args


def main() -> None:
    """Children per backend and for PyTorch; ratios; a table and a JSON file."""
    args = parse_args()
    if args.child == "keras":
        return keras_child(args)
    if args.child == "torch":
        return torch_child(args)
    setup = {k: getattr(args, k) for k in ("width", "blocks", "batch", "warmup", "steps")}
    load = os.getloadavg()
    torch_result = run_pytorch(args)
    rows = {}
    for backend in args.backends:
        keras_result = run_child(sys.executable, "keras", args, backend)
        rows[backend] = {"keras": keras_result, "ratios": ratios(keras_result, torch_result)}
    print_table(rows, torch_result)
    out = args.out or RESULTS / f"train_throughput{'_quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "setup": setup,
        "pytorch": torch_result,
        "backends": rows,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_at_start": load,
            "platform": platform.platform(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
