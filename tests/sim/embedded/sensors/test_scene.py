"""The raycast scene: the static town's BVH, actor meshes and the cast_rays API (a small procedural town)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("open3d")

from sim.api import ActorKind, Pose, TrafficLightState
from sim.maps.procedural import ProceduralTownConfig
from sim.embedded.sensors import meshes
from sim.embedded.sensors.scene import (
    LAMP_DARK,
    LAMP_LIT,
    RayBundle,
    RayHits,
    Scene,
    StaticScene,
    Tag,
)
from sim.embedded.sensors.town import TownLayout
from sim.embedded.world import EmbeddedWorld

STRUCTURE_TAGS = {Tag.BUILDING, Tag.WALL, Tag.FENCE, Tag.POLE, Tag.TRAFFIC_LIGHT, Tag.TRAFFIC_SIGN, Tag.VEGETATION}


def _town() -> EmbeddedWorld:
    return EmbeddedWorld(map="procedural", procedural=ProceduralTownConfig(seed=0, grid_rows=1, grid_cols=2), seed=0)


@pytest.fixture(scope="module")
def static_world():
    """A procedural town and its static scene (the world is not ticked: read-only use)."""
    world = _town()
    return world, StaticScene.build(world, seed=0)


@pytest.fixture()
def world_scene(static_world):
    """A fresh world (actors can be spawned) sharing the module's static scene."""
    return _town(), Scene(static_world[1])


def _down(points_xyz: np.ndarray, height_m: float) -> tuple[np.ndarray, np.ndarray]:
    origins = np.asarray(points_xyz, dtype=np.float32) + np.float32([0.0, 0.0, height_m])
    return origins, np.tile(np.float32([0.0, 0.0, -1.0]), (origins.shape[0], 1))


def _straight_spawn(world: EmbeddedWorld, clear_m: float = 24.0):
    """A spawn point with driving area for ``clear_m`` ahead (pose, forward unit vector)."""
    for point in world.spawn_points:
        pose = point.pose
        forward = np.array([math.cos(pose.yaw_rad), math.sin(pose.yaw_rad)])
        ahead = np.array([pose.x_m, pose.y_m]) + forward * np.arange(0.0, clear_m, 1.0)[:, None]
        if np.isin(world.area_raster.lookup(ahead), (1, 4)).all():
            return pose, forward
    raise AssertionError("no straight spawn point in the test town")


# ------------------------------------------------------------------------------------------------ meshes
def test_boxes_wind_outward_and_fill_their_extent():
    verts, tris = meshes.boxes(np.array([[1.0, 2.0, 3.0]]), np.array([[2.0, 1.0, 0.5]]), np.array([0.3]))
    assert verts.shape == (8, 3) and tris.shape == (12, 3)
    a, b, c = (verts[tris[:, k]] for k in range(3))
    normal = np.cross(b - a, c - a)
    outward = ((a + b + c) / 3 - [1.0, 2.0, 3.0])
    assert np.all(np.einsum("ij,ij->i", normal, outward) > 0)
    assert np.allclose(verts[:, 2].min(), 2.5) and np.allclose(verts[:, 2].max(), 3.5)


