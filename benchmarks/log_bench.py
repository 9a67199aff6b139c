"""What recording costs: frames per second of a stack run with and without the run log, and the log's size.

    avsim bench log [--map Town01] [--ticks 1200] [--sensors-every 4] [--json]
    python -m benchmarks.log_bench ...

Setting: the oracle stack (oracle perception and localization, the expert,
Stanley) drives the shipped route set of the map on the embedded simulator
with the default sensor suite (configs/sensors/default.yaml: RGB, depth and
semantic cameras, a 32-channel LiDAR, radar, GNSS, IMU), BEV and ground-truth
observations, ``--vehicles`` NPCs and ``--walkers`` pedestrians, for
``--ticks`` ticks (1200 = 60 s of simulated time at 20 Hz) after 20 warm-up
ticks. The same run (same seed, so the same ticks) is driven in one process
without a log (the reference) and with
:class:`av_stack.logs.recorder.RunRecorder` writing ``run.mcap`` with
``record.sensors_every``, alternately, ``--repeats`` times each. Reported: both frame rates and
their ratio, the recorder's own time per tick (timed around its observer
hook: encoding, compression, writing), and the log's size, also scaled to
60 s of simulated time. ``--json`` prints one JSON object last (fields
``fps_without_log``, ``fps_with_log``, ``fps_ratio``, ``recording_share``,
``recorder_ms_per_tick``, ``log_mb``, ``mb_per_60s``, ``ticks``,
``sensors_every``, ``machine``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from statistics import fmean
from typing import Any

from av_stack.bridge import StackAgent
from av_stack.logs.config import RecordConfig
from av_stack.logs.recorder import RunRecorder
from av_stack.runner import Observer, RouteLog, drive, make_env
from av_stack.stack import Stack, load_stack_config
from benchmarks.world_bench import BenchError

SUITE = "sensors/default.yaml"
WARMUP_TICKS = 20
"""Ticks driven before the clock starts (one-time costs of a fresh env: scene build, first raycasts)."""


class _Enough(Exception):
    """Raised by :class:`_TickLimit` to end the drive after the measured ticks."""


class _TickLimit(Observer):
    """Ends the drive after ``warmup + ticks`` ticks; notes the clock and the recorder's time at the warm-up's end."""

    def __init__(self, ticks: int, warmup: int, recorder: _TimedRecorder | None) -> None:
        self.ticks, self.warmup, self.recorder, self.seen = ticks, warmup, recorder, 0
        self.started = time.perf_counter()
        self.recorder_at_start = 0.0

    def tick(self, tick) -> None:
        self.seen += 1
        if self.seen == self.warmup:
            self.started = time.perf_counter()
            self.recorder_at_start = self.recorder.seconds if self.recorder else 0.0
        if self.seen >= self.warmup + self.ticks:
            raise _Enough


class _TimedRecorder(Observer):
    """A :class:`RunRecorder` whose hooks are timed."""

    def __init__(self, recorder: RunRecorder) -> None:
        self.recorder, self.seconds = recorder, 0.0

    def route_started(self, index, route_id, env) -> None:
        start = time.perf_counter()
        self.recorder.route_started(index, route_id, env)
        self.seconds += time.perf_counter() - start

    def tick(self, tick) -> None:
        start = time.perf_counter()
        self.recorder.tick(tick)
        self.seconds += time.perf_counter() - start


def _drive_once(config, ticks: int, warmup: int, seed: int, log_path: Path | None, record: RecordConfig
                ) -> tuple[float, float, int]:
    """(wall s of the measured ticks, recorder s in them, measured ticks)."""
    stack_config = load_stack_config(config)
    stack = Stack.from_config(stack_config)
    env = make_env(stack_config, label="log bench")
    try:
        agent = StackAgent(stack)
        timed = None
        if log_path is not None:
            timed = _TimedRecorder(RunRecorder(log_path, env, agent, stack_config.model_dump(mode="json"), record))
        limit = _TickLimit(ticks, warmup, timed)
        observers: list[Observer] = [limit] if timed is None else [timed, limit]
        try:
            drive(env, agent, None, seed, observers, RouteLog())
        except _Enough:
            pass
        finally:
            if timed is not None:
                close_start = time.perf_counter()
                timed.recorder.close()
                timed.seconds += time.perf_counter() - close_start
        wall = time.perf_counter() - limit.started
        recorder_s = (timed.seconds - limit.recorder_at_start) if timed else 0.0
        return wall, recorder_s, limit.seen - warmup
    finally:
        env.close()


def run_log_bench(map_name: str = "Town01", vehicles: int = 20, walkers: int = 10, ticks: int = 1200,
                  sensors_every: int = RecordConfig().sensors_every, seed: int = 0, repeats: int = 2
                  ) -> dict[str, Any]:
    """See the module docstring."""
    if ticks < 20:
        raise BenchError("--ticks must be at least 20")
    route_files = {"Town01": "configs/routes/town01.yaml", "Town02": "configs/routes/town02.yaml",
                   "Town10HD": "configs/routes/town10hd.yaml"}
    if map_name not in route_files:
        raise BenchError(f"--map must be a town with a shipped route set ({', '.join(route_files)}), not {map_name!r}")
    config = {"env": {"base": "env/leaderboard_town01.yaml", "world": {"map": map_name},
                      "routes": {"file": route_files[map_name]}, "traffic": {"vehicles": vehicles, "walkers": walkers},
                      "action": {"mode": "vehicle_control"}, "sensors": SUITE,
                      "observation": {"modes": ["sensors", "bev"], "ground_truth": True}},
              "run": {"video": False}}
    record = RecordConfig(sensors_every=sensors_every)
    walls_without, walls_with, recorder_s, sizes = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="avsim-log-bench-") as scratch:
        for repeat in range(repeats):  # alternate, so drifts of a shared machine hit both alike
            wall, _, driven = _drive_once(config, ticks, WARMUP_TICKS, seed, None, record)
            walls_without.append(wall)
            log_path = Path(scratch) / f"run{repeat}.mcap"
            wall, recorded_s, driven_with = _drive_once(config, ticks, WARMUP_TICKS, seed, log_path, record)
            walls_with.append(wall)
            recorder_s.append(recorded_s)
            sizes.append(log_path.stat().st_size)
            if driven_with != driven:
                raise BenchError(f"the two runs drove {driven} and {driven_with} ticks: not the same run")
    dt_s = 0.05
    wall_without, wall_with = fmean(walls_without), fmean(walls_with)
    size = fmean(sizes)
    fps_without, fps_with = driven / wall_without, driven / wall_with
    return {
        "map": map_name, "ticks": driven, "sensors_every": sensors_every, "vehicles": vehicles, "walkers": walkers,
        "fps_without_log": round(fps_without, 2), "fps_with_log": round(fps_with, 2),
        "fps_ratio": round(fps_with / fps_without, 3),
        "recording_share": round(fmean(recorder_s) / wall_with, 3),
        "recorder_ms_per_tick": round(fmean(recorder_s) / driven * 1e3, 2),
        "log_mb": round(size / 1e6, 2), "mb_per_60s": round(size / 1e6 * 60.0 / ((driven + WARMUP_TICKS) * dt_s), 1),
        "repeats": repeats, "warmup_ticks": WARMUP_TICKS,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
    }


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", default="Town01")
    parser.add_argument("--vehicles", type=int, default=20)
    parser.add_argument("--walkers", type=int, default=10)
    parser.add_argument("--ticks", type=int, default=1200)
    parser.add_argument("--sensors-every", type=int, default=RecordConfig().sensors_every)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run_log_bench(args.map, args.vehicles, args.walkers, args.ticks, args.sensors_every, args.seed,
                           args.repeats)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['fps_without_log']} FPS without the log, {result['fps_with_log']} with "
              f"(ratio {result['fps_ratio']}); recording {100 * result['recording_share']:.1f} % of the run; "
              f"{result['mb_per_60s']} MB per 60 s")


if __name__ == "__main__":
    main()
