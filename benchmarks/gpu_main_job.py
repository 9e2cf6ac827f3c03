"""The main job on one card: `emotionkit train` against the same Keras step and PyTorch.

Issue 18's GPU benchmark, prepared to run in one device call (`benchmarks/gpu_main_job.sh`).
One machine, one after the other, each in its own process (JAX takes most of the GPU's
memory at its first use, so no two measurements share a process):

(a) `emotionkit train RECIPE` itself: the real CLI (`emotionkit.cli.main`) on the JAX
    backend, with the recipe's augmentation list (`data.augment_on: auto`, which is `device`
    on a GPU or where TensorFlow is missing), `runtime.precision: auto` (bf16 where the card
    has it), XLA, checkpoints, validation every epoch. A passive Keras callback, added
    through `workflow.train(callbacks=...)`, reads the loss at the first and the last batch
    of every epoch (a host read waits for the device), so the rate covers the train steps
    alone; the epoch lines the run prints (validation and checkpoint writes included) and
    its `manifest.json` and `model.json` are read as well.
(b) The same compiled step outside the workflow: `build_model` + `compile_model` (the
    recipe's optimizer, EMA, clipping, schedule, loss, metrics), the augmentation in the step
    exactly when (a) placed it there, class weights as sample weights, and `model.fit` on
    pre-made batches already on the device; no validation, no callbacks but the timer.
(c) The same architecture in PyTorch (`train_throughput.torch_resnet18`, plus the recipe's
    dropout): channels_last, bf16 autocast on CUDA, `torch.compile`, fused AdamW, gradient
    clipping and an EMA of the weights, on pre-made device batches, without augmentation
    (so (a)/(c) charges (a) for its augmentation). Skipped, with the reason, where torch is
    not importable.

Compile time = time to the end of the first step - one steady step. Steady img/s = images of
the timed steps / their time, median over the epochs after the first. MFU = 3 x FLOPs per
image (forward, from `model_summary`, as `emotionkit model summary` counts them; backward
~ 2x forward) x img/s / the card's peak dense bf16 FLOP/s (`PEAK_BF16_TFLOPS`; null on CPU).

Data: the GPU machine gets only the working tree, so FER2013 travels as an npz made here
(`--make-npz`). Whole, it does not fit the 64 MiB a call carries (60 MiB compressed), so by
default a stratified half travels and is tiled back to the 28,709 training images on the
machine: the same shapes, batches and epoch length; pixels do not change the speed.

    python benchmarks/gpu_main_job.py --make-npz .device/fer2013_train_half.npz \
        --image-folder ../shared/data/fer2013                      # once, here
    python benchmarks/gpu_main_job.py recipes/fer2013_resnet18.yaml \
        --npz .device/fer2013_train_half.npz --out FILE.json       # on the GPU: see the .sh
    python benchmarks/gpu_main_job.py recipes/fer2013_resnet18.yaml --quick \
        --npz .device/fer2013_train_half.npz --torch-python /tmp/torchvenv/bin/python \
        --out /tmp/quick.json                                      # CPU smoke run, minutes
    ... --block-tensorflow        # (a) and (b) as on a JAX-only host: `import tensorflow` fails
    ... data.balance=none --only a     # recipe overrides (after the script's own); a subset
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the children import emotionkit from this checkout
sys.path.insert(0, str(REPO / "benchmarks"))
from train_throughput import AVX2_CAP, _ratio, torch_available, torch_resnet18  # noqa: E402

FER2013_TRAIN_IMAGES = 28_709  # the Kaggle train folder; the recipe carves 10 % for val
# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's data sheets, TFLOP/s. First
# match of the name nvidia-smi prints wins, so the specific names come first.
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H200 NVL", 835.0),
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100", 989.0),  # SXM, e.g. "NVIDIA H100 80GB HBM3"
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
)
TRAIN_FLOPS_PER_FORWARD = 3  # forward + backward (~2x forward): the usual MFU convention
QUICK_OVERRIDES = [
    "model.width=0.125",
    "model.stage_blocks=[1, 1, 1, 1]",
    "data.batch_size=32",
    "train.schedule.warmup_epochs=1",
    "data.augment_on=device",  # auto is `host` on a CPU with TensorFlow; the GPU path is device
    "export.formats=[]",
]
EPOCH_LINE = re.compile(r"^epoch (\d+)/\d+ .*\(([\d.]+)s, (\d+) img/s\)$")


class NoTensorFlow:
    """A meta-path finder that refuses TensorFlow, as tests/test_without_tensorflow.py does:
    with `--block-tensorflow`, (a) and (b) run as on a JAX-only GPU host."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: a JAX-only host)")
        return None


