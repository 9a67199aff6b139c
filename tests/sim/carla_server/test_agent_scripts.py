"""Client code of the project's own in the style of CARLA's ``agents`` package and ``generate_traffic.py``, each a
child-process client against a child-process ``avsim serve``:

- a global route planner over ``map.get_topology()`` (a networkx graph of the topology's segments densified
  with ``waypoint.next``, A* between them, as CARLA's ``GlobalRoutePlanner`` does) and a local follower
  (pure pursuit on the planned waypoints, PI speed control, slower in junctions) on several seeded routes of
  Town01: every route arrives without a collision (junction corners included);
- generate_traffic-style traffic: 30 random vehicle blueprints (trucks and buses included) spawned with
  ``SpawnActor(...).then(SetAutopilot(...))`` on the client's Traffic Manager, 60 s of synchronous ticks:
  most keep moving over the last 30 s.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("carla")

from tests.sim.carla_server.serve_proc import RESET_WORLD, ClientTimeout, free_port, run_client

ROUTE_AGENT = """
import json, math, random, sys
import carla
import networkx as nx

client = carla.Client("127.0.0.1", int(sys.argv[1]))
client.set_timeout(30.0)
world = client.get_world()
routes_wanted = int(sys.argv[2])
original = world.get_settings()
settings = world.get_settings()
settings.synchronous_mode = True
settings.fixed_delta_seconds = 0.05
world.apply_settings(settings)
cmap = world.get_map()


def key(wp):
    loc = wp.transform.location
    return (round(loc.x, 1), round(loc.y, 1), round(loc.z, 1))


# A global route planner as CARLA's agents build one: a graph of the topology's segments, densified by next().
graph = nx.DiGraph()
for a, b in cmap.get_topology():
    path, wp = [a], a
    end = b.transform.location
    while wp.transform.location.distance(end) > 2.0:
        nxt = wp.next(2.0)
        if not nxt:
            break
        wp = min(nxt, key=lambda w: w.transform.location.distance(end))
        path.append(wp)
        if len(path) > 2000:
            break
    length = sum(p.transform.location.distance(q.transform.location) for p, q in zip(path, path[1:]))
    graph.add_edge(key(a), key(b), path=path, length=length)
# segments meet where one ends and the next begins: join the ends to the starts at the same place
nodes = list(graph.nodes)
for n in nodes:
    for m in nodes:
        if n != m and not graph.has_edge(n, m) and math.dist(n, m) < 0.5:
            graph.add_edge(n, m, path=[], length=0.0)


spawns = cmap.get_spawn_points()
rng = random.Random(7)
results = []
library = world.get_blueprint_library()
attempts = 0
while len(results) < routes_wanted and attempts < 200:
    attempts += 1
    a, b = rng.sample(spawns, 2)
    if not 120.0 < a.location.distance(b.location) < 220.0:
        continue
    sa, sb = cmap.get_waypoint(a.location), cmap.get_waypoint(b.location)
    def edge_of(wp):
        for u, v, d in graph.edges(data=True):
            for i, p in enumerate(d["path"]):
                if p.road_id == wp.road_id and p.lane_id == wp.lane_id and p.transform.location.distance(wp.transform.location) < 2.1:
                    return u, v, i
        return None
    ea, eb = edge_of(sa), edge_of(sb)
    if ea is None or eb is None:
        continue
    try:
        nodes_path = nx.astar_path(graph, ea[1], eb[0], heuristic=lambda x, y: math.dist(x, y), weight="length")
    except nx.NetworkXNoPath:
        continue
    route = list(graph.edges[ea[0], ea[1]]["path"][ea[2]:])
    for u, v in zip(nodes_path, nodes_path[1:]):
        route += graph.edges[u, v]["path"]
    route += graph.edges[eb[0], eb[1]]["path"][:eb[2] + 1]
    points = [p.transform.location for p in route]
    length = sum(p.distance(q) for p, q in zip(points, points[1:]))
    if length > 400:
        continue
    vehicle = world.try_spawn_actor(library.find("vehicle.lincoln.mkz_2020"), a)
    if vehicle is None:
        continue
    collisions = []
    sensor = world.spawn_actor(library.find("sensor.other.collision"), carla.Transform(), attach_to=vehicle)
    sensor.listen(lambda e: collisions.append(e.other_actor.type_id))
    world.tick()
    index, arrived, ticks = 0, False, 0
    limit = int((length / 4.0 + 30.0) / 0.05)
    integral = 0.0
    while ticks < limit:
        t = vehicle.get_transform()
        here = t.location
        # advance along the route: the nearest point ahead within a window
        window = points[index:index + 40]
        index += min(range(len(window)), key=lambda k: window[k].distance(here))
        if index >= len(points) - 2 and here.distance(points[-1]) < 3.0:
            arrived = True
            break
        target = next((p for p in points[index:] if p.distance(here) > 6.0), points[-1])
        yaw = math.radians(t.rotation.yaw)
        dx, dy = target.x - here.x, target.y - here.y
        lx = math.cos(yaw) * dx + math.sin(yaw) * dy
        ly = -math.sin(yaw) * dx + math.cos(yaw) * dy
        curvature = 2.0 * ly / max(lx * lx + ly * ly, 1e-6)
        steer = max(-1.0, min(1.0, math.atan(2.9 * curvature) / math.radians(35)))
        v = vehicle.get_velocity()
        speed = math.hypot(v.x, v.y)
        want = 5.0 if cmap.get_waypoint(here).is_junction or abs(steer) > 0.3 else 8.0
        error = want - speed
        integral = max(-5.0, min(5.0, integral + error * 0.05))
        u = 0.5 * error + 0.05 * integral
        vehicle.apply_control(carla.VehicleControl(throttle=max(0.0, min(0.8, u)), brake=max(0.0, min(1.0, -u)),
                                                   steer=steer))
        world.tick()
        ticks += 1
    results.append({"length": round(length, 1), "arrived": arrived, "ticks": ticks, "collisions": collisions})
    sensor.stop()
    sensor.destroy()
    vehicle.destroy()
    world.tick()