@pytest.mark.parametrize("body", meshes.VEHICLE_BODIES)
def test_vehicle_mesh_fills_the_box_with_front_at_extent(body):
    extent = (2.45, 1.06, 0.76)
    mesh = meshes.vehicle_mesh(extent, body)
    v = mesh.vertices
    assert mesh.part.shape == (mesh.triangles.shape[0],)
    assert v[:, 0].max() == pytest.approx(extent[0]) and v[:, 0].min() >= -extent[0] - 1e-9
    assert np.abs(v[:, 1]).max() <= extent[1] + 1e-9
    assert v[:, 2].min() == pytest.approx(0.0, abs=1e-9) and v[:, 2].max() == pytest.approx(2 * extent[2])
    # Closed meshes: every edge is shared by exactly two triangles.
    edges = np.sort(mesh.triangles[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)


def test_walker_mesh_is_centred_in_its_box():
    mesh = meshes.walker_mesh((0.25, 0.25, 0.9))
    assert mesh.vertices[:, 2].min() == pytest.approx(-0.9) and mesh.vertices[:, 2].max() == pytest.approx(0.9)
    assert np.abs(mesh.vertices[:, :2]).max() <= 0.25 + 1e-9
    assert set(mesh.part.tolist()) >= {meshes.Part.SKIN, meshes.Part.CLOTHES}


@pytest.mark.parametrize("bad", [(0.0, 1.0, 1.0), (1.0, -1.0, 1.0), (1.0, 1.0, float("nan"))])
def test_meshes_reject_bad_extents(bad):
    with pytest.raises(ValueError, match="extent_m"):
        meshes.vehicle_mesh(bad)
    with pytest.raises(ValueError, match="extent_m"):
        meshes.walker_mesh(bad)


def test_vehicle_mesh_rejects_unknown_body():
    with pytest.raises(ValueError, match="unknown vehicle body 'tank'"):
        meshes.vehicle_mesh((2.0, 1.0, 0.8), "tank")


def test_cylinders_reject_too_few_segments():
    with pytest.raises(ValueError, match="segments"):
        meshes.cylinders(np.zeros((1, 2)), 0.0, 1.0, 0.1, segments=2)


# ------------------------------------------------------------------------------------------------ static scene
def test_static_scene_arrays_and_tags(static_world):
    _, static = static_world
    t = static.num_triangles
    assert static.vertices.dtype == np.float32 and static.vertices.shape[1] == 3
    assert static.triangles.dtype == np.int32 and static.triangles.shape == (t, 3)
    assert static.triangles.max() < static.vertices.shape[0]
    assert static.triangle_tag.shape == (t,) and static.triangle_tag.dtype == np.uint8
    assert static.triangle_instance.dtype == np.uint32 and not static.triangle_instance.any()
    assert static.triangle_albedo.shape == (t, 3) and static.triangle_albedo.dtype == np.uint8
    counts = static.triangle_counts()
    for tag in (Tag.ROAD, Tag.SIDEWALK, Tag.BUILDING, Tag.FENCE, Tag.POLE, Tag.TRAFFIC_LIGHT, Tag.VEGETATION,
                Tag.TERRAIN, Tag.ROAD_LINE):
        assert counts.get(tag, 0) > 0, f"no triangles with tag {tag}"
    assert static.num_buildings > 0
    lamps = static.lamps  # 3 lamp boxes (12 triangles) per head, one or two heads per light
    assert static.num_lights > 0 and lamps.triangles.size % 36 == 0
    assert 36 * static.num_lights <= lamps.triangles.size <= 72 * static.num_lights
    assert np.all(static.triangle_tag[lamps.triangles] == Tag.TRAFFIC_LIGHT)
    for light in range(static.num_lights):
        assert set(lamps.colour[lamps.light == light].tolist()) == {0, 1, 2}  # red, yellow, green


def test_static_scene_is_seeded(static_world):
    world, static = static_world
    again = StaticScene.build(world, seed=0)
    other = StaticScene.build(world, seed=1)
    assert np.array_equal(again.vertices, static.vertices) and np.array_equal(again.triangle_tag, static.triangle_tag)
    assert other.vertices.shape != static.vertices.shape or not np.array_equal(other.vertices, static.vertices)


def test_a_town_has_the_same_props_in_every_run():
    """By default the props are placed by the map, not by the run's seed: two runs of one town (world seeds 0
    and 7) see the same buildings, as two drives through a CARLA town do (a prior map from one fits the other)."""
    from sim.embedded.sensors.town import props_seed

    town = ProceduralTownConfig(seed=0, grid_rows=1, grid_cols=2)
    first = EmbeddedWorld(map="procedural", procedural=town, seed=0)
    second = EmbeddedWorld(map="procedural", procedural=town, seed=7)
    a, b = TownLayout.build(first), TownLayout.build(second)
    assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.building_boxes, b.building_boxes)
    assert props_seed(first.source.name) == props_seed(second.source.name) != props_seed("Town01")


