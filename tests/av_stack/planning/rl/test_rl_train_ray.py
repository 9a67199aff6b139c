"""``avsim train policy --ray``: the demonstration and DAgger shard groups recorded as Ray tasks on a local
two-worker cluster are the shards the local worker processes record (same groups, worker indices, seeds)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from av_stack.planning.rl.demos import ShardJob
from av_stack.planning.rl.train import _record_jobs, _record_round

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of two CPUs for this module."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _same_shard(a, b) -> None:
    with np.load(a) as x, np.load(b) as y:
        assert sorted(x.files) == sorted(y.files)
        for key in x.files:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


@pytest.fixture(scope="module")
def short_config(tiny_config):
    """The tiny config with 40-step episodes and shards."""
    env = {**tiny_config.env, "episode": {"max_steps": 40}}
    return tiny_config.model_copy(update={"env": env, "bc": tiny_config.bc.model_copy(update={"shard_steps": 40})})


def test_shards_recorded_on_ray_are_the_local_workers_shards(cluster, short_config, untrained_policy, tmp_path):
    tiny_config = short_config
    run = tmp_path / "run"
    paths = _record_round(run, tiny_config, 0, 80, None, workers=2, progress=None, ray="auto")
    dagger = _record_round(run, tiny_config, 1, 40, untrained_policy, workers=2, progress=None, ray="auto")
    assert [p.name for p in paths + dagger] == ["round0_0000.npz", "round0_0001.npz", "round1_0000.npz"]
    # What the process pool runs in worker w: _record_jobs on group w (round 0: one shard per worker).
    config_json = tiny_config.model_dump(mode="json")
    ref = tmp_path / "ref"
    for w, path in enumerate(paths):
        job = ShardJob(ref / path.name, 40, seed=tiny_config.seed * 100_003 + w, beta=1.0, noise=tiny_config.bc.noise)
        _record_jobs(config_json, [job], None, w)
        _same_shard(path, job.path)
    job = ShardJob(ref / dagger[0].name, 40, seed=tiny_config.seed * 100_003 + 1009, beta=tiny_config.bc.dagger_beta)
    _record_jobs(config_json, [job], str(untrained_policy), 0)
    _same_shard(dagger[0], job.path)
    logged = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [record["path"] for record in logged] == [str(p) for p in paths + dagger]
    assert not list((run / "demos").glob("*.part"))