# --- data ----------------------------------------------------------------------------------


def make_npz(image_root: Path, out: Path, fraction: float, seed: int = 0) -> dict[str, Any]:
    """Decode `image_root/train/<class>/*` as the `image_folder` source does; save a stratified
    `fraction` of it as a compressed npz (`x` (N, 48, 48) uint8, `y`, `class_names`)."""
    import numpy as np

    from emotionkit.data.sources import load_source
    from emotionkit.recipe import load_recipe

    recipe = load_recipe(
        REPO / "recipes" / "fer2013_resnet18.yaml",
        [f"data.source={{kind: image_folder, path: {image_root}}}"],
    )
    data = load_source(recipe.data, recipe.seed)
    train = data.splits["train"]
    rng = np.random.default_rng(seed)
    keep = np.sort(
        np.concatenate(
            [
                rng.permutation(rows)[: max(1, round(len(rows) * fraction))]
                for rows in (
                    np.flatnonzero(train.labels == c) for c in range(len(data.class_names))
                )
            ]
        )
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    x, y = train.images[keep, :, :, 0], train.labels[keep].astype(np.int8)
    np.savez_compressed(out, x=x, y=y, class_names=np.array(data.class_names, dtype=str))
    return {
        "path": str(out),
        "images": len(keep),
        "of": len(train),
        "mib": out.stat().st_size / 2**20,
    }


def prepare_npz(npz: Path, rows: int, workdir: Path, seed: int = 0) -> dict[str, Any]:
    """`npz` as is, or resized to `rows` (a seeded shuffle, cycled: tiles when it grows)."""
    import numpy as np

    with np.load(npz) as archive:
        x, y, names = archive["x"], archive["y"], archive["class_names"]
    info = {"npz": str(npz), "rows_in_file": len(x), "rows": len(x), "tiled": False}
    if not rows or rows == len(x):
        return {**info, "path": str(npz)}
    order = np.resize(np.random.default_rng(seed).permutation(len(x)), rows)
    path = workdir / f"train_{rows}.npz"
    np.savez(path, x=x[order], y=y[order], class_names=names)  # uncompressed: read once
    return {**info, "path": str(path), "rows": rows, "tiled": rows > len(x)}


# --- children: (a) the CLI, with a passive step timer --------------------------------------


def step_timer() -> Any:
    """A callback: times of train begin, and of the first and last batch of every epoch."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.train_begin: float | None = None
            self.epochs: list[dict[str, float]] = []

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            self.train_begin = self.train_begin or time.perf_counter()

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.epochs.append({"begin": time.perf_counter()})

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            if batch in (0, self.params["steps"] - 1):
                float((logs or {})["loss"])  # a host read waits for the step's device work
                key = "first_batch_end" if batch == 0 else "last_batch_end"
                self.epochs[-1][key] = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.epochs[-1].update(end=time.perf_counter(), steps=self.params["steps"])

        def record(self, started: float) -> dict[str, Any]:
            """Seconds since `started` (the process's start), for the parent to read."""
            rel = lambda t: round(t - started, 4) if t is not None else None  # noqa: E731
            return {
                "train_begin": rel(self.train_begin),
                "epochs": [
                    {k: rel(v) if k != "steps" else v for k, v in e.items()} for e in self.epochs
                ],
            }

    return StepTimer()


def cli_child(cli_args: list[str]) -> None:
    """(a): `emotionkit train ...` through the CLI entry point, a timer added to its fit."""
    started = time.perf_counter()
    import atexit

    from emotionkit import workflow
    from emotionkit.cli import main as cli_main

    timers: list[Any] = []
    original_train = workflow.train

    def train_with_timer(recipe: Any, runs_dir: Any = "runs", **kwargs: Any) -> Any:
        timers.append(step_timer())  # keras under KERAS_BACKEND=jax, the recipe's backend
        callbacks = [*(kwargs.pop("callbacks", None) or []), timers[0]]
        return original_train(recipe, runs_dir=runs_dir, callbacks=callbacks, **kwargs)

    def dump() -> None:
        record = timers[0].record(started) if timers else {}
        record["tensorflow_imported"] = "tensorflow" in sys.modules
        record["top_level_modules"] = sorted({m.split(".")[0] for m in sys.modules})
        Path(os.environ["BENCH_TIMER_OUT"]).write_text(json.dumps(record))

    workflow.train = train_with_timer  # the CLI looks it up at call time
    atexit.register(dump)
    sys.argv = ["emotionkit", *cli_args]
    cli_main()


# --- children: (b) the same Keras step on device batches -----------------------------------


def keras_child(spec: dict[str, Any]) -> dict[str, Any]:
    """(b): the recipe's model and compiled step, `fit` on pre-made device batches."""
    started = time.perf_counter()
    from emotionkit.data import load_data
    from emotionkit.data.augment import augment_placement, build_device_augment_fn
    from emotionkit.data.pipeline import balance_table, pixel_mean_std
    from emotionkit.installed import tensorflow_available
    from emotionkit.models import build_model, model_summary
    from emotionkit.recipe import load_recipe
    from emotionkit.runtime import configure_frameworks, resolve_runtime
    from emotionkit.training import compile_model
    from emotionkit.training.device_augment import augment_in_train_step

    recipe = load_recipe(spec["recipe"], spec["overrides"])
    choice = resolve_runtime(recipe.runtime)
    configure_frameworks(choice, recipe.seed)
    data = load_data(recipe.data, recipe.seed)
    train = data.splits["train"]
    mean, std = pixel_mean_std(train.images)
    model = build_model(
        recipe.model,
        image_size=recipe.data.image_size,
        channels=recipe.data.channels,
        num_classes=data.num_classes,
        pixel_mean=mean,
        pixel_std=std,
    )
    steps = len(train) // recipe.data.batch_size
    counts = train.class_counts(data.num_classes)
    compile_model(model, recipe.train, steps, choice.jit_compile, class_counts=counts)
    placement, _ = augment_placement(
        recipe.data.augment_on, choice.gpu_visible, tensorflow_available()
    )
    if placement == "device" and recipe.data.augment:
        augment = build_device_augment_fn(recipe.data.augment, recipe.seed, choice.backend)
        augment_in_train_step(model, augment, choice.backend)
    balance = balance_table(recipe.data, counts)
    weights = balance["weights"] if balance and balance["weights"] else None
    batches = device_batches(train, data.num_classes, recipe.data.batch_size, steps, weights)
    timer = step_timer()
    model.fit(batches, epochs=1 + spec["keras_epochs"], callbacks=[timer], shuffle=False, verbose=0)
    return {
        "timer": timer.record(started),
        "flops_per_image": model_summary(model)["flops_per_image"],
        "runtime": choice.as_dict(),
        "augment_in_step": placement == "device" and bool(recipe.data.augment),
        "class_weights": weights is not None,
        "tensorflow_imported": "tensorflow" in sys.modules,
    }


def device_batches(
    split: Any, num_classes: int, batch: int, steps: int, weights: list[float] | None
) -> Any:
    """One epoch of (images, targets, sample weights) batches, converted to the backend's
    arrays once (on JAX: on the default device), as a `PyDataset` that `fit` repeats."""
    import keras
    import numpy as np

    from emotionkit.data.array_batches import model_inputs

    order = np.random.default_rng(0).permutation(len(split))
    made = []
    for step in range(steps):
        rows = order[step * batch : (step + 1) * batch]
        images, targets = model_inputs(split, rows, num_classes)
        sample_weight = (
            np.asarray(weights, np.float32)[split.labels[rows]]
            if weights is not None
            else np.ones(len(rows), np.float32)
        )
        made.append(tuple(keras.ops.convert_to_tensor(a) for a in (images, targets, sample_weight)))

    class DeviceBatches(keras.utils.PyDataset):
        def __len__(self) -> int:
            return len(made)

        def __getitem__(self, index: int) -> tuple[Any, ...]:
            return made[index]

    return DeviceBatches()


# --- children: (c) PyTorch -----------------------------------------------------------------


def torch_child(spec: dict[str, Any]) -> dict[str, Any]:
    """(c): the same ResNet in PyTorch, compiled, on pre-made device batches."""
    import numpy as np
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    with np.load(spec["npz"]) as archive:
        x, y = archive["x"], archive["y"].astype(np.int64)
    batch, steps = spec["batch"], len(x) // spec["batch"]
    counts = np.bincount(y, minlength=7)
    class_weight = torch.tensor(counts.sum() / (7 * np.maximum(counts, 1)), dtype=torch.float32)
    images = torch.from_numpy(x[: steps * batch]).view(steps, batch, 1, *x.shape[1:]).to(device)
    labels = torch.from_numpy(y[: steps * batch]).view(steps, batch).to(device)
    mean, std = float(x.mean()), float(x.std())
    net = torch_resnet18(spec["width"], spec["blocks"])
    net.insert(len(net) - 1, torch.nn.Dropout(spec["dropout"]))  # before the head, as ours
    net = net.to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=spec["lr"], weight_decay=spec["weight_decay"], fused=device == "cuda"
    )
    params = list(net.parameters())
    ema = [p.detach().clone() for p in params]
    compiled = torch.compile(net, mode=spec["torch_compile_mode"])
    loss_fn = torch.nn.CrossEntropyLoss(
        weight=class_weight.to(device), label_smoothing=spec["label_smoothing"]
    )
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")

    def train_step(index: int) -> torch.Tensor:
        inputs = (images[index % steps].float() - mean) / std
        with autocast:
            loss = loss_fn(
                compiled(inputs.contiguous(memory_format=torch.channels_last)),
                labels[index % steps],
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, spec["clip_norm"], foreach=True)
        optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, params, 1.0 - spec["ema"])
        return loss

    started = time.perf_counter()
    float(train_step(0))
    first = time.perf_counter()
    for index in range(1, spec["torch_warmup"]):
        train_step(index)
    float(train_step(spec["torch_warmup"]))
    begin = time.perf_counter()
    for index in range(spec["torch_steps"] - 1):
        train_step(spec["torch_warmup"] + 1 + index)
    float(train_step(spec["torch_warmup"] + spec["torch_steps"]))
    elapsed = time.perf_counter() - begin
    step_s = elapsed / spec["torch_steps"]
    return {
        "first_step_s": round(first - started, 3),
        "compile_s": round(first - started - step_s, 3),
        "steady_images_per_s": round(batch * spec["torch_steps"] / elapsed, 1),
        "steady_step_ms": round(1000 * step_s, 3),
        "timed_steps": spec["torch_steps"],
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "bf16_autocast": device == "cuda",
        "compile_mode": spec["torch_compile_mode"],
    }


