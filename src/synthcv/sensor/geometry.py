"""Lens distortion applied to a rendered sample: pixels and labels moved by one model.

The renderer draws a pinhole image on the larger canvas :func:`synthcv.sensor.lens.lens_map`
asks for (:func:`canvas_camera`); labels are computed on that canvas as for any render; then
:func:`distort_sample` moves both into the distorted output frame. Label maps and amodal
silhouettes go through the nearest-neighbour map, points through the analytic model, and
counts, boxes, statuses and visibilities are recomputed from the moved masks.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from synthcv.labels import SampleLabels, mask_box
from synthcv.scene import Camera, RenderResult
from synthcv.sensor.lens import LensMap, distort_pixels, remap_bilinear, remap_nearest


def canvas_camera(render_camera: Camera, lm: LensMap, supersample: int) -> Camera:
    """The render camera grown by the lens map's margins (render pixels = output × s), with
    the same focal lengths, so the output frame is a window of the canvas."""
    left, top, right, bottom = lm.margins
    s = supersample
    k = render_camera.K.copy()
    k[0, 2] += left * s
    k[1, 2] += top * s
    return replace(
        render_camera,
        width=render_camera.width + (left + right) * s,
        height=render_camera.height + (top + bottom) * s,
        K=k,
    )


def _canvas_point_to_output(
    x: float, y: float, lm: LensMap, out_k: np.ndarray
) -> tuple[float, float] | None:
    """A COCO-convention point (pixel centre at i + 0.5) on the canvas → the same point in the
    distorted output, or None when it falls outside the output frame."""
    left, top, _, _ = lm.margins
    uv = np.array([[x - 0.5 - left, y - 0.5 - top]])
    u, v = distort_pixels(uv, out_k, lm.distortion)[0]
    xi, yi = int(np.floor(u + 0.5)), int(np.floor(v + 0.5))
    if not (0 <= xi < lm.width and 0 <= yi < lm.height):
        return None
    return float(u + 0.5), float(v + 0.5)


def distort_sample(
    result: RenderResult, labels: SampleLabels, lm: LensMap, out_camera: Camera
) -> tuple[RenderResult, SampleLabels]:
    """The canvas render and its labels (computed with ``keep_amodal``) in the distorted
    output frame of ``out_camera``."""
    assert labels.amodal is not None, "compute_labels(..., keep_amodal=True) on the canvas"
    rgb = np.round(np.clip(remap_bilinear(result.rgb, lm), 0, 255)).astype(np.uint8)
    instance = remap_nearest(result.instance, lm)
    out = RenderResult(
        rgb=rgb,
        depth=remap_nearest(result.depth, lm),
        instance=instance,
        normals=None if result.normals is None else remap_nearest(result.normals, lm),
        normals_source=result.normals_source,
        extra=dict(result.extra),
        stuff=None if result.stuff is None else remap_nearest(result.stuff, lm),
    )
    if "rgb_low" in result.extra:  # the noisy half of a Cycles pair goes through the same lens
        low = remap_bilinear(result.extra["rgb_low"], lm)
        out.extra["rgb_low"] = np.round(np.clip(low, 0, 255)).astype(np.uint8)
    new = SampleLabels(
        semantic=remap_nearest(labels.semantic, lm),
        normals=remap_nearest(labels.normals, lm),
        parts=None if labels.parts is None else remap_nearest(labels.parts, lm),
    )
    counts = np.bincount(instance.ravel(), minlength=len(labels.objects) + 1)
    for obj in labels.objects:
        iid = obj["instance_id"]
        visible = instance == iid
        amodal = remap_nearest(labels.amodal[iid], lm) | visible
        vis = int(counts[iid]) if iid < len(counts) else 0
        unocc = max(int(amodal.sum()), vis)
        moved: dict[str, Any] = dict(obj)
        moved |= {
            "status": "visible" if vis > 0 else ("hidden" if unocc > 0 else "outside"),
            "visible_pixels": vis,
            "unoccluded_pixels": unocc,
            "visibility": vis / unocc if unocc else 0.0,
            "bbox": mask_box(visible),
            "bbox_amodal": mask_box(amodal),
        }
        kps = list(obj["keypoints"])
        for j in range(0, len(kps), 3):
            if kps[j + 2] == 0:
                continue
            p = _canvas_point_to_output(kps[j], kps[j + 1], lm, out_camera.K)
            kps[j : j + 3] = [0.0, 0.0, 0] if p is None else [p[0], p[1], kps[j + 2]]
        moved["keypoints"] = kps
        if obj.get("gaze_point") is not None:
            moved["gaze_point"] = _canvas_point_to_output(*obj["gaze_point"], lm, out_camera.K)
            moved["gaze_point"] = None if moved["gaze_point"] is None else list(moved["gaze_point"])
        new.num_visible += vis > 0
        new.objects.append(moved)
    return out, new
