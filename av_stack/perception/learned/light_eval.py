"""Score the governing light alone, per route-distance bin, on a collected dataset:

    python -m av_stack.perception.learned.light_eval --data data/perception --split test --json

The truth is the rule of the perception evaluation: the governing light's state when its route distance is
at most ``range_m``, else none. Methods: ``learned`` (:class:`~av_stack.perception.learned.light.
LightReader` with a light checkpoint) and ``classical`` (the colour thresholds of
:class:`~av_stack.perception.classical.ClassicalPerception` with ``light_range_m = range_m``), each fed the
frames as the evaluation feeds a stage (reset with each logged route's mission). ``gnss_noise_m`` corrupts
the GNSS fixes as ``avsim eval localization`` does. The result has the accuracy overall and per bin of the
true distance (0-5, 5-10, 10-20, 20-30, 30-40, 40-60 m, farther or none), ms per frame of the light path, and for
the learned reader how each answer came about (overall and per bin) (read from the patch, held from an earlier reading, the light
never read and out of view) and which camera each reading came from. ``cameras`` (``--cameras
front_rgb,light_rgb``) is the reader's camera option (default: the checkpoint's camera, then ``light_rgb``
where the frames have it; ``--cameras front_rgb`` reads the front camera alone). ``--visibility SUITE``
measures geometry only (:func:`evaluate_visibility`): how often each camera of a sensor suite would have the
governing light in view, on logs that need not have recorded those cameras.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

BINS = ((0.0, 5.0), (5.0, 10.0), (10.0, 20.0), (20.0, 30.0), (30.0, 40.0), (40.0, 60.0))


def _bin(distance_m: float) -> str:
    for lo, hi in BINS:
        if lo <= distance_m < hi:
            return f"{lo:.0f}-{hi:.0f}m"
    return "farther_or_none"


def _name(state) -> str:
    return "none" if state is None else state.name.lower()


def evaluate_light(method: str, data: str | Path, split: str | None = "test", range_m: float = 40.0,
                   checkpoint: str | None = None, gnss_noise_m: float = 0.0, seed: int = 0,
                   max_frames: int | None = None, cameras: tuple[str, ...] | None = None,
                   confirm_frames: int = 2) -> dict[str, Any]:
    """The scores of ``method`` (``learned`` or ``classical``) on ``data`` (module docstring); ``confirm_frames``
    is the learned reader's option (1: every confident reading replaces the held state at once)."""
    from av_stack.data.manifest import DatasetError, read_manifest
    from av_stack.logs import topics as T
    from av_stack.logs.reader import LogReader
    from av_stack.replay.logged import ReplayError, log_map, mission_of

    root = Path(data)
    logs = [entry for entry in read_manifest(root)["logs"] if split is None or entry["split"] == split]
    if not logs:
        raise DatasetError(f"dataset {root} has no {split or ''} logs")
    if method == "learned":
        from av_stack.perception.learned.light import LightReader
        from av_stack.perception.learned.stage import DEFAULT_LIGHT_CHECKPOINT
        from av_stack.shipped import shipped_file

        reader = LightReader.from_checkpoint(shipped_file(checkpoint or DEFAULT_LIGHT_CHECKPOINT), range_m=range_m,
                                             cameras=cameras, confirm_frames=confirm_frames)
        reset, read = reader.reset, reader
    elif method == "classical":
        from av_stack.perception.classical import ClassicalPerception

        stage = ClassicalPerception(ClassicalPerception.Config(light_range_m=range_m))
        reset = stage.reset

        def read(frame):
            return stage._light(frame, stage._pose(frame))
    else:
        raise ValueError(f"method must be learned or classical, not {method!r}")
    rng = np.random.default_rng(seed)
    right, total = Counter(), Counter()
    sources: dict[str, Counter] = defaultdict(Counter)
    read_by: dict[str, Counter] = defaultdict(Counter)
    confusion: Counter = Counter()
    binned: dict[str, Counter] = defaultdict(Counter)
    seconds, frames = 0.0, 0
    for entry in logs:
        log = LogReader(root / entry["file"])
        the_map = log_map(log)
        for logged in log.frames():
            episode = logged.messages.get(T.EPISODE)
            if episode is not None:
                try:
                    reset(mission_of(log, the_map, episode, logged.messages.get(T.GT_WORLD)))
                except ReplayError:
                    reset(None)
            if not logged.has_sensor_data or logged.sensor_frame.ground_truth is None:
                continue
            frame = logged.sensor_frame
            if gnss_noise_m > 0:
                from av_stack.localization.evaluate import inject_gnss_noise

                frame = inject_gnss_noise(frame, rng, gnss_noise_m, 0.0)
            start = time.perf_counter()
            observed = read(frame)
            seconds += time.perf_counter() - start
            frames += 1
            light = frame.ground_truth.light
            truth = light.state if light.distance_m <= range_m else None
            ok = observed.state == truth
            key = _bin(light.distance_m if light.state is not None else math.inf)
            right[key] += ok
            total[key] += 1
            confusion[f"{_name(truth)}->{_name(observed.state)}"] += 1
            binned[key][f"{_name(truth)}->{_name(observed.state)}"] += 1
            if method == "learned" and truth is not None:
                sources[reader.source]["frames"] += 1
                sources[reader.source]["right"] += ok
                if reader.source == "read":
                    read_by[f"{reader.camera}:{key}"]["frames"] += 1
                    read_by[f"{reader.camera}:{key}"]["right"] += ok
                sources[f"{reader.source}:{key}"]["frames"] += 1
                sources[f"{reader.source}:{key}"]["right"] += ok
            if max_frames is not None and frames >= max_frames:
                break
        if max_frames is not None and frames >= max_frames:
            break
    order = [f"{lo:.0f}-{hi:.0f}m" for lo, hi in BINS] + ["farther_or_none"]
    return {"method": method, "split": split or "all", "range_m": range_m, "gnss_noise_m": gnss_noise_m,
            "frames": frames, "accuracy": round(sum(right.values()) / max(frames, 1), 4),
            "by_distance": {k: {"frames": total[k], "accuracy": round(right[k] / total[k], 4),
                                "confusion": dict(sorted(binned[k].items()))} for k in order if total[k]},
            "by_source": {k: {"frames": v["frames"], "accuracy": round(v["right"] / v["frames"], 4)}
                          for k, v in sorted(sources.items())},
            "read_by_camera": {k: {"frames": v["frames"], "accuracy": round(v["right"] / v["frames"], 4)}
                               for k, v in sorted(read_by.items())},
            "confusion": dict(sorted(confusion.items())),
            "ms_per_frame": round(1e3 * seconds / max(frames, 1), 3)}


