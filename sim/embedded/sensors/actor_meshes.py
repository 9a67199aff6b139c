"""Actor meshes for the raycasting scene: low-poly vehicles and pedestrians posed from a snapshot.

:class:`ActorMeshes` turns a :class:`~sim.api.WorldSnapshot` into world-frame
triangles with a semantic tag (from the snapshot), an instance id (the actor
id) and a base colour per triangle. Plain numpy (no Open3D): the raycasting
scene (:mod:`sim.embedded.sensors.scene`) builds its actor BVH from these.
"""

from __future__ import annotations

import numpy as np

from sim.api import ActorKind, WorldSnapshot
from sim.embedded.sensors.meshes import Part, PartMesh, Tag, vehicle_mesh, walker_mesh

__all__ = ["ActorMeshes"]

_BODY_PAINT = np.array([(200, 30, 30), (30, 60, 160), (232, 232, 232), (24, 24, 26), (124, 124, 130),
                        (205, 172, 40), (40, 120, 64), (150, 150, 156), (90, 30, 30)], dtype=np.uint8)
_CLOTHES = np.array([(40, 60, 120), (150, 30, 40), (60, 110, 60), (200, 200, 200), (30, 30, 30),
                     (190, 140, 50), (110, 70, 130)], dtype=np.uint8)
_PART_COLOUR = {Part.GLASS: (44, 54, 66), Part.TYRE: (24, 24, 24), Part.SKIN: (212, 170, 140),
                Part.TROUSERS: (46, 48, 60)}

_BODY_BY_TAG = {Tag.TRUCK: "truck", Tag.BUS: "bus", Tag.MOTORCYCLE: "motorcycle", Tag.BICYCLE: "motorcycle"}


def _vehicle_body(type_id: str, tag: int) -> str:
    """Template body of a vehicle: from the embedded vehicle types, else from its semantic tag."""
    from sim.embedded.vehicle_types import get_vehicle_type

    try:
        base = get_vehicle_type(type_id).base_type
    except (KeyError, ValueError):
        return _BODY_BY_TAG.get(int(tag), "car")
    return base if base in ("car", "van", "truck", "bus", "motorcycle") else "car"


