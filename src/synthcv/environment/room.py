"""Procedural rooms and furniture, built from axis-aligned boxes.

Why boxes: every part is then an exact static collider (a table's legs and top, a tray's rims,
a shelf's boards: objects fall between them, never onto a convex hull spanning a gap), its
texture coordinates are in metres so a texture tiles at the same size on every surface, and a
wall with a window or a door is the wall's rectangle cut around the opening.

Frames: a room is centred on the world origin, its floor's top at ``floor_z``; walls, floor and
ceiling are ``WALL`` thick and lie outside the interior, so the interior is exactly
width × depth × height. Wall k faces the interior from +x (0), +y (1), -x (2), -y (3). A piece
of furniture is built in its own frame (origin at the centre of its footprint on the floor, +z
up) and placed by a position and a yaw.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from synthcv.scene import Mesh

WALL = 0.1  # metres: thickness of walls, floor and ceiling
DOOR_THICKNESS = 0.04
FURNITURE_KINDS = ("table", "shelf")


@dataclass(frozen=True)
class Opening:
    """A hole in wall ``wall``: ``u0..u1`` along the wall (from its left end seen from inside),
    ``z0..z1`` above the floor."""

    wall: int
    u0: float
    u1: float
    z0: float
    z1: float


def box_mesh(boxes: np.ndarray, source: str, uv_per_metre: float = 1.0) -> Mesh:
    """One mesh of axis-aligned boxes ``(N, 2, 3)`` [centre, size]; 4 vertices per face so
    faces stay flat-shaded, counter-clockwise seen from outside, UVs in metres × ``uv_per_metre``.
    """
    verts, faces, uvs = [], [], []
    for centre, size in np.asarray(boxes, dtype=np.float64):
        lo, hi = centre - size / 2, centre + size / 2
        for axis in range(3):
            a, b = (axis + 1) % 3, (axis + 2) % 3  # (a, b, axis) is right-handed
            for side, value in ((1, hi[axis]), (-1, lo[axis])):
                corners = [(lo[a], lo[b]), (hi[a], lo[b]), (hi[a], hi[b]), (lo[a], hi[b])]
                if side < 0:
                    corners = corners[::-1]
                base = len(verts)
                for ca, cb in corners:
                    p = np.empty(3)
                    p[axis], p[a], p[b] = value, ca, cb
                    verts.append(p)
                    uvs.append((ca * uv_per_metre, cb * uv_per_metre))
                faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    return Mesh(
        vertices=np.array(verts),
        faces=np.array(faces, dtype=np.int32),
        source=source,
        uv=np.array(uvs),
    )


def wall_frame(
    k: int, width: float, depth: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Wall k's start point (its left end seen from inside, at the interior face), its unit
    direction along the wall, its outward normal and its length."""
    hw, hd = width / 2, depth / 2
    if k == 0:
        return np.array([hw, -hd]), np.array([0.0, 1.0]), np.array([1.0, 0.0]), depth
    if k == 1:
        return np.array([hw, hd]), np.array([-1.0, 0.0]), np.array([0.0, 1.0]), width
    if k == 2:
        return np.array([-hw, hd]), np.array([0.0, -1.0]), np.array([-1.0, 0.0]), depth
    return np.array([-hw, -hd]), np.array([1.0, 0.0]), np.array([0.0, -1.0]), width


def _cut(length: float, height: float, holes: list[Opening]) -> list[tuple[float, ...]]:
    """The rectangle [0, length] × [0, height] minus the holes, as (u0, u1, z0, z1) pieces."""
    cuts = sorted({0.0, length, *(h.u0 for h in holes), *(h.u1 for h in holes)})
    pieces = []
    for u0, u1 in itertools.pairwise(cuts):
        if u1 - u0 < 1e-9:
            continue
        mid = (u0 + u1) / 2
        inside = sorted((h.z0, h.z1) for h in holes if h.u0 < mid < h.u1)
        z = 0.0
        for z0, z1 in inside:
            if z0 > z + 1e-9:
                pieces.append((u0, u1, z, z0))
            z = max(z, z1)
        if height > z + 1e-9:
            pieces.append((u0, u1, z, height))
    return pieces


