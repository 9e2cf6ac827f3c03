"""The pieces of a multi-process job that need no second process: the launcher's variables
and each process's share of a batch (tests/test_multiprocess.py runs real 2-process jobs)."""

from __future__ import annotations

import json

import numpy as np

from emotionkit.distribution import Distribution, this_process_share
from emotionkit.launch import process_environments


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
