"""Loading OpenDRIVE maps into ``carla.Map`` without ever crashing the caller.

``carla.Map(name, xodr_text)`` parses OpenDRIVE offline with CARLA's own
library, but some malformed files crash the process inside it (a segfault,
not an exception). Untrusted files are therefore parsed once in a child
process first, and the lane graph every command derives from the map is
built there too: a file that crashes, hangs, yields no drivable lanes or a
lane graph that cannot be used becomes one :class:`MapLoadError` naming the
map, the same in ``avsim map check`` and in every other command. The shipped
CARLA towns are known good (checked by hash) and skip the child.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"

SHIPPED_TOWNS: dict[str, str] = {
    "Town01": "97a7f6ac67812567e5c8ee0599cd823b23f80f30f3f97c502212e38b72e2b709",
    "Town02": "953c05f17def231239ffcadba3307628a82d0d335b67b4e29c3098f7aed1dd7d",
    "Town10HD": "5d883b799f634030af92be1e9d79d107845540ba04338e8c60e095be1aef7be7",
}
"""Shipped CARLA towns (CC-BY 4.0, see data/ATTRIBUTION.md) and their sha256."""

CHILD_TIMEOUT_S = 120.0

_CHILD_SCRIPT = """
import json
import sys
import carla
from sim.maps.lanes import build_lane_graph
from sim.maps.loader import MapLoadError
from sim.maps.signals import build_signal_layout
text = sys.stdin.read()
m = carla.Map(sys.argv[1], text)
report = {"edges": len(m.get_topology()), "waypoints": len(m.generate_waypoints(2.0))}
if report["edges"] and report["waypoints"]:
    try:
        lanes = build_lane_graph(m, text)
    except MapLoadError as exc:
        report["error"] = str(exc)
    else:
        lanes.junction_conflicts
        build_signal_layout(m, lanes)
        report.update(lanes=lanes.num_lanes, main_component_share=float(lanes.in_main_component.mean()),
                      spawn_points=len(lanes.spawn_points()))
print(json.dumps(report))
"""
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the ``sim`` package


@dataclass(frozen=True)
class MapCheck:
    """What the map check found: CARLA's topology edges and waypoints (every 2 m), the lane graph's driving
    lanes, the share of them in its main component, and derived spawn points."""

    topology_edges: int
    waypoints: int
    lanes: int
    main_component_share: float
    spawn_points: int


class MapLoadError(RuntimeError):
    """A map could not be loaded; the message names the map and the reason."""


@dataclass(frozen=True)
class MapSource:
    """An OpenDRIVE document and where it came from."""

    name: str
    xodr_text: str
    path: Path | None
    trusted: bool


def shipped_town_names() -> list[str]:
    """Names of the CARLA towns shipped with the package."""
    return sorted(SHIPPED_TOWNS)


PROCEDURAL = "procedural"
"""Map name that stands for a generated town (see ``sim.maps.procedural``)."""


def procedural_source(config) -> MapSource:
    """A generated town (``ProceduralTownConfig``) as a map source; generated text is trusted."""
    from sim.maps.procedural import generate_town

    name = f"procedural_{config.grid_rows}x{config.grid_cols}_seed{config.seed}"
    return MapSource(name, generate_town(config), None, trusted=True)


def resolve_map(name_or_path: str | os.PathLike[str]) -> MapSource:
    """Read a shipped town by name (``"Town01"``) or any ``.xodr`` file by path.

    Raises :class:`MapLoadError` for an unknown name, a missing, unreadable,
    empty or non-OpenDRIVE file.
    """
    text_name = str(name_or_path)
    if text_name in SHIPPED_TOWNS:
        path = DATA_DIR / f"{text_name}.xodr"
        data = path.read_bytes()
        trusted = hashlib.sha256(data).hexdigest() == SHIPPED_TOWNS[text_name]
        return MapSource(text_name, data.decode("utf-8"), path, trusted)
    path = Path(name_or_path)
    if path.suffix.lower() != ".xodr" and not path.exists():
        raise MapLoadError(
            f"map {text_name!r} is neither a shipped town ({', '.join(shipped_town_names())}) "
            "nor an existing .xodr file"
        )
    if not path.is_file():
        raise MapLoadError(f"map file {path} does not exist")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MapLoadError(f"map file {path} cannot be read: {exc.strerror}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MapLoadError(f"map file {path} is not UTF-8 text (byte {exc.start})") from exc
    return MapSource(path.stem, text, path, trusted=False)


def check_opendrive_text(text: str, label: str) -> None:
    """Reject empty, truncated or non-OpenDRIVE XML before it reaches carla.Map."""
    if not text.strip():
        raise MapLoadError(f"map {label} is empty")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise MapLoadError(f"map {label} is not well-formed XML (truncated or corrupt?): {exc}") from exc
    if root.tag != "OpenDRIVE":
        raise MapLoadError(f"map {label} has root element <{root.tag}>, expected <OpenDRIVE>")
    if root.find("road") is None:
        raise MapLoadError(f"map {label} has no <road> elements")


def validate_in_child(text: str, label: str, timeout_s: float = CHILD_TIMEOUT_S, *, name: str | None = None
                      ) -> MapCheck:
    """Check in a child process that every command can use the map: carla.Map parses ``text`` and the lane
    graph, its junction conflicts and its signals build (as :class:`carla.Map` named ``name``, default ``label``).

    A crash (signal), a Python error, a timeout, a map without lanes or one the
    lane graph refuses raises :class:`MapLoadError` (for the last, the very
    message every command gives); the calling process is never at risk.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
    try:
        result = subprocess.run(
            [sys.executable, "-c", _CHILD_SCRIPT, name or label],
            input=text, capture_output=True, text=True, timeout=timeout_s, check=False, env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise MapLoadError(f"map {label}: carla.Map did not finish parsing within {timeout_s:.0f} s") from exc
    if result.returncode < 0:
        signame = signal.Signals(-result.returncode).name
        raise MapLoadError(f"map {label}: carla.Map crashed while parsing it ({signame}); the file is malformed")
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise MapLoadError(f"map {label}: carla.Map failed: {last}")
    try:
        report = json.loads((result.stdout.strip().splitlines() or [""])[-1])
        edges, waypoints = int(report["edges"]), int(report["waypoints"])
    except (ValueError, KeyError, TypeError) as exc:
        raise MapLoadError(f"map {label}: unexpected output from the map check: {result.stdout!r}") from exc
    if edges == 0 or waypoints == 0:
        raise MapLoadError(f"map {label} has no drivable lanes (topology {edges} edges, {waypoints} waypoints)")
    if "error" in report:
        raise MapLoadError(str(report["error"]))
    return MapCheck(edges, waypoints, int(report["lanes"]), float(report["main_component_share"]),
                    int(report["spawn_points"]))


def load_carla_map(source: MapSource, *, validate: bool | None = None):  # -> carla.Map
    """Build a ``carla.Map`` from ``source``; untrusted text is validated in a child first."""
    import carla

    label = str(source.path) if source.path is not None else source.name
    check_opendrive_text(source.xodr_text, label)
    if validate if validate is not None else not source.trusted:
        validate_in_child(source.xodr_text, label, name=source.name)
    return carla.Map(source.name, source.xodr_text)
