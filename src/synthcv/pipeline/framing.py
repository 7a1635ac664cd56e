"""Per-sample framing: change the camera's intrinsics so the labelled objects sit where a
dataset's own preprocessing put its subjects (spec ``camera.frame``).

Zooming and shifting a rendered image is a change of the pinhole's focal length and principal
point: ``u' = s (u - cx) + cx'`` for every point. Doing it in K before rendering, rather than
resampling pixels afterwards, keeps RGB sharp and every label (masks, depth, boxes,
keypoints, the recorded K) exact with no extra code.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from synthcv.scene import Camera, Scene
from synthcv.spec import FrameSpec


def _labelled_triangles(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """World-space triangles (T, 3, 3) of the labelled objects and their outward normals."""
    tris, normals = [], []
    for obj in scene.objects:
        if obj.is_distractor:
            continue
        m = obj.object_to_world()
        v = obj.mesh.vertices @ m[:3, :3].T + m[:3, 3]
        t = v[obj.mesh.faces]
        tris.append(t)
        normals.append(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]))
    if not tris:
        return np.zeros((0, 3, 3)), np.zeros((0, 3))
    return np.concatenate(tris), np.concatenate(normals)


def frame_target(scene: Scene, center: str) -> tuple[np.ndarray, float] | None:
    """The labelled objects' projected centre (pixels, current K) and larger box side.

    ``box`` centres the box of the projected vertices; ``mass`` takes the area centroid of the
    triangles that face the camera (ink seen from the front: the centre of mass of a uniform
    glyph). None when no labelled vertex lies in front of the camera.
    """
    cam = scene.camera
    tris, normals = _labelled_triangles(scene)
    if len(tris) == 0:
        return None
    uv, z = cam.project(tris.reshape(-1, 3))
    front = z > cam.near
    if not front.any():
        return None
    pts = uv[front]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    side = float(np.max(hi - lo))
    if center == "box":
        return (lo + hi) / 2.0, side
    uv_t = uv.reshape(-1, 3, 2)
    in_front = front.reshape(-1, 3).all(axis=1)
    to_camera = cam.position - tris.mean(axis=1)
    facing = in_front & (np.einsum("ij,ij->i", normals, to_camera) > 0)
    a, b, c = uv_t[:, 0], uv_t[:, 1], uv_t[:, 2]
    area = 0.5 * np.abs((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0])
    area = np.where(facing, area, 0.0)
    if area.sum() <= 0:
        return (lo + hi) / 2.0, side
    centroid = (area[:, None] * (a + b + c) / 3.0).sum(axis=0) / area.sum()
    return centroid, side


def frame_camera(scene: Scene, frame: FrameSpec, supersample: int) -> Scene:
    """``scene`` with K changed so the labelled objects fit and sit as ``frame`` asks.

    ``fit`` and ``at`` are in output pixels; the camera renders ``supersample`` times larger,
    and a supersampled pixel ``u`` becomes output pixel ``(u - (s - 1) / 2) / s``. Records the
    zoom applied as the factor ``camera.frame.zoom`` (1 without ``fit``; NaN when nothing
    labelled is in view and the camera is left as drawn).
    """
    found = frame_target(scene, frame.center)
    if found is None or (frame.fit is not None and found[1] <= 0):
        return replace(scene, factors={**scene.factors, "camera.frame.zoom": float("nan")})
    centre, side = found
    cam, s = scene.camera, supersample
    zoom = 1.0 if frame.fit is None else frame.fit * s / side
    if frame.at is None:
        target = np.array([(cam.width - 1) / 2.0, (cam.height - 1) / 2.0])
    else:
        target = np.asarray(frame.at, dtype=np.float64) * s + (s - 1) / 2.0
    k = cam.K.copy()
    principal = k[:2, 2].copy()
    k[:2, :2] *= zoom
    k[:2, 2] = target - zoom * (centre - principal)
    framed = Camera(cam.width, cam.height, k, cam.world_to_camera, cam.near, cam.far)
    return replace(scene, camera=framed, factors={**scene.factors, "camera.frame.zoom": zoom})