# --- parent --------------------------------------------------------------------------------


def rates(timer: dict[str, Any], batch: int) -> dict[str, Any]:
    """Compile time and steady rates from a `StepTimer.record`: per epoch, the steps after
    its first one; steady = the median over the epochs after the first (all, if only one)."""
    epochs = [e for e in timer.get("epochs", []) if "last_batch_end" in e and e["steps"] > 1]
    if not epochs:
        return {"error": "no complete epoch was timed"}
    per_epoch = [(e["last_batch_end"] - e["first_batch_end"]) / (e["steps"] - 1) for e in epochs]
    steady = per_epoch[1:] or per_epoch
    step_s = statistics.median(steady)
    first_step_s = epochs[0]["first_batch_end"] - timer["train_begin"]
    walls = [e["end"] - e["begin"] for e in epochs]
    return {
        "compile_s": round(first_step_s - step_s, 2),
        "first_step_s": round(first_step_s, 2),
        "time_to_first_step_s": round(epochs[0]["first_batch_end"], 2),
        "steady_images_per_s": round(batch / step_s, 1),
        "steady_step_ms": round(1000 * step_s, 3),
        "images_per_s_per_epoch": [round(batch / s, 1) for s in per_epoch],
        "epoch_wall_s": [round(w, 2) for w in walls],
        "steps_per_epoch": epochs[0]["steps"],
        "epochs_timed": len(steady),
    }


