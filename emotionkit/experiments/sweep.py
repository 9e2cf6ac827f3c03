"""`emotionkit sweep`: run a sweep's points, each a normal run directory, and compare them.

The sweep folder (`sweeps/<name>` unless `--out`) holds one folder per point, named by its
swept overrides and a hash of its recipe and overrides; that folder is the point's
`--runs-dir`, so its run is `<point>/<recipe name>/<timestamp>/`. The folders are the
sweep's whole state: run the same command again and each point is looked up there, a
completed run is skipped, an interrupted, killed or failed one resumes
(`workflow.resume`), and a point with no run yet trains. `sweep.json` records the points,
their runs and what this invocation did with each; `compare.md`, `compare.csv` and
`compare.png` compare the completed runs over the swept keys.

Runs go one after another in this process by default; `jobs > 1` runs that many at once,
each as an `emotionkit train` child process logging to `<point>/train.log`.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from emotionkit.errors import EmotionkitError
from emotionkit.evaluate.compare import Comparison
from emotionkit.experiments.sweep_plan import SweepPlan, SweepPoint
from emotionkit.experiments.sweep_report import run_metric, write_sweep_report
from emotionkit.runs import RESUMABLE, write_json

SWEEP_JSON = "sweep.json"


@dataclass
class PointRun:
    """A sweep point, its folder and its run: what was found and what this sweep did."""

    point: SweepPoint
    folder: Path
    run_dir: Path | None = None
    status: str = "pending"
    action: str = "pending"
    """`skipped` (already completed), `resumed`, `trained` or `pending` (not reached)."""
    error: str | None = None

    def refresh(self) -> None:
        """Read the point's run back from its folder: the newest completed run, else the
        newest run with a manifest, else none (`pending`)."""
        found: list[tuple[Path, str]] = []
        for manifest in sorted(self.folder.glob("*/*/manifest.json"), key=lambda p: p.parent.name):
            with contextlib.suppress(OSError, ValueError):
                found.append((manifest.parent, json.loads(manifest.read_text())["status"]))
        completed = [run for run, status in found if status == "completed"]
        if completed:
            self.run_dir, self.status = completed[-1], "completed"
        elif found:
            self.run_dir, self.status = found[-1]
        else:
            self.run_dir, self.status = None, "pending"


@dataclass
class SweepResult:
    """Where the sweep is, each point's run, and the comparison of the completed ones."""

    sweep_dir: Path
    runs: list[PointRun]
    comparison: Comparison | None = None
    files: dict[str, str] = field(default_factory=dict)


def run_sweep(
    plan: SweepPlan,
    out: str | Path | None = None,
    *,
    jobs: int = 1,
    metric: str = "macro_f1",
    console: Console | None = None,
    callbacks: list[Any] | None = None,
) -> SweepResult:
    """Run (or finish) a sweep: skip completed points, resume interrupted ones, train the rest.

    Args:
        plan: the points (`plan_sweep`), already validated.
        out: the sweep folder; default `sweeps/<plan.name>`.
        jobs: runs at once; above 1, each run is an `emotionkit train` child process.
        metric: the validation metric the plot shows (a row of `emotionkit compare`).
        console: where progress goes (defaults to stdout).
        callbacks: extra Keras callbacks for in-process runs (`jobs=1`).

    Returns:
        The sweep folder, every point's run and the comparison of the completed runs.

    Raises:
        EmotionkitError: some runs failed (the others still ran; run again to retry them),
            or another sweep is using the folder.

    Example:
        >>> plan = plan_sweep("quickstart", ["model.width=0.125,0.25"])  # doctest: +SKIP
        >>> run_sweep(plan).sweep_dir  # doctest: +SKIP
        PosixPath('sweeps/quickstart')
    """
    console = console or Console()
    sweep_dir = Path(out) if out is not None else Path("sweeps") / plan.name
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(sweep_dir):
        runs = [_point_run(sweep_dir, point, plan.swept) for point in plan.points]
        result = SweepResult(sweep_dir, runs)
        todo = [run for run in runs if run.status != "completed"]
        for run in runs:
            run.action = "skipped" if run.status == "completed" else "pending"
        console.print(
            f"sweep {sweep_dir}: {len(runs)} runs, {len(runs) - len(todo)} already completed",
            highlight=False,
        )
        _write_state(result, plan, metric, "running")
        try:
            if jobs > 1:
                _run_children(todo, jobs, console, lambda: _write_state(result, plan, metric))
            else:
                for run in todo:
                    _run_here(run, console, callbacks)
                    _write_state(result, plan, metric)
        except KeyboardInterrupt:
            _write_state(result, plan, metric, "interrupted")
            console.print(
                "sweep interrupted: run the same command again to finish it", highlight=False
            )
            raise
        result.comparison, result.files = write_sweep_report(sweep_dir, runs, plan.swept, metric)
        failed = [run for run in runs if run.status != "completed"]
        _write_state(result, plan, metric, "failed" if failed else "completed")
    if failed:
        causes = "; ".join(f"{run.folder.name}: {run.error or run.status}" for run in failed)
        raise EmotionkitError(
            f"{len(failed)} of {len(runs)} sweep runs did not complete ({causes}); "
            "run the same command again to retry them."
        )
    return result