class ActorMeshes:
    """Vehicle and pedestrian meshes posed from a snapshot.

    After :meth:`update`: ``vertices`` (V, 3) float32 world, ``triangles``
    (T, 3) uint32, and per triangle ``triangle_tag``, ``triangle_instance``
    (actor id), ``triangle_albedo`` and ``triangle_row`` (the actor's row in
    the snapshot); ``snapshot`` is the last one posed. Template meshes and
    per-triangle tables are rebuilt only when the set of actors changes
    (``structure_version`` counts those rebuilds); a plain tick costs one
    vectorised pose transform.
    """

    def __init__(self) -> None:
        self._templates: dict[tuple, PartMesh] = {}
        self._key: tuple | None = None
        self._ids_ref: np.ndarray | None = None
        self._local = np.zeros((0, 3))
        self._vertex_row = np.zeros(0, np.int64)
        self.triangles = np.zeros((0, 3), np.uint32)
        self.triangle_tag = np.zeros(0, np.uint8)
        self.triangle_instance = np.zeros(0, np.uint32)
        self.triangle_albedo = np.zeros((0, 3), np.uint8)
        self.triangle_row = np.zeros(0, np.int64)
        self.vertices = np.zeros((0, 3), np.float32)
        self.structure_version = 0
        self.snapshot: WorldSnapshot | None = None

    @property
    def num_triangles(self) -> int:
        """Number of actor triangles."""
        return int(self.triangles.shape[0])

    def template(self, kind: int, type_id: str, tag: int, extent: np.ndarray) -> PartMesh:
        """The (cached) template mesh of an actor, in its own frame."""
        body = "walker" if kind == ActorKind.WALKER else _vehicle_body(type_id, tag)
        key = (body, *np.round(extent, 4).tolist())
        mesh = self._templates.get(key)
        if mesh is None:
            mesh = walker_mesh(extent) if body == "walker" else vehicle_mesh(extent, body)
            self._templates[key] = mesh
        return mesh

    def _rebuild_structure(self, snapshot: WorldSnapshot, hidden: frozenset[int]) -> None:
        locals_, vrows, tris, tags, inst, albedo, trows = [], [], [], [], [], [], []
        offset = 0
        for row, actor_id in enumerate(snapshot.actor_id.tolist()):
            if actor_id in hidden:
                continue
            kind, tag = int(snapshot.kind[row]), int(snapshot.semantic_tag[row])
            mesh = self.template(kind, snapshot.type_id[row], tag, np.asarray(snapshot.extent_m[row], dtype=float))
            n = mesh.triangles.shape[0]
            locals_.append(mesh.vertices)
            vrows.append(np.full(mesh.vertices.shape[0], row))
            tris.append(mesh.triangles + offset)
            offset += mesh.vertices.shape[0]
            part_tag = np.full(n, tag, dtype=np.uint8)
            part_tag[mesh.part == Part.RIDER] = Tag.RIDER
            tags.append(part_tag)
            inst.append(np.full(n, actor_id, dtype=np.uint32))
            trows.append(np.full(n, row))
            palette = _CLOTHES if kind == ActorKind.WALKER else _BODY_PAINT
            colours = np.repeat(palette[(actor_id * 7919) % len(palette)][None], n, axis=0)
            for part, colour in _PART_COLOUR.items():
                colours[mesh.part == part] = colour
            colours[mesh.part == Part.RIDER] = (40, 40, 44)
            albedo.append(colours)
        if locals_:
            self._local = np.concatenate(locals_)
            self._vertex_row = np.concatenate(vrows)
            self.triangles = np.concatenate(tris).astype(np.uint32)
            self.triangle_tag = np.concatenate(tags)
            self.triangle_instance = np.concatenate(inst)
            self.triangle_albedo = np.concatenate(albedo)
            self.triangle_row = np.concatenate(trows)
        else:
            self._local, self._vertex_row = np.zeros((0, 3)), np.zeros(0, np.int64)
            self.triangles = np.zeros((0, 3), np.uint32)
            self.triangle_tag, self.triangle_instance = np.zeros(0, np.uint8), np.zeros(0, np.uint32)
            self.triangle_albedo, self.triangle_row = np.zeros((0, 3), np.uint8), np.zeros(0, np.int64)
        self.structure_version += 1

    def update(self, snapshot: WorldSnapshot, hidden_actor_ids: tuple[int, ...] = ()) -> None:
        """Pose every actor of ``snapshot`` (except ``hidden_actor_ids``)."""
        hidden = frozenset(int(a) for a in hidden_actor_ids)
        same = (self._ids_ref is snapshot.actor_id and self._key is not None and self._key[1] == hidden)
        if not same:
            key = (snapshot.actor_id.tobytes(), hidden, snapshot.type_id, snapshot.extent_m.tobytes())
            if key != self._key:
                self._rebuild_structure(snapshot, hidden)
                self._key = key
            self._ids_ref = snapshot.actor_id
        self.snapshot = snapshot
        if self.triangles.shape[0] == 0:
            self.vertices = np.zeros((0, 3), np.float32)
            return
        yaw = snapshot.rotation_rad[:, 1]
        c, s = np.cos(yaw)[self._vertex_row], np.sin(yaw)[self._vertex_row]
        local = self._local
        vertices = np.empty(local.shape, dtype=np.float32)
        origin = snapshot.location_m[self._vertex_row]
        vertices[:, 0] = c * local[:, 0] - s * local[:, 1] + origin[:, 0]
        vertices[:, 1] = s * local[:, 0] + c * local[:, 1] + origin[:, 1]
        vertices[:, 2] = local[:, 2] + origin[:, 2]
        self.vertices = vertices