def test_static_scene_from_a_layout_shares_its_arrays(static_world):
    world, static = static_world
    layout = TownLayout.build(world, seed=0)
    scene = StaticScene.from_layout(layout)
    assert isinstance(scene, TownLayout) and scene.vertices is layout.vertices
    assert scene.building_boxes is layout.building_boxes and scene.lamps is layout.lamps
    assert np.array_equal(scene.vertices, static.vertices) and np.array_equal(scene.triangle_albedo,
                                                                              static.triangle_albedo)
    assert scene.build_time_s >= layout.build_time_s
    lanes = world.lanes
    hits = Scene(scene).cast_rays(*_down(lanes.points_xyz[lanes.offset[:4] + lanes.count[:4] // 2], 10.0))
    assert np.allclose(hits.distance_m, 10.0, atol=0.2) and hits.hit.all()
    with pytest.raises(TypeError, match="TownLayout"):
        StaticScene.from_layout(static.vertices)


def test_ray_down_on_lane_centres_hits_road_at_lane_height(static_world):
    world, static = static_world
    lanes = world.lanes
    rows = [lanes.offset[k] + lanes.count[k] // 2 for k in range(lanes.num_lanes) if not lanes.is_junction[k]]
    points = lanes.points_xyz[rows]
    hits = Scene(static).cast_rays(*_down(points, 10.0))
    assert len(rows) >= 4
    assert np.all(hits.tag == Tag.ROAD)
    assert np.allclose(hits.distance_m, 10.0, atol=1e-3)
    assert np.allclose(hits.normal, [0.0, 0.0, 1.0], atol=1e-4)
    assert np.all(hits.instance == 0) and not hits.hit_velocity.any()
    assert np.all(hits.albedo.astype(int).sum(axis=1) > 0)


def test_ray_down_on_solid_lane_markings_hits_paint(static_world):
    world, static = static_world
    solid = [np.asarray(m.points_xy) for m in world.geometry.lane_markings if m.marking_type == "Solid"]
    assert solid
    # Edge lines are painted a line width inside the road: aim 0.1 m off the boundary, on the road side.
    xy, raster = [], world.area_raster
    for line in solid:
        k = len(line) // 2
        tangent = (line[k + 1] - line[k - 1]) / np.linalg.norm(line[k + 1] - line[k - 1])
        normal = np.array([-tangent[1], tangent[0]])
        road_left = raster.lookup((line[k] + 0.5 * normal)[None])[0] in (1, 4)
        road_right = raster.lookup((line[k] - 0.5 * normal)[None])[0] in (1, 4)
        xy.append(line[k] + 0.15 * normal * (float(road_left) - float(road_right)))
    xy = np.array(xy)
    ground = world.lanes.points_xyz[world.lanes.kdtree.query(xy)[1], 2]
    hits = Scene(static).cast_rays(*_down(np.column_stack([xy, ground]), 1.0))  # below tree crowns
    assert np.all(hits.tag == Tag.ROAD_LINE)
    assert np.allclose(hits.distance_m, 1.0 - 0.02, atol=1e-3)  # paint floats 2 cm above the asphalt
    assert np.all(hits.albedo.astype(int).min(axis=1) > 150)  # white paint


def test_ray_down_on_sidewalks_hits_the_raised_kerb(static_world):
    world, static = static_world
    points = []
    for polygon in world.geometry.sidewalk_polygons:
        k = polygon.shape[0] // 2
        left, right = polygon[:k], polygon[k:][::-1]
        points.append((left[k // 2] + right[k // 2]) / 2)
    xy = np.array(points)
    ground = world.lanes.points_xyz[world.lanes.kdtree.query(xy)[1], 2]
    hits = Scene(static).cast_rays(*_down(np.column_stack([xy, ground]), 1.0))
    on_sidewalk = hits.tag == Tag.SIDEWALK
    assert on_sidewalk.mean() >= 0.9  # a pole or trunk may stand on a few of these points
    assert np.allclose(hits.distance_m[on_sidewalk], 1.0 - 0.15, atol=1e-3)


def test_horizontal_rays_toward_offroad_meet_structure(static_world):
    world, static = static_world
    lanes, raster = world.lanes, world.area_raster
    rows = np.arange(0, lanes.points_xyz.shape[0], 7)
    p, yaw = lanes.points_xyz[rows], lanes.yaw_rad[rows]
    right = np.column_stack([-np.sin(yaw), np.cos(yaw), np.zeros_like(yaw)])
    origins, directions = [], []
    for sign in (1.0, -1.0):
        toward_offroad = raster.lookup(p[:, :2] + sign * 12.0 * right[:, :2]) == 0
        origins.append(p[toward_offroad] + [0.0, 0.0, 1.5])
        directions.append(sign * right[toward_offroad])
    hits = Scene(static).cast_rays(np.concatenate(origins), np.concatenate(directions), max_range_m=80.0)
    assert hits.distance_m.size >= 20
    structure = np.isin(hits.tag, list(STRUCTURE_TAGS))
    assert structure.mean() >= 0.8


def test_misses_and_range_limits(static_world):
    world, static = static_world
    scene = Scene(static)
    up = scene.cast_rays(np.float32([0.0, 0.0, 500.0]), np.float32([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    assert np.all(np.isinf(up.distance_m)) and not up.hit.any()
    assert not up.tag.any() and not up.instance.any() and not up.normal.any() and not up.albedo.any()
    lanes = world.lanes
    lane = int(np.flatnonzero(~lanes.is_junction)[0])
    lane_point = lanes.points_xyz[lanes.offset[lane] + lanes.count[lane] // 2]
    origins, directions = _down(np.repeat(lane_point[None], 3, axis=0), 10.0)
    hits = scene.cast_rays(origins, directions, max_range_m=np.float32([5.0, 10.5, np.inf]))
    assert np.isinf(hits.distance_m[0]) and hits.tag[0] == 0 and not hits.normal[0].any()
    assert np.allclose(hits.distance_m[1:], 10.0, atol=1e-3) and np.all(hits.tag[1:] == Tag.ROAD)
    assert scene.cast_rays(np.zeros((0, 3)), np.zeros((0, 3))).distance_m.shape == (0,)


def test_cast_rays_rejects_bad_input(static_world):
    _, static = static_world
    scene = Scene(static)
    d = np.float32([[0.0, 0.0, -1.0]])
    with pytest.raises(ValueError, match="directions must have shape"):
        scene.cast_rays(np.zeros(3), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="origins must have shape"):
        scene.cast_rays(np.zeros((2, 3)), d)
    with pytest.raises(ValueError, match="unit vectors"):
        scene.cast_rays(np.zeros(3), d * 2)
    with pytest.raises(ValueError, match="max_range_m"):
        scene.cast_rays(np.zeros(3), d, max_range_m=-1.0)
    with pytest.raises(ValueError, match="max_range_m"):
        scene.cast_rays(np.zeros(3), d, max_range_m=np.ones(4))
    with pytest.raises(TypeError, match="StaticScene"):
        Scene("Town01")
    with pytest.raises(ValueError, match="nthreads"):
        Scene(static, nthreads=-1)


# ------------------------------------------------------------------------------------------------ actors
def test_vehicle_is_hit_from_the_front_with_its_tag_and_id(world_scene):
    world, scene = world_scene
    pose, forward = _straight_spawn(world)
    actor = world.spawn_vehicle("vehicle.lincoln.mkz_2020", Pose(pose.x_m, pose.y_m, 0.0, pose.yaw_rad))
    snapshot = world.snapshot()
    scene.update(snapshot)
    row = snapshot.index_of(actor)
    extent_x = snapshot.extent_m[row, 0]
    base = snapshot.location_m[row]
    origin = np.array([*(base[:2] + forward * 20.0), base[2] + 0.5])
    hits = scene.cast_rays(origin, np.array([[-forward[0], -forward[1], 0.0]]))
    assert hits.tag[0] == Tag.CAR and hits.instance[0] == actor
    assert hits.distance_m[0] == pytest.approx(20.0 - extent_x, abs=0.05)
    assert np.allclose(hits.normal[0], [forward[0], forward[1], 0.0], atol=1e-4)
    assert not hits.hit_velocity.any()  # parked
    scene.update(snapshot, hidden_actor_ids=(actor,))
    hidden = scene.cast_rays(origin, np.array([[-forward[0], -forward[1], 0.0]]))
    assert hidden.instance[0] == 0 and hidden.distance_m[0] > 20.0 - extent_x + 1.0


def test_moving_vehicle_hit_moves_and_reports_its_velocity(world_scene):
    world, scene = world_scene
    pose, forward = _straight_spawn(world, clear_m=30.0)
    actor = world.spawn_vehicle("vehicle.lincoln.mkz_2020", Pose(pose.x_m, pose.y_m, 0.0, pose.yaw_rad),
                                speed_mps=8.0)
    origin = np.array([*(np.array([pose.x_m, pose.y_m]) + forward * 25.0), 0.5], dtype=np.float32)
    direction = np.float32([[-forward[0], -forward[1], 0.0]])
    distances = []
    for _ in range(2):
        snapshot = world.tick()
        scene.update(snapshot)
        row = snapshot.index_of(actor)
        hits = scene.cast_rays(origin, direction)
        assert hits.instance[0] == actor
        assert np.allclose(hits.hit_velocity[0], snapshot.velocity_mps[row], atol=1e-3)
        front = snapshot.location_m[row, :2] + forward * snapshot.extent_m[row, 0]
        assert hits.distance_m[0] == pytest.approx(float(np.dot(origin[:2] - front, forward)), abs=0.05)
        distances.append(float(hits.distance_m[0]))
    assert np.linalg.norm(snapshot.velocity_mps[row]) > 5.0
    assert distances[0] - distances[1] > 0.2  # ~8 m/s * 0.05 s closer after one tick


def test_walker_is_hit_with_pedestrian_tag(world_scene):
    world, scene = world_scene
    pose, _ = _straight_spawn(world)
    walker = world.spawn_walker_at(Pose(pose.x_m, pose.y_m))
    snapshot = world.snapshot()
    scene.update(snapshot)
    row = snapshot.index_of(walker)
    assert snapshot.kind[row] == ActorKind.WALKER
    centre = snapshot.location_m[row]
    hits = scene.cast_rays(centre + [0.0, 0.0, 1.5], np.float32([[0.0, 0.0, -1.0]]))
    assert hits.tag[0] == Tag.PEDESTRIAN and hits.instance[0] == walker
    assert hits.distance_m[0] == pytest.approx(1.5 - snapshot.extent_m[row, 2], abs=1e-3)


def test_actor_set_changes_rebuild_tables(world_scene):
    world, scene = world_scene
    pose, forward = _straight_spawn(world)
    first = world.spawn_vehicle("vehicle.carlamotors.carlacola", Pose(pose.x_m, pose.y_m, 0.0, pose.yaw_rad))
    scene.update(world.snapshot())
    origin = np.array([*(np.array([pose.x_m, pose.y_m]) + forward * 20.0), 1.0], dtype=np.float32)
    direction = np.float32([[-forward[0], -forward[1], 0.0]])
    assert scene.cast_rays(origin, direction).tag[0] == Tag.TRUCK
    world.destroy([first])
    second = world.spawn_vehicle("vehicle.mitsubishi.fusorosa", Pose(pose.x_m, pose.y_m, 0.0, pose.yaw_rad))
    scene.update(world.snapshot())
    hits = scene.cast_rays(origin, direction)
    assert hits.tag[0] == Tag.BUS and hits.instance[0] == second
    world.destroy([second])
    scene.update(world.snapshot())
    assert scene.dynamic.raycasting_scene is None
    assert scene.cast_rays(origin, direction).instance[0] == 0


def test_traffic_light_lamps_follow_the_light_state(world_scene):
    world, scene = world_scene
    lamps = scene.static.lamps
    static = scene.static
    # One lamp per light and colour: aim at the centre of its front face from 2 m away.
    picks = []
    for colour in (TrafficLightState.RED, TrafficLightState.GREEN):
        k = int(np.flatnonzero((lamps.light == 0) & (lamps.colour == colour))[0])
        box = static.vertices[static.triangles[lamps.triangles[k - k % 12: k - k % 12 + 12]]].reshape(-1, 3)
        picks.append(box.mean(axis=0))
    head = np.array(picks)
    # The lamps sit on the face toward oncoming traffic: find it by casting from both sides along x and y.
    for state in (TrafficLightState.RED, TrafficLightState.GREEN):
        world.lights.force_state(0, state)
        snapshot = world.tick()
        scene.update(snapshot)
        colours = []
        for centre in head:
            offsets = np.array([[2, 0, 0], [-2, 0, 0], [0, 2, 0], [0, -2, 0]], dtype=np.float32)
            hits = scene.cast_rays(centre + offsets, -offsets / 2.0)
            lamp_hits = hits.tag == Tag.TRAFFIC_LIGHT
            colours.append({tuple(c) for c in hits.albedo[lamp_hits].tolist()})
        red, green = colours
        if state == TrafficLightState.RED:
            assert tuple(LAMP_LIT[int(TrafficLightState.RED)]) in red
            assert tuple(LAMP_DARK[int(TrafficLightState.GREEN)]) in green
        else:
            assert tuple(LAMP_DARK[int(TrafficLightState.RED)]) in red
            assert tuple(LAMP_LIT[int(TrafficLightState.GREEN)]) in green


def test_update_rejects_a_snapshot_of_another_map(static_world):
    _, static = static_world
    other = EmbeddedWorld(map="procedural", procedural=ProceduralTownConfig(seed=0, grid_rows=1, grid_cols=1),
                          generate_missing_lights=False)
    snapshot = other.snapshot()
    if snapshot.light_state.shape[0] == static.num_lights:
        pytest.skip("the other town happens to have as many lights")
    with pytest.raises(ValueError, match="traffic lights"):
        Scene(static).update(snapshot)


def test_ray_hits_fields_have_documented_types(static_world):
    world, static = static_world
    hits = Scene(static).cast_rays(*_down(world.lanes.points_xyz[:5], 3.0))
    assert isinstance(hits, RayHits)
    assert hits.distance_m.dtype == np.float32 and hits.tag.dtype == np.uint8 and hits.instance.dtype == np.uint32
    assert hits.normal.dtype == np.float32 and hits.albedo.dtype == np.uint8 and hits.albedo.shape == (5, 3)
    assert hits.hit_velocity.dtype == np.float32 and hits.hit_velocity.shape == (5, 3)


# ------------------------------------------------------------------------------------------------ packed rays
def test_ray_bundle_poses_directions_and_matches_cast_rays(static_world):
    world, static = static_world
    rng = np.random.default_rng(0)
    local = rng.normal(size=(20000, 3))
    local /= np.linalg.norm(local, axis=1, keepdims=True)
    bundle = RayBundle(local)
    yaw = 0.7
    rotation = np.array([[math.cos(yaw), -math.sin(yaw), 0.0], [math.sin(yaw), math.cos(yaw), 0.0], [0, 0, 1.0]])
    origin = world.lanes.points_xyz[10] + [0.0, 0.0, 1.8]
    rays = bundle.world_rays(origin, rotation)
    assert rays.shape == (20000, 6) and rays.dtype == np.float32 and rays.flags.c_contiguous
    assert np.allclose(rays[:, :3], origin, atol=1e-4)
    assert np.allclose(rays[:, 3:], local @ rotation.T, atol=1e-6)
    scene = Scene(static)
    packed = scene.cast_ray_array(rays, max_range_m=50.0)
    loose = scene.cast_rays(origin, local @ rotation.T, max_range_m=50.0)
    same = packed.tag == loose.tag  # directions differ in the last bit: an edge or two may flip
    assert same.mean() > 0.999
    both = same & packed.hit & loose.hit
    assert np.allclose(packed.distance_m[both], loose.distance_m[both], rtol=1e-3, atol=1e-3)
    assert packed.hit.any() and (packed.distance_m[packed.hit] <= 50.0).all()


def test_packed_rays_reject_bad_input(static_world):
    _, static = static_world
    scene = Scene(static)
    with pytest.raises(ValueError, match="C-contiguous"):
        scene.cast_ray_array(np.zeros((4, 6)))  # float64
    with pytest.raises(ValueError, match="C-contiguous"):
        scene.cast_ray_array(np.zeros((6, 4), np.float32).T)
    with pytest.raises(ValueError, match="unit vectors"):
        RayBundle(np.ones((3, 3)))
    with pytest.raises(ValueError, match="shape"):
        RayBundle(np.ones((3, 2)))
    with pytest.raises(ValueError, match="rotation"):
        RayBundle(np.eye(3)).world_rays(np.zeros(3), np.eye(2))