def run_emotionkit_train(args: argparse.Namespace, overrides: list[str], work: Path) -> dict:
    """(a): the CLI in a child; its timer, its printed epoch lines, manifest and model.json."""
    timer_file, log = work / "a_timer.json", args.log_dir / "a_emotionkit_train.log"
    command = [
        sys.executable,
        __file__,
        "--child-cli",
        "train",
        str(args.recipe),
        *overrides,
        "--runs-dir",
        str(work / "runs"),
    ]
    env = {**child_env(args), "BENCH_TIMER_OUT": str(timer_file)}
    code, out, wall = run_logged(command, env, log, args.timeout_a)
    result: dict[str, Any] = {
        "command": "emotionkit train " + " ".join(command[4:]),
        "exit_code": code,
        "wall_s": round(wall, 1),
        "log": str(log),
    }
    if timer_file.is_file():
        timer = json.loads(timer_file.read_text())
        result.update(rates(timer, args.batch))
        result["tensorflow_imported"] = timer.get("tensorflow_imported")
        result["top_level_modules"] = timer.get("top_level_modules")
    lines = out.splitlines()
    printed = [m.groups() for m in map(EPOCH_LINE.match, lines) if m]
    result["printed_epochs"] = [
        {"epoch": int(e), "s": float(s), "img_s": int(r)} for e, s, r in printed
    ]
    result["printed"] = [
        line
        for line in lines
        if line.startswith(
            ("backend:", "augmentation:", "export deferred", "devices", "train:", "val:")
        )
    ]
    run_dir = Path(lines[-1].strip()) if lines else None
    if run_dir is not None and (run_dir / "manifest.json").is_file():
        manifest = json.loads((run_dir / "manifest.json").read_text())
        keys = ("status", "runtime", "devices", "augment_on", "export", "wall_seconds")
        result["manifest"] = {k: manifest.get(k) for k in keys}
        result["flops_per_image"] = json.loads((run_dir / "model.json").read_text())[
            "flops_per_image"
        ]
    if code != 0:
        result["error"] = f"exit {code}; the end of its output is in {log}"
    return result


