"""A walkable mesh as the navigation file CARLA's client loads: a Detour navmesh set of one tile.

CARLA's client runs the walker AI (Recast/Detour crowd) itself. It asks the
server for the map's navigation file (``get_required_files("Nav")`` and
``request_file``) and loads it with ``carla::nav::Navigation::Load``. That
file is a "navmesh set": a 40-byte header (``'MSET'``, version 1, the tile
count and ``dtNavMeshParams``), then for each tile an 8-byte header (tile
reference, data size) and Detour's tile data (``dtMeshHeader`` version 7,
vertices, polygons, link space, detail meshes and triangles, a bounding-volume
tree). Poly refs are 32-bit in 0.9.16's build. CARLA ships one tile per map
(a "solo mesh"); so does this.

What Detour needs and this writer keeps (every item was checked against the
0.9.16 wheel's own Detour):

* Recast's axes: ``(x, y_up, z) = (carla.x, carla.z, carla.y)``.
* Polygon winding: ``dtTriArea2D(v0, v1, v2) > 0``, which is clockwise in
  CARLA's x-y (negative shoelace area); :class:`WalkableMesh` is
  counter-clockwise, so polygons are written reversed.
* ``neis``: neighbour index + 1 across each edge, 0 on the border.
* One fan of detail triangles per polygon, with the boundary flags in each
  triangle's fourth byte (without them the client crashes in
  ``closestPointOnPoly``).
* Room for one link per shared edge; a tile reference with salt 1.
* Poly flags from the area, as CARLA's RecastBuilder sets them; the walker
  filters select by these flags.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

from sim.embedded.traffic.walkable import MAX_POLY_VERTS, WalkableMesh, WalkArea

SET_MAGIC = 0x4D534554  # 'MSET'
SET_VERSION = 1
TILE_MAGIC = 0x444E4156  # 'DNAV'
TILE_VERSION = 7
AREA_FLAGS = {WalkArea.SIDEWALK: 0x02, WalkArea.CROSSWALK: 0x04, WalkArea.ROAD: 0x08}
"""Poly flags by area (CARLA's CARLA_TYPE_*; 0x01 is "none", which every walker filter excludes)."""
WALKABLE_HEIGHT_M = 1.8
WALKABLE_RADIUS_M = 0.3
WALKABLE_CLIMB_M = 0.3
"""Agent size written in the tile header; the climb decides which polygon is "under" a query point."""
MAX_VERTICES = 0xFFFF
"""Vertex indices are 16-bit."""
_BV_RESOLUTION_M = 0.1

_SET_HEADER = struct.Struct("<iii3fffii")  # magic, version, tiles, dtNavMeshParams (orig, w, h, tiles, polys)
_TILE_REF = struct.Struct("<Ii")
_MESH_HEADER = struct.Struct("<iiiiiIiiiiiiiiifff3f3ff")
_POLY = np.dtype([("first_link", "<u4"), ("verts", "<u2", (6,)), ("neis", "<u2", (6,)), ("flags", "<u2"),
                  ("vert_count", "u1"), ("area_and_type", "u1")])
_DETAIL_MESH = np.dtype([("vert_base", "<u4"), ("tri_base", "<u4"), ("vert_count", "u1"), ("tri_count", "u1"),
                         ("pad", "u1", (2,))])
_BV_NODE = np.dtype([("bmin", "<u2", (3,)), ("bmax", "<u2", (3,)), ("i", "<i4")])
_LINK_SIZE = 12


class NavMeshError(ValueError):
    """The walkable mesh cannot be written as a Detour tile (too big, bad polygons)."""


def encode_navmesh(mesh: WalkableMesh) -> bytes:
    """The navigation file of ``mesh`` (see the module docstring)."""
    count = mesh.num_polygons
    if count == 0:
        raise NavMeshError("the walkable mesh has no polygons")
    if mesh.vertices_xyz.shape[0] > MAX_VERTICES:
        raise NavMeshError(f"{mesh.vertices_xyz.shape[0]} vertices do not fit one Detour tile ({MAX_VERTICES} max)")
    if np.any((mesh.vertex_count < 3) | (mesh.vertex_count > MAX_POLY_VERTS)):
        raise NavMeshError(f"polygons need 3..{MAX_POLY_VERTS} vertices")
    verts = mesh.vertices_xyz[:, [0, 2, 1]].astype(np.float32)  # Recast axes
    bmin, bmax = verts.min(axis=0), verts.max(axis=0)
    polys, neighbours = _reversed(mesh)
    links = int((neighbours >= 0).sum())

    poly = np.zeros(count, dtype=_POLY)
    poly["first_link"] = 0xFFFFFFFF
    poly["verts"] = np.maximum(polys, 0)
    poly["neis"] = neighbours + 1  # -1 (border) -> 0
    poly["flags"] = [AREA_FLAGS[WalkArea(a)] for a in mesh.area.tolist()]
    poly["vert_count"] = mesh.vertex_count
    poly["area_and_type"] = mesh.area & 0x3F  # type 0: ground polygon
    detail, tris = _detail_fans(mesh.vertex_count)
    quant = min(1.0 / _BV_RESOLUTION_M, 65535.0 / max(float((bmax - bmin).max()), 1e-3))
    tree = _bv_tree(verts, polys, mesh.vertex_count, bmin, quant)

    header = _MESH_HEADER.pack(TILE_MAGIC, TILE_VERSION, 0, 0, 0, 0, count, verts.shape[0], max(links, 1), count, 0,
                               tris.shape[0], tree.shape[0], 0, count, WALKABLE_HEIGHT_M, WALKABLE_RADIUS_M,
                               WALKABLE_CLIMB_M, *bmin.tolist(), *bmax.tolist(), quant)
    tile = b"".join([header, verts.tobytes(), poly.tobytes(), bytes(_LINK_SIZE * max(links, 1)), detail.tobytes(),
                     tris.tobytes(), tree.tobytes()])
    poly_bits = max(count - 1, 1).bit_length()  # ilog2(nextPow2(count)); one tile: no tile bits
    if 32 - poly_bits < 10:
        raise NavMeshError(f"{count} polygons leave too few salt bits in 32-bit poly refs")
    width, depth = max(float(bmax[0] - bmin[0]), 1e-3), max(float(bmax[2] - bmin[2]), 1e-3)
    head = _SET_HEADER.pack(SET_MAGIC, SET_VERSION, 1, *bmin.tolist(), width, depth, 1, count)
    return head + _TILE_REF.pack(1 << poly_bits, len(tile)) + tile  # salt 1, tile 0


def navmesh_file_name(map_name: str, data: bytes) -> str:
    """Name the client caches the file under: the map and a hash of the content (a cached name is never re-fetched)."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in map_name) or "map"
    return f"avsim/Nav/{safe}_{hashlib.sha1(data).hexdigest()[:12]}.bin"


def _reversed(mesh: WalkableMesh) -> tuple[np.ndarray, np.ndarray]:
    """Polygons in Detour's winding and the neighbour across each of their edges."""
    n = mesh.vertex_count[:, None]
    k = np.arange(MAX_POLY_VERTS)[None, :]
    valid = k < n
    # reversed polygon r[k] = v[n-1-k]; its edge k runs r[k] -> r[k+1], the original edge n-2-k backwards
    source = np.where(valid, n - 1 - k, 0)
    polys = np.where(valid, np.take_along_axis(mesh.polygons, source, axis=1), -1)
    edge = np.where(valid, (n - 2 - k) % n, 0)
    neighbours = np.where(valid, np.take_along_axis(mesh.neighbours, edge, axis=1), -1)
    return polys, neighbours


def _detail_fans(vertex_count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One fan (0, j-1, j) per polygon, no extra vertices; byte 3 flags the edges on the polygon's boundary."""
    tri_count = vertex_count - 2
    detail = np.zeros(vertex_count.shape[0], dtype=_DETAIL_MESH)
    detail["tri_base"] = np.concatenate([[0], np.cumsum(tri_count)[:-1]])
    detail["tri_count"] = tri_count
    owner = np.repeat(np.arange(vertex_count.shape[0]), tri_count)
    j = np.arange(owner.shape[0]) - detail["tri_base"][owner].astype(np.int64) + 2  # 2 .. n-1
    nv = vertex_count[owner]
    flags = (1 << 2) | np.where(j == 2, 1, 0) | np.where(j == nv - 1, 1 << 4, 0)
    tris = np.column_stack([np.zeros_like(j), j - 1, j, flags]).astype(np.uint8)
    return detail, tris


def _bv_tree(verts: np.ndarray, polys: np.ndarray, vertex_count: np.ndarray, bmin: np.ndarray,
             quant: float) -> np.ndarray:
    """Detour's bounding-volume tree over the polygons: median splits on the longest axis, in preorder."""
    corners = verts[np.maximum(polys, 0)]  # (P, 6, 3)
    valid = (np.arange(MAX_POLY_VERTS)[None, :] < vertex_count[:, None])[..., None]
    lo = np.where(valid, corners, np.inf).min(axis=1)
    hi = np.where(valid, corners, -np.inf).max(axis=1)
    qlo = np.clip(np.floor((lo - bmin) * quant), 0, 65535).astype(np.int64)
    qhi = np.clip(np.ceil((hi - bmin) * quant), 0, 65535).astype(np.int64)
    nodes = np.zeros(2 * polys.shape[0] - 1, dtype=_BV_NODE)
    cursor = 0

    def subdivide(items: np.ndarray) -> None:
        nonlocal cursor
        here = cursor
        cursor += 1
        node_lo, node_hi = qlo[items].min(axis=0), qhi[items].max(axis=0)
        nodes[here]["bmin"], nodes[here]["bmax"] = node_lo, node_hi
        if items.size == 1:
            nodes[here]["i"] = int(items[0])
            return
        axis = int(np.argmax(node_hi - node_lo))
        order = items[np.argsort(qlo[items, axis], kind="stable")]
        half = items.size // 2
        subdivide(order[:half])
        subdivide(order[half:])
        nodes[here]["i"] = -(cursor - here)  # escape: the size of this subtree

    subdivide(np.arange(polys.shape[0]))
    return nodes