VISIBILITY_BINS = ((0.0, 5.0), (5.0, 10.0), (10.0, 20.0), (20.0, 40.0))


def evaluate_visibility(data: str | Path, split: str | None = "test", suite: str = "configs/sensors/default.yaml",
                        cameras: tuple[str, ...] = ("front_rgb", "light_rgb"), range_m: float = 40.0
                        ) -> dict[str, Any]:
    """Geometry only, no image decoded: on the frames of ``data`` whose governing light is 0-40 m ahead along the
    route (the locator's light agreeing with the ground truth's), the share whose window is in view, per
    route-distance bin, for each camera of ``suite`` alone and for the reader on ``cameras`` (the cameras'
    mounts and intrinsics are the suite's, whatever the logs recorded); ``stopped``: those frames with the ego
    standing (under 0.3 m/s) within 10 m of the line."""
    import math as _math

    from av_stack.bridge import calibration_of
    from av_stack.data.manifest import DatasetError, read_manifest
    from av_stack.logs import topics as T
    from av_stack.logs.reader import LogReader, ego_signals, ground_truth
    from av_stack.messages import SensorFrame
    from av_stack.perception.learned.light import LightConfig, LightReader, light_net
    from av_stack.replay.logged import ReplayError, log_map, mission_of
    from sim.sensors.suite import load_suite

    root = Path(data)
    logs = [entry for entry in read_manifest(root)["logs"] if split is None or entry["split"] == split]
    if not logs:
        raise DatasetError(f"dataset {root} has no {split or ''} logs")
    calibration = calibration_of(load_suite(suite))
    missing = [c for c in cameras if c not in calibration or calibration[c].intrinsics is None]
    if missing:
        raise ValueError(f"{missing[0]!r} is not a camera of {suite}")
    config = LightConfig()
    readers = {name: LightReader(light_net(config), config, range_m, cameras=(name,)) for name in cameras}
    readers["+".join(cameras)] = LightReader(light_net(config), config, range_m, cameras=cameras)
    placeholder = {name: np.zeros((1, 1, 3), np.uint8) for name in cameras}  # "the frame has the camera"
    counts: dict[str, Counter] = defaultdict(Counter)
    wanted = [T.EPISODE, T.GT_WORLD, T.EGO_SIGNALS, T.GT_FRAME]

    def handle(log, the_map, messages: dict, t_s: float) -> None:
        episode = messages.get(T.EPISODE)
        for reader in readers.values():
            if episode is not None:
                try:
                    reader.reset(mission_of(log, the_map, episode, messages.get(T.GT_WORLD)))
                except ReplayError:
                    reader.reset(None)
        if T.EGO_SIGNALS not in messages or T.GT_FRAME not in messages:
            return
        signals = messages[T.EGO_SIGNALS]
        frame = SensorFrame(int(signals["frame"]), t_s, ego_signals(signals), placeholder, calibration)
        truth = ground_truth(messages[T.GT_FRAME]).light
        views = {name: reader.view(frame) for name, reader in readers.items()}
        target = next(iter(views.values())).target
        if target is None or truth.state is None or truth.index != target.light or not 0 <= truth.distance_m < 40:
            return
        keys = [next(f"{lo:.0f}-{hi:.0f}m" for lo, hi in VISIBILITY_BINS if lo <= truth.distance_m < hi)]
        if abs(frame.ego.speed_mps) < 0.3 and truth.distance_m < 10.0:
            keys.append("stopped")
        for key in keys:
            counts[key]["frames"] += 1
            for name, view in views.items():
                counts[key][name] += view.window is not None and view.window.visible >= config.window.min_visible

    for entry in logs:
        log = LogReader(root / entry["file"])
        the_map = log_map(log)
        current_t, current = None, {}
        for message in log.messages(wanted):  # the sensor frames are every few ticks; the geometry needs none
            if current_t is not None and not _math.isclose(message.t_s, current_t, abs_tol=1e-6):
                handle(log, the_map, current, current_t)
                current = {}
            current_t, current[message.topic] = message.t_s, message.value
        if current:
            handle(log, the_map, current, current_t)
    order = [f"{lo:.0f}-{hi:.0f}m" for lo, hi in VISIBILITY_BINS] + ["stopped"]
    return {"split": split or "all", "suite": suite, "cameras": list(cameras),
            "in_view": {k: {"frames": counts[k]["frames"],
                            **{name: round(counts[k][name] / counts[k]["frames"], 3) for name in readers}}
                        for k in order if counts[k]["frames"]}}


