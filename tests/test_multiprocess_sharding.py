"""The pieces of a multi-process job that need no second process: the launcher's variables
and each process's share of a batch (tests/test_multiprocess.py runs real 2-process jobs)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from emotionkit.distribution import Distribution, this_process_share
from emotionkit.launch import _mark_unfinished_run, process_environments
from emotionkit.runs import RUN_DIR_FILE_ENV, announce_run_dir, update_manifest


def test_each_process_gets_the_variables_of_both_engines_on_loopback_ports() -> None:
    envs = process_environments(3, base={})
    addresses = {env["KERAS_DISTRIBUTION_JOB_ADDRESSES"] for env in envs}
    assert len(addresses) == 1 and addresses.pop().startswith("127.0.0.1:")
    assert [env["KERAS_DISTRIBUTION_PROCESS_ID"] for env in envs] == ["0", "1", "2"]
    configs = [json.loads(env["TF_CONFIG"]) for env in envs]
    workers = configs[0]["cluster"]["worker"]
    assert len(set(workers)) == 3 and all(w.startswith("127.0.0.1:") for w in workers)
    assert [config["task"]["index"] for config in configs] == [0, 1, 2]


def test_each_process_reads_a_disjoint_share_of_every_batch() -> None:
    import tensorflow as tf

    # A `map` after `batch`, as in the real pipeline, and a short last batch of 4 (36 = 32 + 4).
    batches = tf.data.Dataset.range(36).batch(32).map(lambda ids: (ids, ids * 10))
    shares = [
        list(this_process_share(batches, Distribution("data_parallel", "jax", ["a", "b"], 2, p)))
        for p in (0, 1)
    ]
    for step, (first, second) in enumerate(zip(*shares, strict=True)):
        ids = np.concatenate([first[0].numpy(), second[0].numpy()])
        # Disjoint halves, in rank order: together the global batch one process would read.
        assert ids.tolist() == list(range(32 * step, min(36, 32 * step + 32)))
        np.testing.assert_array_equal(first[1].numpy(), first[0].numpy() * 10)
    single = Distribution("data_parallel", "jax", ["a", "b"])
    assert this_process_share(batches, single) is batches
    workers = Distribution("data_parallel", "tensorflow", ["a"], 2, 1)
    assert this_process_share(batches, workers) is batches  # the strategy shards by itself


def test_a_run_left_running_by_a_lost_job_is_marked_interrupted_with_its_resume_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, report = tmp_path / "run", tmp_path / "run_dir.txt"
    run_dir.mkdir()
    update_manifest(run_dir, status="running")
    monkeypatch.setenv(RUN_DIR_FILE_ENV, str(report))
    announce_run_dir(run_dir)  # what process 0's `train` does once the directory exists
    out = io.StringIO()
    _mark_unfinished_run(report, "--processes 2", out)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "interrupted"
    assert out.getvalue() == (
        f"launch: run {run_dir} is interrupted; resume with "
        f"`emotionkit launch --processes 2 -- train --resume {run_dir}`\n"
    )
    update_manifest(run_dir, status="completed")
    _mark_unfinished_run(report, "--processes 2", out := io.StringIO())
    assert out.getvalue() == ""  # a finished run needs nothing
    _mark_unfinished_run(tmp_path / "never_written.txt", "--processes 2", out)
    assert out.getvalue() == ""  # the job failed before any run directory
