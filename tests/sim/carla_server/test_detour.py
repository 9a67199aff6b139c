"""The Detour navmesh set written for CARLA's client: parsed back field by field."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from sim.carla_server.detour import (
    _BV_NODE,
    _DETAIL_MESH,
    _POLY,
    NavMeshError,
    encode_navmesh,
    navmesh_file_name,
)
from sim.embedded.traffic.walkable import WalkableMesh, build_walkable_mesh
from sim.embedded.world import EmbeddedWorld


def _two_squares() -> WalkableMesh:
    """Sidewalk square [0,2]^2 beside a crosswalk square [2,4]x[0,2], counter-clockwise in CARLA x-y."""
    vertices = np.array([[0, 0, 0.1], [2, 0, 0.1], [2, 2, 0.1], [0, 2, 0.1], [4, 0, 0.0], [4, 2, 0.0]], dtype=float)
    polygons = np.full((2, 6), -1)
    polygons[0, :4] = [0, 1, 2, 3]
    polygons[1, :4] = [1, 4, 5, 2]
    neighbours = np.full((2, 6), -1)
    neighbours[0, 1] = 1  # edge 1 -> 2
    neighbours[1, 3] = 0  # edge 2 -> 1
    return WalkableMesh(vertices, polygons, np.array([4, 4]), np.array([1, 2], dtype=np.uint8), neighbours)


def _parse(data: bytes) -> dict:
    """Split a one-tile navmesh set into its sections (the layout Navigation::Load and dtNavMesh::addTile read)."""
    magic, version, tiles, *params = struct.unpack_from("<iii3fffii", data, 0)
    tile_ref, size = struct.unpack_from("<Ii", data, 40)
    tile = data[48:]
    head = struct.unpack_from("<iiiiiIiiiiiiiiifff3f3ff", tile, 0)
    names = ("magic", "version", "x", "y", "layer", "user", "polys", "verts", "links", "detail_meshes",
             "detail_verts", "detail_tris", "bv_nodes", "offmesh", "offmesh_base", "height", "radius", "climb")
    header = dict(zip(names, head[:18]))
    header["bmin"], header["bmax"], header["quant"] = head[18:21], head[21:24], head[24]
    offset = 100
    verts = np.frombuffer(tile, np.float32, header["verts"] * 3, offset).reshape(-1, 3)
    offset += verts.nbytes
    polys = np.frombuffer(tile, _POLY, header["polys"], offset)
    offset += polys.nbytes + 12 * header["links"]
    detail = np.frombuffer(tile, _DETAIL_MESH, header["detail_meshes"], offset)
    offset += detail.nbytes + 12 * header["detail_verts"]
    tris = np.frombuffer(tile, np.uint8, header["detail_tris"] * 4, offset).reshape(-1, 4)
    offset += tris.nbytes
    tree = np.frombuffer(tile, _BV_NODE, header["bv_nodes"], offset)
    offset += tree.nbytes
    return {"set": (magic, version, tiles, params), "tile_ref": tile_ref, "size": size, "tile_bytes": len(tile),
            "end": offset, "header": header, "verts": verts, "polys": polys, "detail": detail, "tris": tris,
            "tree": tree}


def _detour_area(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """Detour's dtTriArea2D on Recast (x, y_up, z) points."""
    return float((c[0] - a[0]) * (b[2] - a[2]) - (b[0] - a[0]) * (c[2] - a[2]))


def test_headers_of_the_set_and_the_tile():
    parsed = _parse(encode_navmesh(_two_squares()))
    magic, version, tiles, params = parsed["set"]
    assert (magic, version, tiles) == (0x4D534554, 1, 1)
    orig, (width, depth), (max_tiles, max_polys) = params[:3], params[3:5], params[5:]
    assert orig == pytest.approx([0.0, 0.0, 0.0]) and (width, depth) == pytest.approx((4.0, 2.0))
    assert (max_tiles, max_polys) == (1, 2)
    assert parsed["tile_ref"] == 1 << 1  # salt 1 above one poly bit, tile 0
    assert parsed["size"] == parsed["tile_bytes"] == parsed["end"]
    h = parsed["header"]
    assert (h["magic"], h["version"], h["polys"], h["verts"], h["links"]) == (0x444E4156, 7, 2, 6, 2)
    assert (h["detail_meshes"], h["detail_verts"], h["detail_tris"], h["bv_nodes"]) == (2, 0, 4, 3)
    assert (h["offmesh"], h["offmesh_base"]) == (0, 2)
    assert h["bmin"] == pytest.approx((0.0, 0.0, 0.0)) and h["bmax"] == pytest.approx((4.0, 0.1, 2.0))


