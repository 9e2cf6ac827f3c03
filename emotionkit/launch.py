"""`emotionkit launch`: N emotionkit processes on this machine, wired as one multi-process job.

A launcher for tests and laptops (docs/distributed.md): every process gets the variables a
cluster launcher would set, pointing at free loopback ports, so that the multi-host code
paths (`jax.distributed` through `keras.distribution.initialize()`, TensorFlow's
`MultiWorkerMirroredStrategy`) run for real on one machine:

- JAX: `KERAS_DISTRIBUTION_JOB_ADDRESSES` (the coordinator, process 0),
  `KERAS_DISTRIBUTION_NUM_PROCESSES`, `KERAS_DISTRIBUTION_PROCESS_ID`;
- TensorFlow: `TF_CONFIG` with one worker per process on `127.0.0.1`.

Both sets are given to every process; the backend reads its own. Each line a process prints
is forwarded with a `[pN]` prefix. When one process fails (a non-zero exit or a signal),
one line names it and the others get SIGTERM, then SIGKILL after `grace_seconds`: a
collective whose peer died never returns, so no survivor is left waiting. Process 0 reports
its run directory (`EMOTIONKIT_RUN_DIR_FILE`), so a run left `running` by a killed survivor
is marked `interrupted` here, and the command that resumes it is printed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from emotionkit.distribution import TF_CPU_DEVICES_ENV
from emotionkit.errors import EmotionkitError
from emotionkit.runs import RUN_DIR_FILE_ENV, update_manifest

GRACE_SECONDS = 20.0
"""SIGTERM to SIGKILL: time for a survivor to mark its run `interrupted` (a process blocked in
a collective whose peer died does not run Python signal handlers, so it is killed)."""

_POLL_SECONDS = 0.2


def free_loopback_ports(count: int) -> list[int]:
    """`count` distinct TCP ports nobody listens on at 127.0.0.1 (the OS picks them)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def process_environments(
    processes: int, devices_per_process: int = 1, base: dict[str, str] | None = None
) -> list[dict[str, str]]:
    """The environment of each process of a loopback job (JAX and TensorFlow variables).

    Args:
        processes: how many processes (2 or more).
        devices_per_process: virtual CPU devices per process (JAX; TensorFlow's multi-worker
            strategy takes one CPU device per worker).
        base: the environment to extend (defaults to this process's).

    Example:
        >>> envs = process_environments(2)
        >>> envs[1]["KERAS_DISTRIBUTION_PROCESS_ID"]
        '1'
    """
    if processes < 2:
        raise EmotionkitError(f"--processes={processes}: a multi-process job needs 2 or more.")
    if devices_per_process < 1:
        raise EmotionkitError(f"--devices-per-process={devices_per_process}: use 1 or more.")
    ports = free_loopback_ports(processes)
    workers = [f"127.0.0.1:{port}" for port in ports]
    base = dict(os.environ if base is None else base)
    if devices_per_process > 1:
        flags = base.get("XLA_FLAGS", "")
        count = f"--xla_force_host_platform_device_count={devices_per_process}"
        base["XLA_FLAGS"] = f"{flags} {count}".strip()
        base[TF_CPU_DEVICES_ENV] = str(devices_per_process)
    base["PYTHONUNBUFFERED"] = "1"  # lines reach the prefixing thread as they are printed
    return [
        {
            **base,
            "KERAS_DISTRIBUTION_JOB_ADDRESSES": workers[0],
            "KERAS_DISTRIBUTION_NUM_PROCESSES": str(processes),
            "KERAS_DISTRIBUTION_PROCESS_ID": str(rank),
            "TF_CONFIG": json.dumps(
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": rank}}
            ),
        }
        for rank in range(processes)
    ]


