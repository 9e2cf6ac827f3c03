"""Multi-process data parallel on one machine: `emotionkit launch` wires 2 processes of 1 CPU
device each over loopback (JAX: `jax.distributed` through the KERAS_DISTRIBUTION_* variables;
TensorFlow: `MultiWorkerMirroredStrategy` through TF_CONFIG), the code path of a multi-host job.

Only the backend in KERAS_BACKEND is tested (nox runs both, in the `multihost` session: each
launch starts two processes that import the framework, which is too slow for `tests`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from emotionkit import load_recipe
from emotionkit.distribution import COORDINATOR_TIMEOUT_ENV
from emotionkit.launch import free_loopback_ports, process_environments
from emotionkit.workflow import resume, train
from tests.conftest import BACKEND, REPO
from tests.test_distributed import (
    DATA_PARALLEL,
    LOSS_RTOL,
    OVERRIDES,
    QUICKSTART,
    history,
    manifest,
)

# Two processes importing TensorFlow and compiling on a shared 2-core machine: ~45-75 s a
# launch measured; the limit leaves room for a loaded CI machine.
LAUNCH_TIMEOUT = 480
# A killed worker: the launcher sends SIGTERM at once and SIGKILL after GRACE_SECONDS (20 s);
# the rest is the poll interval and a loaded machine's slack.
KILL_STOP_SECONDS = 35


def launch(tmp_path: Path, *command: str, name: str = "launch") -> tuple[int, str]:
    """`emotionkit launch --processes 2 -- COMMAND`: exit code and the prefixed output."""
    log = tmp_path / f"{name}.log"
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "emotionkit", "launch", "--processes", "2", "--", *command],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=LAUNCH_TIMEOUT,
        )  # fmt: skip
    return done.returncode, log.read_text()


@pytest.mark.slow
def test_two_processes_train_like_one_write_one_run_and_their_backup_resumes(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "two"
    code, output = launch(
        tmp_path, "train", str(QUICKSTART), *OVERRIDES, DATA_PARALLEL, "--runs-dir", str(runs)
    )
    assert code == 0, output[-3000:]
    for rank in (0, 1):
        assert f"[p{rank}] distribution: data_parallel on 2 device(s); global batch 32" in output
    (run_dir,) = (runs / "quickstart").iterdir()  # exactly one run directory, process 0's
    plan = manifest(run_dir)["distribution"]
    assert isinstance(plan, dict)
    assert (plan["num_processes"], plan["num_devices"], plan["per_device_batch"]) == (2, 2, 16)
    assert manifest(run_dir)["status"] == "completed"
    (scratch,) = [line for line in output.splitlines() if "emotionkit-process1-" in line]
    assert not Path(scratch.removeprefix("[p1] ")).exists()  # process 1's copy is gone

    # The same global batch on one device, within the bound the virtual-device tests use.
    one = train(load_recipe(QUICKSTART, OVERRIDES), runs_dir=tmp_path / "one").run_dir
    two_rows, one_rows = history(run_dir), history(one)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(
            [row[key] for row in two_rows], [row[key] for row in one_rows], rtol=LOSS_RTOL
        )

    # Its epoch-1 backup resumes on one process, and on two, and ends where the run ended.
    shutil.rmtree(run_dir / "checkpoints" / "backups" / "epoch_0002")
    copies = {}
    for name in ("on_one", "on_two"):
        copies[name] = tmp_path / name / run_dir.name
        shutil.copytree(run_dir, copies[name])
        (copies[name] / "manifest.json").write_text(
            json.dumps({**manifest(run_dir), "status": "running"})
        )
    resume(copies["on_one"])
    code, output = launch(tmp_path, "train", "--resume", str(copies["on_two"]), name="resume")
    assert code == 0, output[-3000:]
    assert "[p0] resuming after epoch 1" in output and "[p1] resuming after epoch 1" in output
    for name, processes in (("on_one", 1), ("on_two", 2)):
        resumed = manifest(copies[name])
        assert resumed["status"] == "completed" and resumed["resumed"] == 1
        assert isinstance(resumed["distribution"], dict)
        assert resumed["distribution"]["num_processes"] == processes
        rows = history(copies[name])
        assert [row["epoch"] for row in rows] == [0, 1]
        np.testing.assert_allclose(rows[1]["loss"], two_rows[1]["loss"], rtol=LOSS_RTOL)


@pytest.mark.slow
def test_a_batch_that_does_not_split_over_all_processes_exits_2_before_writing(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    code, output = launch(
        tmp_path, "train", str(QUICKSTART), *OVERRIDES, DATA_PARALLEL, "data.batch_size=33",
        "--runs-dir", str(runs),
    )  # fmt: skip
    assert code == 2, output[-3000:]
    assert "data.batch_size=33 is the global batch" in output
    assert "launch: process" in output and "exited with code 2" in output
    assert not runs.exists()


def test_a_coordinator_nobody_listens_on_exits_2_naming_the_variable(tmp_path: Path) -> None:
    (port,) = free_loopback_ports(1)
    env = {
        **process_environments(2)[1],
        "KERAS_BACKEND": BACKEND,
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{port}",
        "TF_CONFIG": json.dumps(
            {"cluster": {"worker": [f"127.0.0.1:{port}", "127.0.0.1:1"]}, "task": {"index": 1}}
        ),
        COORDINATOR_TIMEOUT_ENV: "3",
    }
    done = subprocess.run(
        [sys.executable, "-m", "emotionkit", "train", str(QUICKSTART), *OVERRIDES,
         DATA_PARALLEL, "--runs-dir", str(tmp_path / "runs")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    variable = "KERAS_DISTRIBUTION_JOB_ADDRESSES" if BACKEND == "jax" else "TF_CONFIG"
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"{variable}: no coordinator listened at 127.0.0.1:{port} within 3 s" in done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_killed_worker_stops_the_job_and_the_run_resumes(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    longer = ["data.source={kind: synthetic, train_size: 256, val_size: 36, test_size: 0}"]
    command = [
        sys.executable, "-m", "emotionkit", "launch", "--processes", "2", "--",
        "train", str(QUICKSTART), *OVERRIDES, *longer, "train.epochs=3", DATA_PARALLEL,
        "--runs-dir", str(runs),
    ]  # fmt: skip
    job = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert job.stdout is not None
    lines, killed_at = [], 0.0
    try:
        for line in job.stdout:
            lines.append(line)
            if line.startswith("launch: 2 processes"):
                pid = int(line.split("p1 pid ")[1].rstrip(")\n"))
            if line.startswith("[p0] epoch 1/3"):  # epoch 2 of 8 steps is under way
                os.kill(pid, signal.SIGKILL)
                killed_at = time.monotonic()
        job.wait(timeout=LAUNCH_TIMEOUT)
    finally:
        job.kill()
        job.stdout.close()
    stopped_after = time.monotonic() - killed_at
    output = "".join(lines)
    assert killed_at, output[-3000:]
    lost = [line for line in lines if line.startswith("launch: process")]
    assert lost == [f"launch: process 1 (pid {pid}) was killed by SIGKILL; stopping the other "
                    "1 process(es)\n"], output[-3000:]  # fmt: skip
    assert job.returncode == 128 + signal.SIGKILL
    assert stopped_after < KILL_STOP_SECONDS, output[-3000:]
    (run_dir,) = (runs / "quickstart").iterdir()
    status = manifest(run_dir)["status"]
    assert status in ("failed", "interrupted"), output[-3000:]
    resume_line = (
        f"launch: run {run_dir.resolve()} is {status}; resume with "
        f"`emotionkit launch --processes 2 -- train --resume {run_dir.resolve()}`\n"
    )
    assert lines[-1] == resume_line, output[-3000:]

    code, output = launch(tmp_path, "train", "--resume", str(run_dir), name="resume")
    assert code == 0, output[-3000:]
    assert manifest(run_dir)["status"] == "completed"
    assert [row["epoch"] for row in history(run_dir)] == [0, 1, 2]


def slurm_job_id_with_a_free_port() -> int:
    """A SLURM job id whose JAX coordinator port (61440 + id % 4096) is free here."""
    for job_id in range(4096):
        port = 61440 + job_id % 4096
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return job_id
    raise AssertionError("no free port in 61440-65535")


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "jax", reason="JAX reads SLURM's variables; TF needs TF_CONFIG")
def test_a_slurm_job_step_trains_from_the_variables_srun_sets(tmp_path: Path) -> None:
    """The SLURM recipe of docs/distributed.md on one machine: each process gets only what
    `srun` sets (no KERAS_DISTRIBUTION_*), and JAX finds the coordinator and ranks there."""
    job_id, runs = slurm_job_id_with_a_free_port(), tmp_path / "runs"
    slurm = {
        "SLURM_JOB_ID": str(job_id), "SLURM_NTASKS": "2", "SLURM_STEP_NUM_NODES": "1",
        "SLURM_STEP_NODELIST": "localhost", "KERAS_BACKEND": BACKEND, "PYTHONUNBUFFERED": "1",
    }  # fmt: skip
    base = {k: v for k, v in os.environ.items() if not k.startswith("KERAS_DISTRIBUTION_")}
    command = [
        sys.executable, "-m", "emotionkit", "train", str(QUICKSTART), *OVERRIDES,
        DATA_PARALLEL, "--runs-dir", str(runs),
    ]  # fmt: skip
    logs = [tmp_path / f"task{rank}.log" for rank in (0, 1)]
    tasks = []
    for rank, log in enumerate(logs):
        env = {**base, **slurm, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank)}
        with log.open("w") as out:
            tasks.append(
                subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
            )
    try:
        codes = [task.wait(timeout=LAUNCH_TIMEOUT) for task in tasks]
    finally:
        for task in tasks:
            task.kill()
    output = "\n".join(log.read_text() for log in logs)
    assert codes == [0, 0], output[-3000:]
    (run_dir,) = (runs / "quickstart").iterdir()
    plan = manifest(run_dir)["distribution"]
    assert isinstance(plan, dict) and plan["num_processes"] == 2
    assert manifest(run_dir)["status"] == "completed"
