"""The static town layout (no Open3D): triangles, tags, lamps and the building boxes the server reports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sim.embedded.sensors.meshes import Tag
from sim.embedded.sensors.town import TownLayout
from sim.embedded.world import EmbeddedWorld
from sim.maps.procedural import ProceduralTownConfig
from sim.transforms import box_corners_3d


@pytest.fixture(scope="module")
def town():
    """A small procedural town and its layout (read-only use)."""
    world = EmbeddedWorld(map="procedural", procedural=ProceduralTownConfig(seed=0, grid_rows=1, grid_cols=2), seed=0)
    return world, TownLayout.build(world, seed=0)


def test_layout_arrays_tags_and_lamps(town):
    world, layout = town
    t = layout.num_triangles
    assert layout.vertices.dtype == np.float32 and layout.triangles.shape == (t, 3)
    assert layout.triangle_tag.shape == (t,) and layout.triangle_albedo.shape == (t, 3)
    assert not layout.triangle_instance.any()
    counts = layout.triangle_counts()
    for tag in (Tag.ROAD, Tag.SIDEWALK, Tag.BUILDING, Tag.POLE, Tag.TRAFFIC_LIGHT, Tag.VEGETATION, Tag.TERRAIN,
                Tag.ROAD_LINE):
        assert counts.get(tag, 0) > 0, f"no triangles with tag {tag}"
    assert sum(counts.values()) == t
    assert layout.num_lights == world.signals.num_lights > 0
    assert np.all(layout.triangle_tag[layout.lamps.triangles] == Tag.TRAFFIC_LIGHT)
    for array in (layout.vertices, layout.triangles, layout.triangle_tag, layout.building_boxes):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0


def test_building_boxes_enclose_exactly_the_building_triangles(town):
    _, layout = town
    boxes = layout.building_boxes
    assert boxes.shape == (layout.num_buildings, 7) and layout.num_buildings > 0
    assert np.all(boxes[:, 3:6] > 0.5)  # half width, depth, height [m]
    corners = box_corners_3d(boxes[:, :3], boxes[:, 6], boxes[:, 3:6]).reshape(-1, 3)
    building = layout.triangle_tag == Tag.BUILDING
    vertices = layout.vertices[np.unique(layout.triangles[building])]
    # The building meshes are the boxes: the same corner set (float32 vertices of float64 corners).
    assert vertices.shape[0] == corners.shape[0]
    order = np.lexsort(vertices.T)
    assert np.allclose(vertices[order], corners[np.lexsort(corners.astype(np.float32).T)], atol=1e-3)


def test_layout_is_seeded(town):
    world, layout = town
    again, other = TownLayout.build(world, seed=0), TownLayout.build(world, seed=1)
    assert np.array_equal(again.vertices, layout.vertices) and np.array_equal(again.building_boxes,
                                                                              layout.building_boxes)
    assert other.building_boxes.shape != layout.building_boxes.shape or not np.array_equal(
        other.building_boxes, layout.building_boxes)


def test_layout_needs_no_open3d():
    code = ("import sys; sys.modules['open3d'] = None\n"  # importing open3d would now raise
            "from sim.embedded.world import EmbeddedWorld\n"
            "from sim.embedded.sensors.town import TownLayout\n"
            "from sim.embedded.sensors.actor_meshes import ActorMeshes\n"
            "world = EmbeddedWorld(map='Town01', seed=0)\n"
            "layout = TownLayout.build(world, seed=0)\n"
            "world.spawn_traffic(3)\n"
            "meshes = ActorMeshes(); meshes.update(world.tick())\n"
            "print(layout.num_buildings > 0, meshes.triangles.shape[0] > 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"]
