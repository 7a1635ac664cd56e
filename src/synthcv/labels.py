"""Labels computed once, outside the backends, from the Scene and a RenderResult.

Everything that follows from geometry (keypoints, 3D boxes, poses, amodal silhouettes) comes
from the Scene, so every backend gets identical geometric labels; only the visible masks and
depth come from the render.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from synthcv.scene import Camera, RenderResult, Scene, SceneObject, matrix_to_quat

MAX_RASTER_ELEMENTS = 2_000_000


def rasterize_triangles(tri: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boolean coverage of 2D triangles (F, 3, 2): a pixel is in if its centre is in.

    Pixel (x, y) has its centre at (x, y) (OpenCV convention). Edges count as inside.
    """
    return rasterize_layers(tri, np.zeros(len(tri), dtype=np.int64), 1, height, width)[0]


def rasterize_layers(
    tri: np.ndarray, layer: np.ndarray, layers: int, height: int, width: int
) -> np.ndarray:
    """Coverage of triangles (F, 3, 2) on ``layers`` images at once, triangle f drawn on
    image ``layer[f]``: (layers, H, W) bool, same rule as :func:`rasterize_triangles`.

    All of a scene's objects go through one call: the work is vectorized over triangles
    grouped by bounding-box size, so it is ~proportional to the covered area, not to
    F × image size, and the per-group overhead is paid once per scene, not once per object.
    """
    mask = np.zeros((layers, height, width), dtype=bool)
    if len(tri) == 0:
        return mask
    tri = np.asarray(tri, dtype=np.float64)
    layer = np.asarray(layer, dtype=np.int64)
    x0 = np.clip(np.ceil(tri[..., 0].min(1)), 0, width).astype(np.int64)
    x1 = np.clip(np.floor(tri[..., 0].max(1)), -1, width - 1).astype(np.int64)
    y0 = np.clip(np.ceil(tri[..., 1].min(1)), 0, height).astype(np.int64)
    y1 = np.clip(np.floor(tri[..., 1].max(1)), -1, height - 1).astype(np.int64)
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    keep = (x1 >= x0) & (y1 >= y0) & (np.abs(area) > 1e-12) & np.isfinite(area)
    if not keep.any():
        return mask
    tri, layer = tri[keep], layer[keep]
    x0, x1, y0, y1, area = x0[keep], x1[keep], y0[keep], y1[keep], area[keep]
    bucket_w = 1 << np.ceil(np.log2(x1 - x0 + 1)).astype(np.int64)
    bucket_h = 1 << np.ceil(np.log2(y1 - y0 + 1)).astype(np.int64)
    sign = np.sign(area)
    key = bucket_w * 100003 + bucket_h
    order = np.argsort(key, kind="stable")
    for sel in np.split(order, np.flatnonzero(np.diff(key[order])) + 1):
        gw, gh = int(bucket_w[sel[0]]), int(bucket_h[sel[0]])
        chunk = max(1, MAX_RASTER_ELEMENTS // (gw * gh))
        oy, ox = np.mgrid[0:gh, 0:gw]
        for s in range(0, len(sel), chunk):
            idx = sel[s : s + chunk]
            px = x0[idx, None, None] + ox[None]
            py = y0[idx, None, None] + oy[None]
            inside = (px <= x1[idx, None, None]) & (py <= y1[idx, None, None])
            t = tri[idx]
            sg = sign[idx, None, None]
            for k in range(3):
                p0, p1 = t[:, k], t[:, (k + 1) % 3]
                e = (p1[:, 0, None, None] - p0[:, 0, None, None]) * (py - p0[:, 1, None, None]) - (
                    p1[:, 1, None, None] - p0[:, 1, None, None]
                ) * (px - p0[:, 0, None, None])
                inside &= e * sg >= 0
            on = np.broadcast_to(layer[idx, None, None], inside.shape)
            mask[on[inside], py[inside], px[inside]] = True
    return mask


def silhouette(obj: SceneObject, camera: Camera) -> np.ndarray:
    """The object's full (amodal) silhouette in the image, ignoring every other object."""
    return silhouettes([obj], camera)[0]


def silhouettes(objects: list[SceneObject], camera: Camera) -> np.ndarray:
    """(N, H, W) amodal silhouettes of ``objects``, rasterized in one pass."""
    tris, layer = [np.zeros((0, 3, 2))], [np.zeros(0, dtype=np.int64)]
    for k, obj in enumerate(objects):
        verts = obj.mesh.vertices @ _rot(obj).T + obj.position
        uv, z = camera.project(verts)
        tri_ok = (z[obj.mesh.faces] > camera.near).all(axis=1)  # drop triangles behind the camera
        tris.append(uv[obj.mesh.faces[tri_ok]])
        layer.append(np.full(len(tris[-1]), k, dtype=np.int64))
    return rasterize_layers(
        np.concatenate(tris), np.concatenate(layer), len(objects), camera.height, camera.width
    )


def _possibly_occluded(scene: Scene) -> list[bool]:
    """Per object: could anything hide part of it? False only when its projected bounding box
    overlaps no other object's, it is wholly in front of the camera and not below the ground —
    then its visible mask *is* its silhouette."""
    cam = scene.camera
    if scene.stuff:  # a room's walls and furniture can hide anything
        return [True] * len(scene.objects)
    boxes, safe = [], []
    for obj in scene.objects:
        world = obj.mesh.vertices @ _rot(obj).T + obj.position
        uv, z = cam.project(world)
        ok = bool((z > cam.near).all())
        if scene.ground.enabled:
            ok &= bool(world[:, 2].min() >= scene.ground.height - 1e-6)
        boxes.append((*uv.min(axis=0), *uv.max(axis=0)) if ok else None)
        safe.append(ok)
    out = []
    for i, b in enumerate(boxes):
        if b is None:
            out.append(True)
            continue
        overlap = any(
            j != i
            and (
                o is None
                or (b[0] <= o[2] + 1 and o[0] <= b[2] + 1 and b[1] <= o[3] + 1 and o[1] <= b[3] + 1)
            )
            for j, o in enumerate(boxes)
        )
        out.append(overlap or not safe[i])
    return out


def _rot(obj: SceneObject) -> np.ndarray:
    return obj.object_to_world()[:3, :3]


@lru_cache(maxsize=8)
def _pixel_offsets(height: int, width: int, cx: float, cy: float) -> tuple[np.ndarray, ...]:
    ys, xs = np.mgrid[0:height, 0:width]
    out = (xs - cx, ys - cy)
    for a in out:
        a.flags.writeable = False  # shared between calls
    return out


def normals_from_depth(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame unit normals from a depth map, facing the camera; zeros where depth is 0.

    At each pixel the one-sided difference with the smaller depth jump is used, so normals
    at occlusion boundaries come from the pixel's own surface rather than across the edge.
    The points are kept planar (3, H, W): numpy's strided (H, W, 3) cross product cost more
    than the rest together.
    """
    h, w = depth.shape
    z = depth.astype(np.float64)
    dx, dy = _pixel_offsets(h, w, float(K[0, 2]), float(K[1, 2]))
    p = np.empty((3, h, w))
    np.divide(dx * z, K[0, 0], out=p[0])
    np.divide(dy * z, K[1, 1], out=p[1])
    p[2] = z
    valid = z > 0
    du = _one_sided_difference(p, valid)
    dv = _one_sided_difference(p.transpose(0, 2, 1), valid.T).transpose(0, 2, 1)
    n = np.empty_like(p)
    n[0] = du[1] * dv[2] - du[2] * dv[1]
    n[1] = du[2] * dv[0] - du[0] * dv[2]
    n[2] = du[0] * dv[1] - du[1] * dv[0]
    norm = np.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2])
    np.divide(n, norm, out=n, where=norm > 0)
    n[:, ~(norm > 0)] = 0
    n = np.ascontiguousarray(np.moveaxis(n, 0, -1))
    # face the camera (einsum on (H, W, 3), as always: a normal at right angles to its ray
    # gets its sign from this sum's rounding)
    flip = np.einsum("hwc,hwc->hw", n, np.ascontiguousarray(np.moveaxis(p, 0, -1))) > 0
    n[flip] *= -1
    n[~valid] = 0
    return n.astype(np.float32)


def _one_sided_difference(p: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per pixel of planar points ``p`` (3, H, W): the forward or the backward difference along
    the last axis, whichever has the smaller depth jump between valid pixels (forward on a
    tie; forward, or zero at the far edge, where neither side is valid)."""
    out = np.zeros_like(p)
    if p.shape[-1] < 2:
        return out
    d = p[..., 1:] - p[..., :-1]
    jump = np.where(valid[:, 1:] & valid[:, :-1], np.abs(d[2]), np.inf)
    out[..., 0] = d[..., 0]
    out[..., 1:-1] = np.where(jump[:, 1:] <= jump[:, :-1], d[..., 1:], d[..., :-1])
    out[..., -1] = np.where(np.isfinite(jump[:, -1]), d[..., -1], 0.0)
    return out


def mask_box(mask: np.ndarray) -> list[float] | None:
    """COCO ``[x, y, w, h]`` of a mask (pixel i spans [i, i+1)), or None if empty."""
    rows = np.nonzero(mask.any(axis=1))[0]
    if len(rows) == 0:
        return None
    cols = np.nonzero(mask.any(axis=0))[0]
    return [
        float(cols[0]),
        float(rows[0]),
        float(cols[-1] - cols[0] + 1),
        float(rows[-1] - rows[0] + 1),
    ]


@dataclass
class SampleLabels:
    semantic: np.ndarray  # (H, W) uint16
    normals: np.ndarray  # (H, W, 3) float32
    objects: list[dict[str, Any]] = field(default_factory=list)
    num_visible: int = 0
    parts: np.ndarray | None = None  # (H, W) uint8 body-part map when people are in view
    # instance id → amodal silhouette (H, W) bool; only with compute_labels(keep_amodal=True)
    # (the lens moves them into the distorted frame, synthcv.sensor.geometry)
    amodal: dict[int, np.ndarray] | None = None


def keypoints_for(
    obj: SceneObject, camera: Camera, depth: np.ndarray
) -> tuple[list[str], list[float]]:
    """COCO keypoints ``x, y, v`` (COCO pixel coordinates: centre of pixel i at i + 0.5).

    v = 0: outside the image or behind the camera (x = y = 0); 1: in the image but something
    is in front of it (rendered depth in a 3x3 window is nearer than the point by more than
    1% + 2 mm, plus the depth below the surface the mesh declares for it: a person's joint
    lies inside its limb); 2: visible.
    """
    names, local = obj.mesh.all_keypoints()
    below = [obj.mesh.keypoint_depth.get(n, 0.0) for n in names]
    world = local @ _rot(obj).T + obj.position
    uv, z = camera.project(world)
    h, w = depth.shape
    out: list[float] = []
    for (u, v), zk, depth_below in zip(uv, z, below, strict=True):
        xi, yi = int(np.floor(u + 0.5)), int(np.floor(v + 0.5))
        if not (zk > camera.near and 0 <= xi < w and 0 <= yi < h):
            out += [0.0, 0.0, 0]
            continue
        win = depth[max(yi - 1, 0) : yi + 2, max(xi - 1, 0) : xi + 2]
        tol = 0.01 * zk + 0.002 + depth_below
        visible = (win == 0).any() or win.max() >= zk - tol
        out += [float(u + 0.5), float(v + 0.5), 2 if visible else 1]
    return names, out


def compute_labels(scene: Scene, result: RenderResult, keep_amodal: bool = False) -> SampleLabels:
    cam = scene.camera
    instance = result.instance
    lut = np.zeros(len(scene.objects) + 1, dtype=np.uint16)
    for obj in scene.objects:
        lut[obj.instance_id] = obj.class_id
    semantic = lut[np.minimum(instance, len(lut) - 1)]
    if result.stuff is not None and scene.stuff:  # room geometry: its own semantic classes
        stuff_ids = np.array([0, *(part.class_id for part in scene.stuff)], dtype=np.uint16)
        semantic = np.where(
            result.stuff > 0, stuff_ids[np.minimum(result.stuff, len(stuff_ids) - 1)], semantic
        )
    normals = (
        result.normals if result.normals is not None else normals_from_depth(result.depth, cam.K)
    )
    counts = np.bincount(instance.ravel(), minlength=len(scene.objects) + 1)
    w2c = cam.world_to_camera
    labels = SampleLabels(semantic=semantic.astype(np.uint16), normals=normals)
    if keep_amodal:
        labels.amodal = {}
    could_be_hidden = _possibly_occluded(scene)
    # an object nothing can cover is its own silhouette: only the others are rasterized
    hideable = [obj for obj, h in zip(scene.objects, could_be_hidden, strict=True) if h]
    drawn = dict(zip((o.instance_id for o in hideable), silhouettes(hideable, cam), strict=True))
    for obj in scene.objects:
        visible_mask = instance == obj.instance_id
        amodal = drawn.get(obj.instance_id, visible_mask)
        if labels.amodal is not None:
            labels.amodal[obj.instance_id] = amodal | visible_mask
        vis = int(counts[obj.instance_id])
        unocc = int(amodal.sum())
        # boundary pixels can differ by a raster rule between backends; keep visibility in [0, 1]
        unocc = max(unocc, vis)
        status = "visible" if vis > 0 else ("hidden" if unocc > 0 else "outside")
        r_cam = w2c[:3, :3] @ _rot(obj)
        t_cam = w2c[:3, :3] @ obj.position + w2c[:3, 3]
        corners = obj.mesh.box_corners() @ r_cam.T + t_cam
        kp_names, kps = keypoints_for(obj, cam, result.depth)
        labels.num_visible += vis > 0
        labels.objects.append(
            {
                "instance_id": obj.instance_id,
                "class_id": obj.class_id,
                "class_name": obj.class_name,
                "is_distractor": obj.is_distractor,
                "status": status,
                "visible_pixels": vis,
                "unoccluded_pixels": unocc,
                "visibility": vis / unocc if unocc else 0.0,
                "bbox": mask_box(visible_mask),
                "bbox_amodal": mask_box(amodal | visible_mask),
                "keypoint_names": kp_names,
                "keypoints": kps,
                "position_cam": t_cam.tolist(),
                "rotation_cam": matrix_to_quat(r_cam).tolist(),
                "box3d_cam": corners.reshape(-1).tolist(),
                "size": obj.mesh.extents.tolist(),
                "position_world": obj.position.tolist(),
                "rotation_world": np.asarray(obj.orientation, dtype=np.float64).tolist(),
                **obj.attributes,
            }
        )
        if obj.person is not None:
            labels.objects[-1] |= person_labels(obj, cam)
    if any(o.person is not None for o in scene.objects):
        labels.parts = part_map(scene, result)
    return labels


def person_labels(obj: SceneObject, camera: Camera) -> dict[str, Any]:
    """A person's 3D joints, head pose and gaze in the camera frame (docs/people.md)."""
    from synthcv.people.head import head_pose_cam

    rig = obj.person
    assert rig is not None
    w2c = camera.world_to_camera
    to_cam = w2c[:3, :3] @ _rot(obj)
    t_cam = w2c[:3, :3] @ obj.position + w2c[:3, 3]
    joints = rig.joints @ to_cam.T + t_cam
    head_rot = to_cam @ rig.head[:3, :3]
    yaw, pitch, roll = head_pose_cam(head_rot)
    gaze = rig.gaze @ to_cam.T
    combined = gaze.sum(0)
    combined /= np.linalg.norm(combined)
    point = None
    if rig.gaze_target is not None and not rig.gaze_clamped:
        uv, z = camera.project(rig.gaze_target[None])
        if (
            z[0] > camera.near
            and 0 <= uv[0, 0] + 0.5 < camera.width
            and 0 <= uv[0, 1] + 0.5 < camera.height
        ):
            point = [float(uv[0, 0] + 0.5), float(uv[0, 1] + 0.5)]
    return {
        "joint_names": list(rig.joint_names),
        "joints_cam": joints.reshape(-1).tolist(),
        "head_position_cam": (rig.head[:3, 3] @ to_cam.T + t_cam).tolist(),
        "head_yaw": yaw,
        "head_pitch": pitch,
        "head_roll": roll,
        "gaze_right_cam": gaze[0].tolist(),
        "gaze_left_cam": gaze[1].tolist(),
        "gaze_cam": combined.tolist(),
        "gaze_point": point,
        "gaze_clamped": bool(rig.gaze_clamped),
        "eyelid": rig.eyelid,
    }


def part_map(scene: Scene, result: RenderResult) -> np.ndarray:
    """The body-part label map (synthcv.people.body.PARTS; 0 elsewhere).

    Each pixel a person covers is lifted to 3D with the rendered depth and takes the part of
    the nearest vertex of that person's mesh, so the parts tile the person's visible mask
    exactly, on any backend.
    """
    from scipy.spatial import cKDTree

    cam = scene.camera
    out = np.zeros(result.instance.shape, dtype=np.uint8)
    for obj in scene.objects:
        if obj.person is None:
            continue
        ys, xs = np.nonzero(result.instance == obj.instance_id)
        if len(xs) == 0:
            continue
        world = cam.unproject(np.stack([xs, ys], axis=1), result.depth[ys, xs])
        local = (world - obj.position) @ _rot(obj)
        _, nearest = cKDTree(obj.mesh.vertices).query(local)
        out[ys, xs] = obj.person.vertex_parts[nearest]
    return out