def wall_boxes(
    k: int, width: float, depth: float, height: float, floor_z: float, holes: list[Opening]
) -> np.ndarray:
    """Wall k as boxes (N, 2, 3) around its openings; the walls overlap at the corners so the
    room is closed there."""
    start, along, out, length = wall_frame(k, width, depth)
    boxes = []
    for u0, u1, z0, z1 in _cut(length, height, [h for h in holes if h.wall == k]):
        # the end pieces reach over the corner by a wall's thickness
        a = u0 - (WALL if u0 <= 1e-9 else 0.0)
        b = u1 + (WALL if u1 >= length - 1e-9 else 0.0)
        c2 = start + along * (a + b) / 2 + out * WALL / 2
        size_xy = np.abs(along) * (b - a) + np.abs(out) * WALL
        boxes.append([[c2[0], c2[1], floor_z + (z0 + z1) / 2], [*size_xy, z1 - z0]])
    return np.array(boxes, dtype=np.float64).reshape(-1, 2, 3)


def shell_boxes(width: float, depth: float, height: float, floor_z: float) -> dict[str, np.ndarray]:
    """Floor and ceiling slabs, covering the walls' corners."""
    w, d = width + 2 * WALL, depth + 2 * WALL
    return {
        "floor": np.array([[[0.0, 0.0, floor_z - WALL / 2], [w, d, WALL]]]),
        "ceiling": np.array([[[0.0, 0.0, floor_z + height + WALL / 2], [w, d, WALL]]]),
    }


def door_boxes(door: Opening, width: float, depth: float, floor_z: float) -> np.ndarray:
    """A closed door panel in its opening, set into the wall (flush with the inside face)."""
    start, along, out, _ = wall_frame(door.wall, width, depth)
    c2 = start + along * (door.u0 + door.u1) / 2 + out * DOOR_THICKNESS / 2
    size_xy = np.abs(along) * (door.u1 - door.u0) + np.abs(out) * DOOR_THICKNESS
    zc = floor_z + (door.z0 + door.z1) / 2
    return np.array([[[c2[0], c2[1], zc], [*size_xy, door.z1 - door.z0]]])


# ------------------------------------------------------------------ furniture (own frames)


def table_boxes(width: float, depth: float, height: float) -> np.ndarray:
    """A table: a 4 cm top whose upper face is at ``height``, and four 6 cm legs."""
    top, leg = 0.04, 0.06
    boxes = [[[0.0, 0.0, height - top / 2], [width, depth, top]]]
    lh = height - top
    for sx in (-1, 1):
        for sy in (-1, 1):
            x = sx * (width / 2 - leg / 2 - 0.03)
            y = sy * (depth / 2 - leg / 2 - 0.03)
            boxes.append([[x, y, lh / 2], [leg, leg, lh]])
    return np.array(boxes)


def shelf_boxes(width: float, depth: float, height: float, boards: int = 5) -> np.ndarray:
    """An open bookcase: two sides, a back (at -y) and ``boards`` boards, 2 cm thick."""
    t = 0.02
    boxes = [
        [[-(width - t) / 2, 0.0, height / 2], [t, depth, height]],
        [[(width - t) / 2, 0.0, height / 2], [t, depth, height]],
        [[0.0, -(depth - t) / 2, height / 2], [width - 2 * t, t, height]],
    ]
    for k in range(boards):
        z = t / 2 + k * (height - t) / (boards - 1)
        boxes.append([[0.0, t / 2, z], [width - 2 * t, depth - t, t]])
    return np.array(boxes)


