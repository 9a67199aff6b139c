"""Process-replay regression tests, as openpilot's ``process_replay``: every stage re-run on a committed log's
inputs must give its committed reference outputs.

The committed files (``tests/data/logs/``):

- ``regression.mcap``: 80 ticks (4 s) of the oracle stack (oracle perception
  and localization, the expert planner, Stanley control) on a 2x2
  procedural town with 10 vehicles and 6 pedestrians, the front camera, GNSS
  and IMU (``configs/sensors/front_camera.yaml``), sensors and BEV on every
  4th tick, ground truth every tick (about 0.6 MB; :data:`RECORDING`);
- ``reference/<stage>.json``: each stage's outputs on that log, frame by frame.

Each stage gets its own logged inputs, so a change shows in the stage that
made it and not in every stage after it:

=============  ===================================================  =======================================
stage          inputs (from the log)                                outputs compared
=============  ===================================================  =======================================
perception     the rebuilt :class:`SensorFrame` of every tick        detections, light, BEV sum per channel
localization   the same frames                                      pose, velocity, covariance, valid
planning       ``/stack/perception`` (+ ``/perception/bev``),        trajectory, speeds, command, control
               ``/stack/localization``
control        ``/stack/plan``, ``/stack/localization``             the control (none where the plan
                                                                    carried its own)
=============  ===================================================  =======================================

The implementations are those the logged run used (its attached config);
each gets the logged route's mission at the route's start. Numbers are
compared within :data:`ABS_TOL` + :data:`REL_TOL` (relative); everything else
exactly. ``tests/av_stack/logs/test_regression.py`` runs the check in the
default test suite.

Commands::

    python -m av_stack.logs.regression              # check; exit 1 listing the first differences
    python -m av_stack.logs.regression --update     # rewrite the references after a change that is meant
    python -m av_stack.logs.regression --record     # re-record the log (e.g. a new log format), then --update
"""

from __future__ import annotations

import argparse
import io
import json
import math
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from av_stack.logs import topics as T
from av_stack.logs.reader import LogReader
from av_stack.logs.writer import jsonable
from av_stack.replay.logged import log_map, mission_of, perception_of, plan_of, pose_of, stage_frames

DATA_DIR = Path(__file__).resolve().parents[2] / "tests" / "data" / "logs"
"""Where the committed log and references live (in a source checkout)."""
LOG_NAME = "regression.mcap"
REFERENCE_DIR = "reference"
STAGES = ("perception", "localization", "planning", "control")
ABS_TOL = 1e-6
REL_TOL = 1e-6
DECIMALS = 7
"""References keep numbers to this many decimals (sub-micrometre), so the files stay small and readable."""
MAX_REPORTED = 20

RECORDING: dict[str, Any] = {
    "env": {"world": {"map": "procedural", "procedural": {"seed": 3, "grid_rows": 2, "grid_cols": 2,
                                                          "block_length_m": 60}},
            "traffic": {"vehicles": 10, "walkers": 6}, "scenarios": [], "episode": {"max_steps": 80},
            "action": {"mode": "vehicle_control"},
            "observation": {"modes": ["sensors", "bev"], "ground_truth": True, "ground_truth_radius_m": 60},
            "sensors": "configs/sensors/front_camera.yaml"},
    "perception": {"name": "oracle"}, "localization": {"name": "oracle"}, "planning": {"name": "expert"},
    "control": {"name": "stanley"},
    "run": {"video": False, "camera": None}, "record": {"sensors_every": 4}}
"""The stack config the committed log was recorded with (``--record``), on one ``random:1`` route, seed 5."""
RECORDING_ROUTES, RECORDING_SEED = "random:1", 5


# ---------------------------------------------------------------------------------------------- outputs
def _rounded(value: Any) -> Any:
    """``value`` as JSON with floats rounded to :data:`DECIMALS`."""
    if isinstance(value, float):
        return round(value, DECIMALS) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def perception_record(output) -> dict[str, Any]:
    """What is compared of a :class:`PerceptionOutput`."""
    bev = None if output.bev is None else {name: float(output.bev[k].sum())
                                           for k, name in enumerate(output.bev_spec.channels)}
    return {"frame": output.frame, "detections": jsonable(output.detections), "light": jsonable(output.light),
            "bev_sum": bev}