def test_vertices_polygons_and_links_in_detours_terms():
    parsed = _parse(encode_navmesh(_two_squares()))
    # Recast axes: (x, up, y).
    assert parsed["verts"][1] == pytest.approx([2.0, 0.1, 0.0]) and parsed["verts"][5] == pytest.approx([4.0, 0.0, 2.0])
    polys = parsed["polys"]
    assert polys["verts"][0, :4].tolist() == [3, 2, 1, 0]  # reversed: Detour's winding
    assert polys["neis"][0, :4].tolist() == [0, 2, 0, 0]  # edge 2 -> 1 borders poly 1 (index + 1)
    assert polys["neis"][1, :4].tolist() == [0, 0, 0, 1]  # its edge 1 -> 2 (after 2 -> 5 -> 4 -> 1 ...)
    assert polys["verts"][1, :4].tolist() == [2, 5, 4, 1]
    assert polys["flags"].tolist() == [0x02, 0x04] and polys["area_and_type"].tolist() == [1, 2]
    assert polys["vert_count"].tolist() == [4, 4]
    for p in range(2):
        v = parsed["verts"][polys["verts"][p, :3]]
        assert _detour_area(*v) > 0


def test_detail_triangles_fan_with_boundary_flags():
    parsed = _parse(encode_navmesh(_two_squares()))
    assert parsed["detail"]["tri_base"].tolist() == [0, 2] and parsed["detail"]["tri_count"].tolist() == [2, 2]
    # (0, 1, 2): edges 0-1 and 1-2 on the boundary; (0, 2, 3): edges 2-3 and 3-0.
    assert parsed["tris"].tolist() == [[0, 1, 2, 0b000101], [0, 2, 3, 0b010100]] * 2


def _query(tree: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> set[int]:
    """Polygons whose quantized box overlaps [lo, hi], walking the tree as dtNavMeshQuery does."""
    found, i = set(), 0
    while i < tree.shape[0]:
        node = tree[i]
        overlap = bool(np.all(node["bmin"] <= hi) and np.all(node["bmax"] >= lo))
        leaf = node["i"] >= 0
        if leaf and overlap:
            found.add(int(node["i"]))
        i += 1 if overlap or leaf else -int(node["i"])
    return found


@pytest.fixture(scope="module")
def town_mesh():
    world = EmbeddedWorld(map="Town01", seed=0)
    return build_walkable_mesh(world.geometry, world.walker_network, world.lanes)


def test_a_town_mesh_keeps_winding_and_its_bounding_volume_tree_finds_what_brute_force_finds(town_mesh):
    parsed = _parse(encode_navmesh(town_mesh))
    polys, verts, tree = parsed["polys"], parsed["verts"], parsed["tree"]
    assert polys.shape[0] == town_mesh.num_polygons and tree.shape[0] == 2 * polys.shape[0] - 1
    for p in range(polys.shape[0]):
        v = verts[polys["verts"][p, : polys["vert_count"][p]]]
        assert all(_detour_area(v[0], v[k], v[k + 1]) > 0 for k in range(1, v.shape[0] - 1)), p
    leaves = tree["i"][tree["i"] >= 0]
    assert sorted(leaves.tolist()) == list(range(polys.shape[0]))
    boxes = np.array([(tree["bmin"][k], tree["bmax"][k]) for k in np.flatnonzero(tree["i"] >= 0)])
    leaf_of = leaves
    rng = np.random.default_rng(0)
    for _ in range(20):
        centre = rng.uniform(tree["bmin"][0], tree["bmax"][0])
        lo, hi = centre - 40, centre + 40
        expected = {int(leaf_of[k]) for k in range(boxes.shape[0])
                    if np.all(boxes[k, 0] <= hi) and np.all(boxes[k, 1] >= lo)}
        assert _query(tree, lo, hi) == expected


def test_file_name_names_the_map_and_changes_with_the_content():
    data = encode_navmesh(_two_squares())
    name = navmesh_file_name("Town 01/x", data)
    assert name.startswith("avsim/Nav/Town_01_x_") and name.endswith(".bin")
    assert navmesh_file_name("Town 01/x", data + b"\0") != name


def test_meshes_detour_cannot_hold_are_errors():
    mesh = _two_squares()
    empty = WalkableMesh(mesh.vertices_xyz, mesh.polygons[:0], mesh.vertex_count[:0], mesh.area[:0],
                         mesh.neighbours[:0])
    with pytest.raises(NavMeshError, match="no polygons"):
        encode_navmesh(empty)
    big = WalkableMesh(np.zeros((70_000, 3)), mesh.polygons, mesh.vertex_count, mesh.area, mesh.neighbours)
    with pytest.raises(NavMeshError, match="70000 vertices"):
        encode_navmesh(big)
    bad = WalkableMesh(mesh.vertices_xyz, mesh.polygons, np.array([4, 2]), mesh.area, mesh.neighbours)
    with pytest.raises(NavMeshError, match="3..6 vertices"):
        encode_navmesh(bad)