def run_child(mode: str, spec: dict[str, Any], args: argparse.Namespace, work: Path) -> dict:
    """(b) or (c) in a child process; its RESULT line, or the error."""
    spec_file, log = work / f"{mode}_spec.json", args.log_dir / f"{mode}.log"
    spec_file.write_text(json.dumps(spec))
    python = args.torch_python if mode == "torch" else sys.executable
    command = [python, __file__, "--child", mode, "--spec", str(spec_file)]
    env = child_env(args)
    if mode == "torch":  # torch's own import checks must see the machine as it is
        env.pop("BENCH_BLOCK_TENSORFLOW", None)
        if not gpu_name():  # oneDNN's AVX-512 conv backward corrupts the heap on AVX-512 EPYC
            env = {**AVX2_CAP, **env}
    code, out, wall = run_logged(command, env, log, spec["timeout"])
    found = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if not found:
        return {"error": f"exit {code} after {wall:.0f} s; see {log}", "log": str(log)}
    return {**json.loads(found[-1][len("RESULT ") :]), "wall_s": round(wall, 1)}


def child_env(args: argparse.Namespace) -> dict[str, str]:
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if args.block_tensorflow:
        env["BENCH_BLOCK_TENSORFLOW"] = "1"
    return env


def run_logged(
    command: list[str], env: dict[str, str], log: Path, timeout: float
) -> tuple[int, str, float]:
    """Run, keep stdout+stderr in `log`; (exit code, stdout, seconds). 124 on timeout."""
    started = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=max(timeout, 1)
        )
        code, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as stopped:
        code = 124
        out = stopped.stdout.decode() if isinstance(stopped.stdout, bytes) else stopped.stdout or ""
        err = stopped.stderr.decode() if isinstance(stopped.stderr, bytes) else stopped.stderr or ""
    log.write_text(f"$ {' '.join(command)}\n--- stdout\n{out}\n--- stderr\n{err}\n")
    return code, out, time.perf_counter() - started