def _point_run(sweep_dir: Path, point: SweepPoint, swept: list[str]) -> PointRun:
    """The point's folder (found by its key if a sweep made it before) and its run."""
    existing = sorted(sweep_dir.glob(f"*-{point.key}"))
    folder = existing[0] if existing else sweep_dir / point.folder_name(swept)
    run = PointRun(point, folder)
    run.refresh()
    return run


def _run_here(run: PointRun, console: Console, callbacks: list[Any] | None) -> None:
    """Train or resume one point in this process; a failed run is recorded, not raised."""
    from emotionkit import workflow

    resuming = run.run_dir is not None and run.status in RESUMABLE
    run.action = "resumed" if resuming else "trained"
    console.rule(f"{'resuming' if resuming else 'training'} {run.folder.name}")
    try:
        if resuming:
            assert run.run_dir is not None
            workflow.resume(run.run_dir, console=console, callbacks=callbacks)
        else:
            run.folder.mkdir(parents=True, exist_ok=True)
            workflow.train(run.point.load(), run.folder, console=console, callbacks=callbacks)
        run.error = None
    except EmotionkitError as error:
        run.error = str(error).splitlines()[0]
        console.print(f"run failed: {run.error}", highlight=False, soft_wrap=True)
    finally:
        run.refresh()


def child_command(run: PointRun) -> list[str]:
    """The `emotionkit train` (or `train --resume`) command that runs a point on its own."""
    command = [sys.executable, "-m", "emotionkit", "train"]
    if run.run_dir is not None and run.status in RESUMABLE:
        return [*command, "--resume", str(run.run_dir)]
    return [*command, str(run.point.recipe), *run.point.overrides, "--runs-dir", str(run.folder)]


def _run_children(todo: list[PointRun], jobs: int, console: Console, saved: Any) -> None:
    """`jobs` child processes at a time; Ctrl-C or SIGTERM stops them all (as interrupted)."""
    live: set[subprocess.Popen[bytes]] = set()

    def run_child(run: PointRun) -> int:
        run.action = "resumed" if "--resume" in child_command(run) else "trained"
        run.folder.mkdir(parents=True, exist_ok=True)
        with (run.folder / "train.log").open("ab") as log:
            child = subprocess.Popen(child_command(run), stdout=log, stderr=subprocess.STDOUT)
            live.add(child)
            code = child.wait()
            live.discard(child)
        return code

    with _sigterm_as_interrupt(), ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_child, run): run for run in todo}
        try:
            for future in as_completed(futures):
                run = futures[future]
                code = future.result()
                run.refresh()
                run.error = None if code == 0 else _child_error(run, code)
                console.print(f"{run.folder.name}: {run.status}", highlight=False)
                saved()
        except KeyboardInterrupt:
            for future in futures:
                future.cancel()
            for child in list(live):
                child.terminate()  # SIGTERM: the child marks its run interrupted
            for child in list(live):
                child.wait()
            for run in futures.values():
                run.refresh()
            raise


def _child_error(run: PointRun, code: int) -> str:
    manifest: dict[str, Any] = {}
    if run.run_dir is not None:
        with contextlib.suppress(OSError, ValueError):
            manifest = json.loads((run.run_dir / "manifest.json").read_text())
    cause = manifest.get("error") or manifest.get("failure")
    return f"exit code {code}" + (f": {cause}" if cause else f", see {run.folder}/train.log")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _exclusive(sweep_dir: Path) -> Iterator[None]:
    """One `emotionkit sweep` per folder: two would resume the same run twice."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; the docs say one sweep per folder
        yield
        return
    with (sweep_dir / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EmotionkitError(
                f"{sweep_dir} is in use by another `emotionkit sweep`: wait for it to finish, "
                "or give this one another --out folder."
            ) from None
        yield


def _write_state(
    result: SweepResult, plan: SweepPlan, metric: str, status: str | None = None
) -> None:
    path = result.sweep_dir / SWEEP_JSON
    previous = json.loads(path.read_text()) if path.is_file() else {}
    write_json(
        path,
        {
            "name": plan.name,
            "status": status or previous.get("status", "running"),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "swept_keys": plan.swept,
            "metric": metric,
            "runs": [_run_record(run, result.sweep_dir, metric) for run in result.runs],
            "files": result.files,
        },
    )


def _run_record(run: PointRun, sweep_dir: Path, metric: str) -> dict[str, Any]:
    return {
        "folder": run.folder.name,
        "recipe": str(run.point.recipe),
        "overrides": list(run.point.overrides),
        "run_dir": str(run.run_dir.relative_to(sweep_dir)) if run.run_dir else None,
        "status": run.status,
        "action": run.action,
        "error": run.error,
        f"val_{metric}": run_metric(run.run_dir, metric) if run.status == "completed" else None,
    }
