"""Lane-graph connectivity per town: the share of driving lanes in the main component, before and after.

Usage: ``python -m benchmarks.lane_graph_connectivity [--json]``.

For each shipped town and a set of procedural towns (grid sizes, lanes per
direction, a ring highway with ramps) it builds the lane graph and reports:

- ``driving_lanes``: driving lanes in the graph (every lane section, degenerate
  ones under 1 cm dropped);
- ``before``: the share the previous graph builder reported (nodes: the lanes
  ``carla.Map.get_topology()`` starts an edge from; main component: largest
  strongly connected set following lanes only);
- ``after``: the share in ``LaneGraph.in_main_component`` (lane changes to a
  same-direction neighbour allowed, dead-end lanes left out);
- ``follow_core``: the share in the largest set reachable by following lanes
  alone (``LaneGraph.in_follow_core``);
- ``carla_edges_missing``: topology edges between two graph lanes that the
  graph lacks (CARLA's own links are the reference: 0 everywhere);
- ``lanes_not_in_topology``: graph lanes that ``get_topology()`` never names
  (lanes that end without a successor, which the previous builder lost).

The table is printed as Markdown; ``--json`` prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import time

import networkx as nx

from sim.maps.lanes import build_lane_graph
from sim.maps.loader import MapSource, load_carla_map, procedural_source, resolve_map, shipped_town_names
from sim.maps.procedural import ProceduralTownConfig

PROCEDURAL_TOWNS: dict[str, ProceduralTownConfig] = {
    "procedural 1x1": ProceduralTownConfig(grid_rows=1, grid_cols=1),
    "procedural 3x3": ProceduralTownConfig(),
    "procedural 2x4, 2 lanes": ProceduralTownConfig(grid_rows=2, grid_cols=4, lanes_per_direction=2, seed=3),
    "procedural 4x4, 3 lanes, jitter": ProceduralTownConfig(grid_rows=4, grid_cols=4, lanes_per_direction=3,
                                                             block_length_m=120.0, block_length_jitter=0.2, seed=5),
    "procedural 3x3 + ring highway": ProceduralTownConfig(highway=True, block_length_m=120.0, seed=1),
    "procedural 2x3, 2 lanes + ring highway": ProceduralTownConfig(grid_rows=2, grid_cols=3, lanes_per_direction=2,
                                                                   highway=True, block_length_m=120.0, seed=2),
    "procedural 3x3, 3 lanes, nearest-lane turns": ProceduralTownConfig(lanes_per_direction=3, block_length_m=120.0,
                                                                        turn_lanes="nearest", seed=6),
    "procedural 2x3, 2 lanes + ring highway, nearest-lane turns": ProceduralTownConfig(
        grid_rows=2, grid_cols=3, lanes_per_direction=2, highway=True, block_length_m=120.0, turn_lanes="nearest",
        seed=7),
}


def _key(waypoint) -> tuple[int, int, int]:
    return (int(waypoint.road_id), int(waypoint.section_id), int(waypoint.lane_id))


def measure(label: str, source: MapSource) -> dict:
    """Connectivity figures of one map (see the module docstring)."""
    carla_map = load_carla_map(source)
    started = time.perf_counter()
    lanes = build_lane_graph(carla_map, source.xodr_text)
    build_s = time.perf_counter() - started
    topology = [(_key(a), _key(b)) for a, b in carla_map.get_topology()]

    # The previous builder: nodes are lanes topology starts an edge from, edges topology's among them.
    old_nodes = {a for a, _ in topology}
    old_graph = nx.DiGraph()
    old_graph.add_nodes_from(old_nodes)
    old_graph.add_edges_from((a, b) for a, b in topology if b in old_nodes)
    before = max(len(c) for c in nx.strongly_connected_components(old_graph)) / max(1, len(old_nodes))

    index = lanes.index
    missing = sum(1 for a, b in set(topology)
                  if a in index and b in index and not lanes.graph.has_edge(index[a], index[b]))
    named = {k for pair in topology for k in pair}
    return {
        "town": label, "driving_lanes": lanes.num_lanes, "before_lanes": len(old_nodes),
        "before": round(before, 3), "after": round(float(lanes.in_main_component.mean()), 3),
        "follow_core": round(float(lanes.in_follow_core.mean()), 3),
        "carla_edges_missing": missing, "lanes_not_in_topology": sum(1 for k in lanes.keys if k not in named),
        "build_s": round(build_s, 3),
    }


def main() -> None:
    """Measure every town and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="Print one JSON object as the last line.")
    args = parser.parse_args()
    sources = [(name, resolve_map(name)) for name in shipped_town_names()]
    sources += [(label, procedural_source(config)) for label, config in PROCEDURAL_TOWNS.items()]
    rows = [measure(label, source) for label, source in sources]
    print("| town | driving lanes | main component before | after | follow-lanes core | "
          "CARLA edges missing | lanes not in topology |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['town']} | {r['driving_lanes']} | {r['before']:.1%} ({r['before_lanes']} lanes) | "
              f"{r['after']:.1%} | {r['follow_core']:.1%} | {r['carla_edges_missing']} | "
              f"{r['lanes_not_in_topology']} |")
    if args.json:
        print(json.dumps({"benchmark": "lane_graph_connectivity", "towns": rows}))


if __name__ == "__main__":
    main()
