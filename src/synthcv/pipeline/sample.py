"""One sample, in memory: sample the scene, settle it, frame it, render, downsample, label.

This is the function tests and benchmarks call; the shard writer and the runners call it too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from synthcv.scene import Camera, RenderResult, Scene
from synthcv.spec import Spec


@dataclass
class RenderedSample:
    scene: Scene
    result: RenderResult
    labels: Any  # synthcv.labels.SampleLabels
    physics: dict[str, Any]


def downsample(scene: Scene, result: RenderResult, s: int) -> tuple[Scene, RenderResult]:
    """Box-filter RGB by ``s``; take labels at each block's centre pixel (exact for odd s)."""
    if s == 1:
        return scene, result
    cam = scene.camera
    w, h = cam.width // s, cam.height // s
    rgb = result.rgb[: h * s, : w * s].reshape(h, s, w, s, 3).mean(axis=(1, 3))
    c = (s - 1) // 2
    pick = (slice(c, h * s, s), slice(c, w * s, s))
    k = cam.K.copy()
    k[0, :] /= s
    k[1, :] /= s
    k[0, 2] = (cam.K[0, 2] - c) / s
    k[1, 2] = (cam.K[1, 2] - c) / s
    small = Camera(w, h, k, cam.world_to_camera, cam.near, cam.far)
    res = RenderResult(
        rgb=np.round(rgb).astype(np.uint8),
        depth=result.depth[pick].copy(),
        instance=result.instance[pick].copy(),
        normals=None if result.normals is None else result.normals[pick].copy(),
        normals_source=result.normals_source,
    )
    return replace(scene, camera=small), res


def render_sample(
    spec: Spec, index: int, renderer: Any, scene_hash: str | None = None
) -> RenderedSample:
    """Everything for sample ``index`` of ``spec``, rendered by ``renderer``."""
    from synthcv.labels import compute_labels
    from synthcv.physics import settle
    from synthcv.sampler import sample_scene

    scene = sample_scene(spec, index, scene_hash=scene_hash)
    scene, phys = settle(scene, spec.physics)
    if spec.camera.frame is not None:
        from synthcv.pipeline.framing import frame_camera

        scene = frame_camera(scene, spec.camera.frame, spec.image.supersample)
    result = renderer.render(scene)
    scene, result = downsample(scene, result, spec.image.supersample)
    return RenderedSample(scene, result, compute_labels(scene, result), phys)