def tray_boxes(width: float, depth: float, rim: float = 0.05) -> np.ndarray:
    """A tray: a 1 cm bottom and four 1 cm rims ``rim`` high."""
    t = 0.01
    return np.array(
        [
            [[0.0, 0.0, t / 2], [width, depth, t]],
            [[-(width - t) / 2, 0.0, rim / 2], [t, depth, rim]],
            [[(width - t) / 2, 0.0, rim / 2], [t, depth, rim]],
            [[0.0, -(depth - t) / 2, rim / 2], [width - 2 * t, t, rim]],
            [[0.0, (depth - t) / 2, rim / 2], [width - 2 * t, t, rim]],
        ]
    )


TRAY_FLOOR = 0.01  # metres: the tray's bottom, where objects rest


def furniture_boxes(kind: str, scale: float, room_height: float) -> np.ndarray:
    """A piece to stand by a wall: a 1.2 × 0.7 × 0.75 m table or a 0.9 × 0.35 × 1.8 m shelf,
    times ``scale``, never taller than the room allows."""
    if kind == "shelf":
        return shelf_boxes(0.9 * scale, 0.35 * scale, min(1.8 * scale, room_height - 0.1))
    if kind == "table":
        return table_boxes(1.2 * scale, 0.7 * scale, min(0.75 * scale, room_height - 0.1))
    raise ValueError(f"furniture kind {kind!r} is not one of {', '.join(FURNITURE_KINDS)}")


def against_wall(
    boxes: np.ndarray, wall: int, where: float, width: float, depth: float, floor_z: float
) -> tuple[np.ndarray, float] | None:
    """Position and yaw (degrees) that stand a piece on the floor with its back (-y) 2 cm from
    wall ``wall``, ``where`` (0..1) of the free length along it; None when the wall is too
    short."""
    start, along, out, length = wall_frame(wall, width, depth)
    lo = (boxes[:, 0] - boxes[:, 1] / 2).min(axis=0)
    hi = (boxes[:, 0] + boxes[:, 1] / 2).max(axis=0)
    size = hi - lo
    if length < size[0] + 0.1:
        return None
    u = size[0] / 2 + 0.05 + where * (length - size[0] - 0.1)
    xy = start + along * u - out * (size[1] / 2 + 0.02)
    yaw = math.degrees(math.atan2(-out[1], -out[0])) - 90.0  # its +y faces the room
    return np.array([xy[0], xy[1], floor_z - lo[2]]), yaw


def door_clearance(door: Opening, width: float, depth: float) -> np.ndarray:
    """The square (4, 2) in front of a door that its swing needs free."""
    start, along, _, _ = wall_frame(door.wall, width, depth)
    half = (door.u1 - door.u0) / 2 + 0.1
    centre = start + along * (door.u0 + door.u1) / 2
    offsets = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * half
    return centre + offsets


def footprint(position: np.ndarray, yaw_deg: float, boxes: np.ndarray) -> np.ndarray:
    """The 4 ground corners (4, 2) of a placed piece's bounding rectangle."""
    lo = (boxes[:, 0] - boxes[:, 1] / 2).min(axis=0)
    hi = (boxes[:, 0] + boxes[:, 1] / 2).max(axis=0)
    corners = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    return corners @ np.array([[c, s], [-s, c]]) + np.asarray(position)[:2]


def rectangles_overlap(a: np.ndarray, b: np.ndarray, gap: float = 0.0) -> bool:
    """Whether two convex quadrilaterals (4, 2) come closer than ``gap`` (separating axes)."""
    for poly in (a, b):
        for i in range(4):
            edge = poly[(i + 1) % 4] - poly[i]
            axis = np.array([-edge[1], edge[0]])
            axis /= max(np.linalg.norm(axis), 1e-12)
            pa, pb = a @ axis, b @ axis
            if pa.max() + gap <= pb.min() or pb.max() + gap <= pa.min():
                return False
    return True


def inside_room(corners: np.ndarray, width: float, depth: float, margin: float = 0.0) -> bool:
    return bool(
        (np.abs(corners[:, 0]) <= width / 2 - margin).all()
        and (np.abs(corners[:, 1]) <= depth / 2 - margin).all()
    )
