"""Labels computed once, outside the backends, from the Scene and a RenderResult.

Everything that follows from geometry (keypoints, 3D boxes, poses, amodal silhouettes) comes
from the Scene, so every backend gets identical geometric labels; only the visible masks and
depth come from the render.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synthcv.scene import Camera, RenderResult, Scene, SceneObject, matrix_to_quat

MAX_RASTER_ELEMENTS = 2_000_000


def rasterize_triangles(tri: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boolean coverage of 2D triangles (F, 3, 2): a pixel is in if its centre is in.

    Pixel (x, y) has its centre at (x, y) (OpenCV convention). Edges count as inside. The work
    is vectorized over triangles grouped by bounding-box size, so it is ~proportional to the
    covered area, not to F × image size.
    """
    mask = np.zeros((height, width), dtype=bool)
    if len(tri) == 0:
        return mask
    tri = np.asarray(tri, dtype=np.float64)
    x0 = np.clip(np.ceil(tri[..., 0].min(1)), 0, width).astype(np.int64)
    x1 = np.clip(np.floor(tri[..., 0].max(1)), -1, width - 1).astype(np.int64)
    y0 = np.clip(np.ceil(tri[..., 1].min(1)), 0, height).astype(np.int64)
    y1 = np.clip(np.floor(tri[..., 1].max(1)), -1, height - 1).astype(np.int64)
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    keep = (x1 >= x0) & (y1 >= y0) & (np.abs(area) > 1e-12) & np.isfinite(area)
    if not keep.any():
        return mask
    tri, x0, x1, y0, y1, area = tri[keep], x0[keep], x1[keep], y0[keep], y1[keep], area[keep]
    bw = x1 - x0 + 1
    bh = y1 - y0 + 1
    bucket_w = 1 << np.ceil(np.log2(bw)).astype(np.int64)
    bucket_h = 1 << np.ceil(np.log2(bh)).astype(np.int64)
    sign = np.sign(area)
    for key in np.unique(bucket_w * 100003 + bucket_h):
        sel = np.nonzero(bucket_w * 100003 + bucket_h == key)[0]
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
            mask[py[inside], px[inside]] = True
    return mask


def silhouette(obj: SceneObject, camera: Camera) -> np.ndarray:
    """The object's full (amodal) silhouette in the image, ignoring every other object."""
    verts = obj.mesh.vertices @ _rot(obj).T + obj.position
    uv, z = camera.project(verts)
    tri_ok = (z[obj.mesh.faces] > camera.near).all(axis=1)  # drop triangles behind the camera
    return rasterize_triangles(uv[obj.mesh.faces[tri_ok]], camera.height, camera.width)


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


def normals_from_depth(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame unit normals from a depth map, facing the camera; zeros where depth is 0.

    At each pixel the one-sided difference with the smaller depth jump is used, so normals
    at occlusion boundaries come from the pixel's own surface rather than across the edge.
    """
    h, w = depth.shape
    z = depth.astype(np.float64)
    ys, xs = np.mgrid[0:h, 0:w]
    pts = np.stack([(xs - K[0, 2]) * z / K[0, 0], (ys - K[1, 2]) * z / K[1, 1], z], axis=-1)
    valid = z > 0

    def side_diff(axis: int) -> np.ndarray:
        fwd = np.zeros_like(pts)
        bwd = np.zeros_like(pts)
        if axis == 1:
            fwd[:, :-1] = pts[:, 1:] - pts[:, :-1]
            bwd[:, 1:] = pts[:, 1:] - pts[:, :-1]
            vf = np.zeros_like(valid)
            vb = np.zeros_like(valid)
            vf[:, :-1] = valid[:, 1:] & valid[:, :-1]
            vb[:, 1:] = vf[:, :-1]
        else:
            fwd[:-1] = pts[1:] - pts[:-1]
            bwd[1:] = pts[1:] - pts[:-1]
            vf = np.zeros_like(valid)
            vb = np.zeros_like(valid)
            vf[:-1] = valid[1:] & valid[:-1]
            vb[1:] = vf[:-1]
        jf = np.where(vf, np.abs(fwd[..., 2]), np.inf)
        jb = np.where(vb, np.abs(bwd[..., 2]), np.inf)
        return np.where((jf <= jb)[..., None], fwd, bwd)

    du, dv = side_diff(1), side_diff(0)
    n = np.cross(du, dv)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.divide(n, norm, out=np.zeros_like(n), where=norm > 0)
    flip = np.einsum("hwc,hwc->hw", n, pts) > 0
    n[flip] *= -1
    n[~valid] = 0
    return n.astype(np.float32)


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
    for obj, occludable in zip(scene.objects, could_be_hidden, strict=True):
        visible_mask = instance == obj.instance_id
        # an object nothing can cover is its own silhouette: skip the rasterisation
        amodal = silhouette(obj, cam) if occludable else visible_mask
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