def launch(
    arguments: Sequence[str],
    processes: int,
    devices_per_process: int = 1,
    grace_seconds: float = GRACE_SECONDS,
    out: IO[str] | None = None,
) -> int:
    """Run `emotionkit ARGUMENTS` in `processes` processes wired as one job; wait for all.

    Args:
        arguments: the emotionkit command of every process, e.g. `["train", "quickstart"]`.
        processes: how many processes.
        devices_per_process: virtual CPU devices per process.
        grace_seconds: SIGTERM to SIGKILL for the survivors once one process failed.
        out: where prefixed lines go (defaults to stdout).

    Returns:
        0 when every process succeeded, else the exit code of the first that failed
        (128 + N for a signal N, as a shell reports it).
    """
    if not arguments:
        raise EmotionkitError("Give the command to run: emotionkit launch -N 2 -- train RECIPE")
    out = out or sys.stdout
    lock = threading.Lock()
    children, readers = [], []
    environments = process_environments(processes, devices_per_process)
    run_dir_file = Path(tempfile.mkstemp(prefix="emotionkit-launch-", suffix=".txt")[1])
    environments[0][RUN_DIR_FILE_ENV] = str(run_dir_file)
    for rank, env in enumerate(environments):
        child = subprocess.Popen(
            [sys.executable, "-m", "emotionkit", *arguments],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        )  # fmt: skip
        children.append(child)
        reader = threading.Thread(target=_forward, args=(child.stdout, f"[p{rank}] ", out, lock))
        reader.start()
        readers.append(reader)
    with lock:
        pids = ", ".join(f"p{rank} pid {child.pid}" for rank, child in enumerate(children))
        out.write(f"launch: {processes} processes ({pids})\n")
        out.flush()
    try:
        code = _wait_all(children, grace_seconds, out, lock)
    except KeyboardInterrupt:  # Ctrl-C reached every child too (same process group)
        _stop(children, grace_seconds)
        code = 130
    for reader in readers:
        reader.join()
    if code:
        shape = f"--processes {processes}" + (
            f" --devices-per-process {devices_per_process}" if devices_per_process > 1 else ""
        )
        _mark_unfinished_run(run_dir_file, shape, out)
    run_dir_file.unlink(missing_ok=True)
    return code


def _mark_unfinished_run(run_dir_file: Path, shape: str, out: IO[str]) -> None:
    """After a failure: a run still `running` (its process 0 was killed before it could say
    otherwise) becomes `interrupted`; any unfinished run gets the line that resumes it."""
    text = run_dir_file.read_text().strip() if run_dir_file.is_file() else ""
    manifest_path = Path(text) / "manifest.json"
    if not text or not manifest_path.is_file():
        return  # it failed before a run directory existed
    run_dir = Path(text)
    status = json.loads(manifest_path.read_text()).get("status")
    if status == "running":
        update_manifest(run_dir, status="interrupted", error="a process of the job was lost")
        status = "interrupted"
    if status != "completed":
        command = f"emotionkit launch {shape} -- train --resume {run_dir}"
        out.write(f"launch: run {run_dir} is {status}; resume with `{command}`\n")
        out.flush()


def _forward(stream: IO[str] | None, prefix: str, out: IO[str], lock: threading.Lock) -> None:
    assert stream is not None
    for line in stream:
        with lock:
            out.write(prefix + line)
            out.flush()


def _wait_all(
    children: list[subprocess.Popen[str]], grace: float, out: IO[str], lock: threading.Lock
) -> int:
    """Wait for every child; on the first failure, name it and stop the rest."""
    while True:
        codes = [child.poll() for child in children]
        failed = [rank for rank, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            rank = failed[0]
            code = codes[rank]
            assert code is not None
            others = [child for child in children if child.poll() is None]
            with lock:
                out.write(
                    f"launch: process {rank} (pid {children[rank].pid}) {_how(code)}; "
                    f"stopping the other {len(others)} process(es)\n"
                )
                out.flush()
            _stop(others, grace)
            return 128 - code if code < 0 else code
        if all(code == 0 for code in codes):
            return 0
        time.sleep(_POLL_SECONDS)


def _how(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _stop(children: list[subprocess.Popen[str]], grace: float) -> None:
    """SIGTERM (runs mark themselves `interrupted`), then SIGKILL after `grace` seconds."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
