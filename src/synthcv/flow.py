"""Exact optical flow between two frames of a clip, from geometry (issue #23).

Each pixel of frame A that sees a surface is lifted to 3D with A's rendered depth, carried by
the motion of what it belongs to (its object's rigid pose change, or nothing for the ground,
which is static) and projected with frame B's camera: the flow is where that surface point
lands, minus where it was. Nothing comes from the pixels, so both backends get the same flow,
and so does any renderer whose depth and instance maps are right.

Flow is ``(H, W, 2)`` float32 ``(dx, dy)`` in pixels, NaN where A sees no surface. The status
map says what happens to the point in B: ``VISIBLE`` (B's render shows it there: its depth
within tolerance and the same instance), ``OCCLUDED`` (in view but behind something),
``OUT_OF_VIEW`` (outside B's frame or behind its camera), ``NO_SURFACE`` (background).
"""

from __future__ import annotations

import numpy as np

from synthcv.scene import Camera, RenderResult, Scene
from synthcv.sensor.lens import Distortion, distort_pixels, undistort_pixels

NO_SURFACE, VISIBLE, OCCLUDED, OUT_OF_VIEW = 0, 1, 2, 3
STATUS_NAMES = {
    NO_SURFACE: "no surface",
    VISIBLE: "visible",
    OCCLUDED: "occluded",
    OUT_OF_VIEW: "out of view",
}
#: A landed point is visible in B when B's depth there is within this of the point's own depth
#: (relative, plus an absolute term for rasterisation of near-tangent surfaces).
DEPTH_TOLERANCE = (0.01, 0.003)


def pixel_points(
    depth: np.ndarray, camera: Camera, distortion: Distortion | None = None
) -> np.ndarray:
    """World points (H, W, 3) of every pixel centre at its rendered depth (NaN where 0); with
    a lens, each pixel's ray is its undistorted position's."""
    h, w = depth.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    uv = np.stack([xs.ravel(), ys.ravel()], axis=1)
    if distortion is not None and not distortion.is_identity:
        uv = undistort_pixels(uv, camera.K, distortion)[0]
    z = np.where(depth > 0, depth.astype(np.float64), np.nan)
    return camera.unproject(uv, z.ravel()).reshape(h, w, 3)


def moved_points(points: np.ndarray, instance: np.ndarray, a: Scene, b: Scene) -> np.ndarray:
    """``points`` (world, seen in A) carried to B: each object's pixels by its rigid pose change
    from A to B, everything else (ground) left in place."""
    out = points.copy()
    poses_b = {o.instance_id: o for o in b.objects}
    for obj in a.objects:
        sel = instance == obj.instance_id
        if not sel.any() or obj.instance_id not in poses_b:
            continue
        other = poses_b[obj.instance_id]
        to_a, to_b = obj.object_to_world(), other.object_to_world()
        if other.mesh is not obj.mesh and len(other.mesh.vertices) == len(obj.mesh.vertices):
            # a deforming mesh (a person in motion): each point follows its nearest vertex
            from scipy.spatial import cKDTree

            va = obj.mesh.vertices @ to_a[:3, :3].T + to_a[:3, 3]
            vb = other.mesh.vertices @ to_b[:3, :3].T + to_b[:3, 3]
            _, nearest = cKDTree(va).query(points[sel])
            out[sel] = points[sel] + (vb[nearest] - va[nearest])
            continue
        local = (points[sel] - to_a[:3, 3]) @ to_a[:3, :3]
        out[sel] = local @ to_b[:3, :3].T + to_b[:3, 3]
    return out


def optical_flow(
    a: Scene, ra: RenderResult, b: Scene, rb: RenderResult, distortion: Distortion | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Flow from frame A to frame B and its status map (see the module docstring); with a
    lens (the clip's ``sensor.distortion``), in the distorted images."""
    h, w = ra.depth.shape
    world = moved_points(pixel_points(ra.depth, a.camera, distortion), ra.instance, a, b)
    uv, z = b.camera.project(world.reshape(-1, 3))
    if distortion is not None and not distortion.is_identity:
        with np.errstate(invalid="ignore"):
            uv = distort_pixels(uv, b.camera.K, distortion)
    uv, z = uv.reshape(h, w, 2), z.reshape(h, w)
    ys, xs = np.mgrid[0:h, 0:w]
    flow = (uv - np.stack([xs, ys], axis=-1)).astype(np.float32)
    surface = ra.depth > 0
    flow[~surface] = np.nan
    status = np.full((h, w), NO_SURFACE, np.uint8)
    xi = np.floor(uv[..., 0] + 0.5)
    yi = np.floor(uv[..., 1] + 0.5)
    with np.errstate(invalid="ignore"):
        inside = surface & (z > b.camera.near) & (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    status[surface & ~inside] = OUT_OF_VIEW
    iy, ix = yi[inside].astype(np.int64), xi[inside].astype(np.int64)
    depth_b = rb.depth[iy, ix].astype(np.float64)
    zk = z[inside]
    rel, absolute = DEPTH_TOLERANCE
    same = (
        (depth_b > 0)
        & (np.abs(depth_b - zk) <= rel * zk + absolute)
        & (rb.instance[iy, ix] == ra.instance[inside])
    )
    status[inside] = np.where(same, VISIBLE, OCCLUDED)
    return flow, status
