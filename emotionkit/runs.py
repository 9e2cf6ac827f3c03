"""Run directories: a fresh folder per run (never overwritten) and its manifest."""

from __future__ import annotations

import datetime as dt
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

TRACKED_PACKAGES = (
    "emotionkit",
    "keras",
    "tensorflow",
    "jax",
    "jaxlib",
    "keras-cv",
    "tf2onnx",
    "onnx",
    "onnxruntime",
    "numpy",
    "pydantic",
)


def create_run_dir(runs_root: Path, name: str) -> Path:
    """Create `runs_root/name/<UTC timestamp>`, adding `-2`, `-3`... rather than reusing one."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H-%M-%S")
    parent = Path(runs_root) / name
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        candidate = parent / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"Could not create a fresh run directory under {parent}")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide a run's numbers."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in TRACKED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def git_commit(cwd: Path | None = None) -> str | None:
    """The current git commit (with `+dirty`), or None outside a repository."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty.strip() else "")


def write_json(path: Path, payload: Any) -> None:
    """Write JSON atomically (temporary file + rename)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    temporary.replace(path)


def update_manifest(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into `run_dir/manifest.json` and return the result."""
    path = run_dir / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {}
    manifest.update(fields)
    write_json(path, manifest)
    return manifest


RUN_DIR_FILE_ENV = "EMOTIONKIT_RUN_DIR_FILE"
"""A file the run directory's path is written to as soon as it exists: `emotionkit launch`
gives it to process 0, so that when a process is lost it can mark a run that nobody could
mark (a survivor stuck in a collective is killed) and print the command that resumes it."""


def announce_run_dir(run_dir: Path) -> None:
    """Write `run_dir` to `$EMOTIONKIT_RUN_DIR_FILE` when a launcher asked for it."""
    import os

    target = os.environ.get(RUN_DIR_FILE_ENV)
    if target:
        Path(target).write_text(str(Path(run_dir).resolve()))


RESUMABLE = ("running", "interrupted", "failed")
"""Statuses `train --resume` continues (`running` with no process left: killed)."""


def list_runs(root: Path) -> list[dict[str, Any]]:
    """Every run directory under `root` (`<name>/<timestamp>/manifest.json`), newest first.

    Each: `path`, `name`, `status`, `monitor` and its best `value` (from metrics.json, when
    the run got that far), `error`, and `resume`: the command that continues it, or None.
    """
    runs = []
    for manifest_path in Path(root).glob("*/*/manifest.json"):
        run_dir = manifest_path.parent
        manifest = json.loads(manifest_path.read_text())
        metrics_path = run_dir / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        monitor = metrics.get("monitor", "")
        status = str(manifest.get("status", "unknown"))
        runs.append(
            {
                "path": str(run_dir),
                "name": run_dir.parent.name,
                "status": status,
                "monitor": monitor,
                "value": metrics.get("val", {}).get(monitor.removeprefix("val_")),
                "error": manifest.get("error"),
                "resume": f"emotionkit train --resume {run_dir}" if status in RESUMABLE else None,
            }
        )
    return sorted(runs, key=lambda run: run["path"].rsplit("/", 1)[-1], reverse=True)