def _records(stage: str, log: LogReader, section: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    from av_stack.stack import REGISTRIES

    impl = REGISTRIES[stage].build(section, stage)
    the_map = None
    for kind, logged in stage_frames(log):
        m = logged.messages
        if kind == "episode":
            the_map = the_map or log_map(log)
            impl.reset(mission_of(log, the_map, m[T.EPISODE], m.get(T.GT_WORLD)))
            continue
        frame = logged.sensor_frame
        if stage == "perception":
            yield perception_record(impl.step(frame))
        elif stage == "localization":
            yield jsonable(impl.step(frame))
        elif stage == "planning":
            perception = perception_of(m[T.STACK_PERCEPTION], logged.t_s, frame.bev_spec, m.get(T.PERCEPTION_BEV))
            yield jsonable(impl.step(perception, pose_of(m[T.STACK_LOCALIZATION])))
        else:
            plan = plan_of(m[T.STACK_PLAN])
            control = None if plan.control is not None else impl.step(plan, pose_of(m[T.STACK_LOCALIZATION]))
            yield {"frame": plan.frame, "control": jsonable(control)}


def replay_stage(stage: str, log: str | Path | LogReader | None = None,
                 section: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Re-run ``stage`` on the log's inputs (see the module docstring); ``section``: its config section
    (default: the logged run's). The reference document: ``{"stage", "section", "log", "frames": [...]}``."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    reader = log if isinstance(log, LogReader) else LogReader(log or DATA_DIR / LOG_NAME)
    section = dict(section or reader.config.get(stage) or {})
    if "name" not in section:
        raise ValueError(f"{reader.path}: the logged config has no {stage} section; pass one")
    frames = [_rounded(record) for record in _records(stage, reader, section)]
    return {"stage": stage, "section": section, "log": reader.path.name, "frames": frames}


# ---------------------------------------------------------------------------------------------- comparing
def compare(expected: Any, actual: Any, where: str = "") -> list[str]:
    """Differences between two JSON documents (numbers within the tolerances), as ``path: expected != actual``."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for key in sorted(set(expected) | set(actual), key=str):
            if key not in expected or key not in actual:
                out.append(f"{where}.{key}: {'missing' if key not in actual else 'not in the reference'}")
            else:
                out += compare(expected[key], actual[key], f"{where}.{key}")
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{where}: {len(expected)} items != {len(actual)}"]
        return [d for k, (e, a) in enumerate(zip(expected, actual)) for d in compare(e, a, f"{where}[{k}]")]
    numbers = (int, float)
    if isinstance(expected, numbers) and isinstance(actual, numbers) and not isinstance(expected, bool) \
            and not isinstance(actual, bool):
        if math.isclose(expected, actual, rel_tol=REL_TOL, abs_tol=ABS_TOL):
            return []
    elif expected == actual:
        return []
    return [f"{where}: {expected!r} != {actual!r}"]


def reference_path(stage: str, folder: Path | None = None) -> Path:
    """The reference file of ``stage``."""
    return (folder or DATA_DIR / REFERENCE_DIR) / f"{stage}.json"


def check(log: Path | None = None, references: Path | None = None,
          stages: Sequence[str] = STAGES) -> dict[str, list[str]]:
    """Each stage's differences from its reference (empty lists: all match); a missing reference is one."""
    reader = LogReader(log or DATA_DIR / LOG_NAME)
    out = {}
    for stage in stages:
        path = reference_path(stage, references)
        if not path.is_file():
            out[stage] = [f"no reference file {path.name} (make it with --update)"]
            continue
        expected = json.loads(path.read_text())
        actual = replay_stage(stage, reader, expected.get("section"))
        out[stage] = [f"frame {_frame_of(expected, d)}{d}" for d in compare(expected["frames"], actual["frames"])]
    return out


def _frame_of(document: dict[str, Any], difference: str) -> str:
    """``"#N "``, the logged frame number of a difference's path ``[k]...`` (for the message)."""
    try:
        k = int(difference[1:difference.index("]")])
        return f"{document['frames'][k]['frame']} "
    except (ValueError, IndexError, KeyError, TypeError):
        return ""


def update(log: Path | None = None, references: Path | None = None, stages: Sequence[str] = STAGES) -> list[Path]:
    """Rewrite the reference files from the stages as they are now; their paths."""
    reader = LogReader(log or DATA_DIR / LOG_NAME)
    written = []
    for stage in stages:
        path = reference_path(stage, references)
        path.parent.mkdir(parents=True, exist_ok=True)
        document = replay_stage(stage, reader)
        path.write_text(json.dumps(document, indent=None, separators=(",", ":")) + "\n")
        written.append(path)
    return written


def record(path: Path | None = None) -> Path:
    """Re-record the regression log with :data:`RECORDING` (a few seconds); its path."""
    from rich.console import Console

    from av_stack.runner import RUN_LOG, RunOptions, run_stack

    target = path or DATA_DIR / LOG_NAME
    with tempfile.TemporaryDirectory(prefix="avsim-regression-") as scratch:
        run_stack(RECORDING, scratch, RunOptions(routes=RECORDING_ROUTES, seed=RECORDING_SEED),
                  console=Console(file=io.StringIO()))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(scratch) / RUN_LOG, target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring); 0: all stages match (or were updated), 1: differences."""
    parser = argparse.ArgumentParser(prog="python -m av_stack.logs.regression",
                                     description="Process-replay regression tests of the AV stack's stages.")
    parser.add_argument("--update", action="store_true", help="rewrite the reference outputs")
    parser.add_argument("--record", action="store_true", help="re-record the log first (then use --update)")
    parser.add_argument("--log", type=Path, default=None, help=f"the log (default tests/data/logs/{LOG_NAME})")
    parser.add_argument("--references", type=Path, default=None,
                        help=f"the reference folder (default tests/data/logs/{REFERENCE_DIR})")
    parser.add_argument("--stage", action="append", choices=STAGES, help="only this stage (repeatable)")
    args = parser.parse_args(argv)
    stages = tuple(args.stage or STAGES)
    if args.record:
        print(f"recorded {record(args.log)}")
    if args.update:
        for path in update(args.log, args.references, stages):
            print(f"wrote {path}")
        return 0
    failed = 0
    for stage, differences in check(args.log, args.references, stages).items():
        if not differences:
            print(f"{stage}: matches its reference")
            continue
        failed += 1
        print(f"{stage}: {len(differences)} differences from its reference, the first:")
        for line in differences[:MAX_REPORTED]:
            print(f"  {line}")
    if failed:
        print("if the change is meant: python -m av_stack.logs.regression --update (and commit the references)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