def gpu_name() -> str | None:
    """The first card's name from nvidia-smi, or None (no NVIDIA driver here)."""
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    names = done.stdout.strip().splitlines()
    return names[0].strip() if done.returncode == 0 and names else None


def peak_tflops(name: str | None, override: float | None) -> tuple[float | None, str]:
    if override:
        return override, "--peak-tflops"
    for key, peak in PEAK_BF16_TFLOPS if name else ():
        if key in name:
            return peak, f"PEAK_BF16_TFLOPS[{key!r}] (dense bf16, data sheet)"
    return None, "no GPU (MFU is null)" if name is None else f"{name!r} not in PEAK_BF16_TFLOPS"


def add_mfu(result: dict[str, Any], flops: int | None, peak: float | None) -> None:
    rate = result.get("steady_images_per_s")
    mfu = (
        TRAIN_FLOPS_PER_FORWARD * flops * rate / (peak * 1e12) if flops and peak and rate else None
    )
    result["mfu"] = round(mfu, 4) if mfu is not None else None


def torch_spec(recipe: Any, npz: str, args: argparse.Namespace) -> dict[str, Any] | str:
    """What (c) needs from the recipe, or why (c) cannot mirror its model."""
    from emotionkit.models.resnet import RESNET_STAGES

    model, optimizer = recipe.model, recipe.train.optimizer
    if (model.name, model.stem, model.version) != ("resnet", "cifar", "v1") or model.depth > 34:
        return "(c) mirrors only ResNet-18/34 v1 with the cifar stem"
    return {
        "npz": npz,
        "batch": recipe.data.batch_size,
        "width": model.width,
        "blocks": model.stage_blocks or RESNET_STAGES[model.depth][0],
        "dropout": model.dropout,
        "lr": optimizer.lr,
        "weight_decay": optimizer.weight_decay,
        "clip_norm": optimizer.clip_norm or 1e9,
        "ema": optimizer.ema or 0.0,
        "label_smoothing": recipe.train.loss.label_smoothing,
        "torch_warmup": args.torch_warmup,
        "torch_steps": args.torch_steps,
        "torch_compile_mode": args.torch_compile_mode,
        "timeout": args.timeout_c,
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"\ncard: {report['device']['name'] or 'none (CPU)'}; "
        f"peak: {report['device']['peak_source']}"
    )
    print(f"{'':<22}{'compile s':>10}{'img/s':>10}{'step ms':>10}{'MFU':>8}")
    for key, label in (
        ("emotionkit_train", "(a) emotionkit train"),
        ("keras_fit", "(b) Keras fit"),
        ("pytorch", "(c) PyTorch"),
    ):
        row = report.get(key, {})
        cells = [row.get(k) for k in ("compile_s", "steady_images_per_s", "steady_step_ms", "mfu")]
        print(
            f"{label:<22}"
            + "".join(f"{'-' if c is None else c:>10}" for c in cells[:3])
            + f"{'-' if cells[3] is None else cells[3]:>8}"
        )
        if "error" in row or "skipped" in row:
            print(f"  {row.get('error') or row.get('skipped')}")
    print(f"(a)/(b) {report['ratios']['a_over_b']}   (a)/(c) {report['ratios']['a_over_c']}")