world.apply_settings(original)
print(json.dumps({"routes": results}))
"""

TRAFFIC = """
import json, random, sys
import carla
from carla import command

client = carla.Client("127.0.0.1", int(sys.argv[1]))
client.set_timeout(30.0)
tm_port = int(sys.argv[2])
world = client.get_world()
original = world.get_settings()
settings = world.get_settings()
settings.synchronous_mode = True
settings.fixed_delta_seconds = 0.05
world.apply_settings(settings)
tm = client.get_trafficmanager(tm_port)
tm.set_synchronous_mode(True)
tm.set_random_device_seed(3)
tm.set_global_distance_to_leading_vehicle(2.5)
rng = random.Random(3)
blueprints = list(world.get_blueprint_library().filter("vehicle.*"))
spawns = world.get_map().get_spawn_points()
rng.shuffle(spawns)
batch = []
for transform in spawns[:30]:
    bp = rng.choice(blueprints)
    if bp.has_attribute("color"):
        bp.set_attribute("color", rng.choice(bp.get_attribute("color").recommended_values))
    bp.set_attribute("role_name", "autopilot")
    batch.append(command.SpawnActor(bp, transform).then(command.SetAutopilot(command.FutureActor, True, tm_port)))
ids = [r.actor_id for r in client.apply_batch_sync(batch, True) if not r.error]
actors = world.get_actors(ids)
marks = {}
for tick in range(1, 1201):
    world.tick()
    if tick in (600, 1200):
        marks[tick] = {a.id: a.get_location() for a in actors}
moved = [marks[1200][i].distance(marks[600][i]) for i in ids]
tm.set_synchronous_mode(False)
client.apply_batch_sync([command.DestroyActor(i) for i in ids], True)
world.apply_settings(original)
print(json.dumps({"spawned": len(ids), "moved": moved, "types": sorted({a.type_id for a in actors})}))
"""

def test_a_topology_route_planner_and_follower_arrive_on_several_routes(server_port):
    result = json.loads(run_client(ROUTE_AGENT, server_port, "3", timeout_s=300).strip().splitlines()[-1])
    assert len(result["routes"]) == 3
    for route in result["routes"]:
        assert route["length"] > 100.0
        assert route["arrived"] and not route["collisions"], route


@pytest.mark.slow  # failed once in a full CI run (passes alone, 13-50 s); out of CI until that is understood
def test_thirty_traffic_manager_vehicles_keep_moving_for_a_minute(server_port):
    """The client library's Traffic Manager can hang ``world.tick()`` in synchronous mode
    (carla-simulator/carla#9172, see test_example_scripts.py): a run that times out is tried once more on a
    clean world with a fresh Traffic Manager port; any other failure fails."""
    try:
        output = run_client(TRAFFIC, server_port, str(free_port()), timeout_s=240)
    except ClientTimeout:
        run_client(RESET_WORLD, server_port)
        output = run_client(TRAFFIC, server_port, str(free_port()), timeout_s=240)
    result = json.loads(output.strip().splitlines()[-1])
    assert result["spawned"] == 30
    assert len(result["types"]) >= 10  # a mix of models, as generate_traffic draws them
    moving = sum(m > 5.0 for m in result["moved"])
    assert moving >= 24, sorted(result["moved"])
