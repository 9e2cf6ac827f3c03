"""Startup benchmark: how long a user waits before emotionkit does something.

Measures, each as the median wall time of several fresh processes (the OS page cache is warm
after the first run, as it is for a user who runs a command twice):

- `emotionkit --help`, `emotionkit recipe show recipes/quickstart.yaml` and
  `emotionkit predict --help`: process start to exit, through the installed console script.
  These import no framework (STYLE.md habit 3), so they show the cost of Python, Typer, Rich
  and pydantic alone.
- time to the first training step, per Keras backend: a child process runs
  `emotionkit.train` on the quickstart recipe shrunk to a tiny model (the tests' overrides)
  with one extra Keras callback. When the first training batch ends, the callback reads the
  batch loss (which waits for the step's device work to finish), prints the seconds elapsed
  since the parent started the child, and ends the process with `os._exit` so no time goes
  on the rest of training or export. The figure covers interpreter start, imports (Keras,
  TensorFlow, JAX), recipe validation, run-directory setup, data generation, model build,
  the `tf.data` pipeline, the XLA/tf.function compile of the train step and one step.

Run from the repository root:
    python benchmarks/startup.py                 # 5 runs per command, 3 per backend
    python benchmarks/startup.py --quick         # 1 run each, for smoke use
Writes benchmarks/results/startup.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "startup.json"
QUICKSTART = "recipes/quickstart.yaml"
CLI_COMMANDS = {
    "emotionkit --help": ["--help"],
    f"emotionkit recipe show {QUICKSTART}": ["recipe", "show", QUICKSTART],
    "emotionkit predict --help": ["predict", "--help"],
}
BACKENDS = ("tensorflow", "jax")
# The tests' tiny run (tests/conftest.py): the step itself is milliseconds, so the figure is
# the fixed cost of getting to it, not the model's compute.
TINY_OVERRIDES = [
    "data.source={kind: synthetic, train_size: 280, val_size: 70, test_size: 0}",
    "data.image_size=32",
    "data.batch_size=32",
    "model.width=0.125",
    "model.stage_blocks=[1, 1, 1, 1]",
    "train.epochs=1",
    "train.schedule.warmup_epochs=0",
]
# Runs in the child: the parent's start time arrives in the environment, and the callback
# prints one JSON line and exits the process at the end of the first batch.
FIRST_STEP_CHILD = """
import json, os, sys, time
from emotionkit.runtime import apply_tensorflow_workarounds

apply_tensorflow_workarounds()  # before Keras imports TensorFlow, as emotionkit.train would
import keras  # KERAS_BACKEND is the recipe's backend, so train() accepts this import
import emotionkit

T0 = float(os.environ["EMOTIONKIT_BENCH_T0"])

class FirstStep(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        float((logs or {}).get("loss", 0.0))  # waits for the step's device work
        print(json.dumps({"first_step_s": time.time() - T0}), flush=True)
        os._exit(0)

recipe = emotionkit.load_recipe(sys.argv[1], sys.argv[3:])
emotionkit.train(recipe, runs_dir=sys.argv[2], callbacks=[FirstStep()])
"""


def emotionkit_command() -> list[str]:
    """The installed console script (what users run); `python -m emotionkit` without one."""
    script = Path(sys.executable).with_name("emotionkit")
    if script.exists():
        return [str(script)]
    found = shutil.which("emotionkit")
    return [found] if found else [sys.executable, "-m", "emotionkit"]


def time_command(argv: list[str], runs: int) -> list[float]:
    """Wall seconds of `runs` fresh processes of `argv`; a failing command stops the benchmark."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, cwd=REPO, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def time_first_step(backend: str, runs: int) -> list[float]:
    """Seconds from starting a child process to the end of its first training batch."""
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="emotionkit-startup-") as runs_dir:
            env = {**os.environ, "KERAS_BACKEND": backend, "EMOTIONKIT_BENCH_T0": ""}
            overrides = [*TINY_OVERRIDES, f"runtime.backend={backend}"]
            argv = [sys.executable, "-c", FIRST_STEP_CHILD, QUICKSTART, runs_dir, *overrides]
            env["EMOTIONKIT_BENCH_T0"] = repr(time.time())
            result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
        lines = [line for line in result.stdout.splitlines() if line.startswith('{"first_step_s"')]
        if not lines:
            raise RuntimeError(
                f"{backend}: no first step (exit {result.returncode}):\n{result.stderr[-2000:]}"
            )
        times.append(json.loads(lines[-1])["first_step_s"])
    return times


def machine() -> dict[str, Any]:
    """What the figures were measured on; the load average says whether the cores were shared."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def summarise(name: str, times: list[float]) -> dict[str, Any]:
    """Median, min and max of one measurement, rounded to milliseconds."""
    return {
        "name": name,
        "runs": len(times),
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
        "all_s": [round(t, 3) for t in times],
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    """One line per measurement, medians first."""
    width = max(len(row["name"]) for row in rows)
    print(f"{'measurement':<{width}}  {'median':>8}  {'min':>7}  {'max':>7}  runs")
    for row in rows:
        print(
            f"{row['name']:<{width}}  {row['median_s']:>7.2f}s  {row['min_s']:>6.2f}s  "
            f"{row['max_s']:>6.2f}s  {row['runs']}"
        )


def main() -> None:
    """Time the CLI commands, then the first training step per backend; save and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run of each measurement")
    parser.add_argument("--runs", type=int, default=5, help="processes per CLI command")
    parser.add_argument("--train-runs", type=int, default=3, help="processes per backend")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    runs, train_runs = (1, 1) if args.quick else (args.runs, args.train_runs)
    info = machine()
    rows = []
    for name, cli_args in CLI_COMMANDS.items():
        rows.append(summarise(name, time_command([*emotionkit_command(), *cli_args], runs)))
    for backend in args.backends:
        times = time_first_step(backend, train_runs)
        rows.append(summarise(f"first training step ({backend}, tiny quickstart)", times))
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": info, "results": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