def main(argv: list[str] | None = None) -> None:
    """Command line: print the scores (``--json``: one JSON line)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--method", default="learned", choices=("learned", "classical"))
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--range-m", type=float, default=40.0)
    parser.add_argument("--gnss-noise", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--cameras", default=None,
                        help="comma-separated cameras the learned reader tries in order (default: the checkpoint's, "
                             "then light_rgb where the frames have it)")
    parser.add_argument("--visibility", default=None, metavar="SUITE",
                        help="geometry only: the share of frames whose light window is in view, per camera of this "
                             "sensor suite YAML and for the reader on --cameras (default front_rgb,light_rgb)")
    parser.add_argument("--confirm-frames", type=int, default=2,
                        help="confident readings in a row that replace a held state (1: at once, as before)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    if args.visibility is not None:
        cameras = tuple(args.cameras.split(",")) if args.cameras is not None else ("front_rgb", "light_rgb")
        result = evaluate_visibility(args.data, None if args.split == "all" else args.split, args.visibility, cameras,
                                     args.range_m)
        print(json.dumps(result) if args.json else json.dumps(result, indent=1))
        return
    result = evaluate_light(args.method, args.data, args.split, args.range_m, args.checkpoint, args.gnss_noise,
                            max_frames=args.max_frames, confirm_frames=args.confirm_frames,
                            cameras=tuple(args.cameras.split(",")) if args.cameras is not None else None)
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