def measure(args: argparse.Namespace, report: dict[str, Any], work: Path) -> None:
    """(a), (b), (c) in turn; the report is rewritten to `--out` after each."""
    from emotionkit.recipe import load_recipe

    data = prepare_npz(args.npz, args.rows, work)
    overrides = [
        f"data.source={{kind: npz, path: {data['path']}}}",
        "runtime.backend=jax",
        f"train.epochs={args.epochs}",
        *(QUICK_OVERRIDES if args.quick else []),
        *(["runtime.device=gpu"] if report["device"]["name"] else []),
        *args.overrides,
    ]
    recipe = load_recipe(args.recipe, overrides)  # a bad override fails here, before any run
    args.batch = recipe.data.batch_size
    report["setup"].update(data=data, overrides=overrides, batch=args.batch)
    peak = report["device"]["peak_bf16_tflops"]
    stages = (
        ("a", "emotionkit_train", lambda: run_emotionkit_train(args, overrides, work)),
        ("b", "keras_fit", lambda: keras_result(args, overrides, work)),
        ("c", "pytorch", lambda: pytorch_result(args, recipe, data["path"], work)),
    )
    for letter, key, run in stages:
        if letter not in args.only:
            continue
        print(f"{key} ...", flush=True)
        report[key] = run()
        flops = report.get("emotionkit_train", {}).get("flops_per_image") or report[key].get(
            "flops_per_image"
        )
        report["flops_per_image_forward"] = report.get("flops_per_image_forward") or flops
        add_mfu(report[key], report["flops_per_image_forward"], peak)
        report["ratios"] = {
            "a_over_b": _ratio(
                *(
                    report.get(k, {}).get("steady_images_per_s")
                    for k in ("emotionkit_train", "keras_fit")
                )
            ),
            "a_over_c": _ratio(
                *(
                    report.get(k, {}).get("steady_images_per_s")
                    for k in ("emotionkit_train", "pytorch")
                )
            ),
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n")


def keras_result(args: argparse.Namespace, overrides: list[str], work: Path) -> dict[str, Any]:
    spec = {
        "recipe": str(args.recipe),
        "overrides": overrides,
        "keras_epochs": args.keras_epochs,
        "timeout": args.timeout_b,
    }
    result = run_child("keras", spec, args, work)
    if "timer" in result:
        result.update(rates(result.pop("timer"), args.batch))
    return result


def pytorch_result(args: argparse.Namespace, recipe: Any, npz: str, work: Path) -> dict:
    if not torch_available(args.torch_python):
        return {"skipped": f"{args.torch_python} cannot import torch: (c) not measured"}
    spec = torch_spec(recipe, npz, args)
    return {"skipped": spec} if isinstance(spec, str) else run_child("torch", spec, args, work)


def parse_args() -> argparse.Namespace:
    """Full defaults are the GPU run (about 4-6 minutes on an H100); --quick is a CPU smoke run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("recipe", nargs="?", type=Path, help="e.g. recipes/fer2013_resnet18.yaml")
    add("overrides", nargs="*", help="recipe overrides, after the script's own")
    add("--npz", type=Path, help="the FER2013 npz (--make-npz writes one)")
    add(
        "--rows",
        type=int,
        default=FER2013_TRAIN_IMAGES,
        help="resize the npz to this many images (tile or subset); 0: as it is",
    )
    add("--epochs", type=int, default=6, help="(a)'s train.epochs: 1 compiles, the rest time")
    add("--keras-epochs", type=int, default=3, help="(b)'s timed epochs, after one to compile")
    add("--torch-warmup", type=int, default=20)
    add("--torch-steps", type=int, default=400)
    add("--torch-compile-mode", default="default")
    add("--torch-python", default=sys.executable, help="a Python with torch (default: this one)")
    add("--timeout-a", type=float, default=270.0, help="seconds for (a)")
    add("--timeout-b", type=float, default=120.0)
    add("--timeout-c", type=float, default=150.0)
    add("--peak-tflops", type=float, help="the card's dense bf16 peak, if not in the table")
    add("--only", nargs="+", choices="abc", default=list("abc"), help="measurements to run")
    add("--block-tensorflow", action="store_true", help="(a), (b) as on a JAX-only host")
    add("--quick", action="store_true", help="tiny model, 640 images, a few steps (CPU)")
    add("--out", type=Path, default=REPO / "benchmarks" / "results" / "gpu_main_job.json")
    add("--log-dir", type=Path, help="children's logs (default: next to --out)")
    add("--make-npz", type=Path, help="write the npz from --image-folder, then stop")
    add("--image-folder", type=Path, help="ROOT holding train/<class>/*.png")
    add("--fraction", type=float, default=0.5, help="--make-npz: stratified share kept")
    add("--child", choices=["keras", "torch"], help=argparse.SUPPRESS)
    add("--spec", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_intermixed_args()  # overrides may follow the options (the .sh's "$@")
    if args.quick:
        args.rows, args.epochs, args.keras_epochs = 640, 3, 2
        args.torch_warmup, args.torch_steps = 2, 6
        args.timeout_a, args.timeout_b, args.timeout_c = 600.0, 300.0, 600.0
    args.log_dir = args.log_dir or args.out.parent
    return args


def main() -> None:
    """A child mode, `--make-npz`, or the three measurements with a table and a JSON file."""
    if os.environ.get("BENCH_BLOCK_TENSORFLOW"):
        sys.meta_path.insert(0, NoTensorFlow())
    if sys.argv[1:2] == ["--child-cli"]:  # (a): the rest is `emotionkit`'s own command line
        return cli_child(sys.argv[2:])
    args = parse_args()
    if args.child:
        child = keras_child if args.child == "keras" else torch_child
        print("RESULT " + json.dumps(child(json.loads(args.spec.read_text()))), flush=True)
        return None
    if args.make_npz:
        if not args.image_folder:
            sys.exit("--make-npz needs --image-folder ROOT (ROOT/train/<class>/*.png)")
        print(json.dumps(make_npz(args.image_folder, args.make_npz, args.fraction)))
        return None
    if not args.npz or not args.recipe:
        sys.exit("give RECIPE and --npz FILE (write one with --make-npz FILE --image-folder ROOT)")
    name = gpu_name()
    peak, source = peak_tflops(name, args.peak_tflops)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "setup": {
            "recipe": str(args.recipe),
            "quick": args.quick,
            "epochs_a": args.epochs,
            "keras_epochs_b": args.keras_epochs,
            "torch_steps_c": args.torch_steps,
            "block_tensorflow": args.block_tensorflow,
        },
        "device": {"name": name, "peak_bf16_tflops": peak, "peak_source": source},
        "train_flops_per_forward": TRAIN_FLOPS_PER_FORWARD,
        "targets": {"a_over_b": 0.9, "a_over_c": 1.0},
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }
    with tempfile.TemporaryDirectory(prefix="gpu-main-job-") as work:
        measure(args, report, Path(work))
    print_table(report)
    print(f"wrote {args.out}")
    return None


if __name__ == "__main__":
    main()
