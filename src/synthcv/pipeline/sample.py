"""One sample, in memory: sample the scene, settle it, frame it, render, downsample, label.

This is the function tests and benchmarks call; the shard writer and the runners call it too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from synthcv.pipeline.profile import stage
from synthcv.scene import Camera, RenderResult, Scene
from synthcv.spec import Spec


@dataclass
class RenderedSample:
    scene: Scene
    result: RenderResult
    labels: Any  # synthcv.labels.SampleLabels
    physics: dict[str, Any]
    clean: np.ndarray | None = None  # rgb before the sensor's photometric stages, if any ran


def downsampled_camera(cam: Camera, s: int) -> Camera:
    """The camera of an image rendered by ``cam`` and box-filtered by ``s`` (labels at each
    block's centre pixel)."""
    if s == 1:
        return cam
    c = (s - 1) // 2
    k = cam.K.copy()
    k[0, :] /= s
    k[1, :] /= s
    k[0, 2] = (cam.K[0, 2] - c) / s
    k[1, 2] = (cam.K[1, 2] - c) / s
    return Camera(cam.width // s, cam.height // s, k, cam.world_to_camera, cam.near, cam.far)


def downsample(scene: Scene, result: RenderResult, s: int) -> tuple[Scene, RenderResult]:
    """Box-filter RGB by ``s``; take labels at each block's centre pixel (exact for odd s)."""
    if s == 1:
        return scene, result
    small = downsampled_camera(scene.camera, s)
    w, h = small.width, small.height
    rgb = result.rgb[: h * s, : w * s].reshape(h, s, w, s, 3).mean(axis=(1, 3))
    c = (s - 1) // 2
    pick = (slice(c, h * s, s), slice(c, w * s, s))
    res = RenderResult(
        rgb=np.round(rgb).astype(np.uint8),
        depth=result.depth[pick].copy(),
        instance=result.instance[pick].copy(),
        normals=None if result.normals is None else result.normals[pick].copy(),
        normals_source=result.normals_source,
        extra=dict(result.extra),
        stuff=None if result.stuff is None else result.stuff[pick].copy(),
    )
    if "rgb_low" in result.extra:  # the noisy half of a Cycles pair, filtered alike
        low = result.extra["rgb_low"][: h * s, : w * s].reshape(h, s, w, s, 3).mean(axis=(1, 3))
        res.extra["rgb_low"] = np.round(low).astype(np.uint8)
    return replace(scene, camera=small), res


def render_sample(
    spec: Spec, index: int, renderer: Any, scene_hash: str | None = None
) -> RenderedSample:
    """Everything for sample ``index`` of ``spec``, rendered by ``renderer``."""
    from synthcv.physics import settle
    from synthcv.sampler import sample_scene

    with stage("sample"):
        scene = sample_scene(spec, index, scene_hash=scene_hash)
    with stage("physics"):
        scene, phys = settle(scene, spec.physics)
    if spec.camera.frame is not None:
        from synthcv.pipeline.framing import frame_camera

        with stage("render"):  # framing renders the labelled objects' silhouettes
            scene = frame_camera(scene, spec.camera.frame, spec.image.supersample)
    return render_scene(spec, scene, renderer, phys)


def render_scene(
    spec: Spec, scene: Scene, renderer: Any, physics: dict[str, Any]
) -> RenderedSample:
    """Render a posed scene (one sample, or one frame of a clip) at the output size, through
    the lens and the sensor when the scene has them, and label it."""
    from synthcv.labels import compute_labels

    sensor = scene.sensor
    if sensor is None or not sensor.geometric:
        with stage("render"):
            scene, result = downsample(scene, renderer.render(scene), spec.image.supersample)
        with stage("labels"):
            labels = compute_labels(scene, result)
    else:
        with stage("sensor"):
            scene, result, labels = _render_through_lens(scene, renderer, spec.image.supersample)
    with stage("sensor"):
        result, clean = _sensor_images(spec, scene, result)
    return RenderedSample(scene, result, labels, physics, clean)


def _render_through_lens(scene: Scene, renderer: Any, s: int) -> tuple[Scene, RenderResult, Any]:
    """A pinhole canvas around the frame, rendered and labelled, then pixels and labels moved
    through the sample's lens distortion (synthcv.sensor.geometry)."""
    from synthcv.labels import compute_labels
    from synthcv.sensor.geometry import canvas_camera, distort_sample
    from synthcv.sensor.lens import lens_map

    out_camera = downsampled_camera(scene.camera, s)
    lm = lens_map(
        out_camera.K, out_camera.width, out_camera.height, scene.sensor.distortion, "sensor: "
    )
    canvas = replace(scene, camera=canvas_camera(scene.camera, lm, s))
    canvas, result = downsample(canvas, renderer.render(canvas), s)
    labels = compute_labels(canvas, result, keep_amodal=True)
    result, labels = distort_sample(result, labels, lm, out_camera)
    return replace(scene, camera=out_camera), result, labels


def _sensor_images(
    spec: Spec, scene: Scene, result: RenderResult
) -> tuple[RenderResult, np.ndarray | None]:
    """The image the camera writes (``result.rgb``) and, when it differs from the render, the
    clean one: a Cycles ``pair_samples`` render becomes the input, then the photometric stages
    run (on luma for a grayscale dataset: a monochrome sensor)."""
    clean = None
    if "rgb_low" in result.extra:
        clean = result.rgb
        result = replace(result, rgb=result.extra.pop("rgb_low"))
    sensor = scene.sensor
    if sensor is None or not sensor.photometric:
        return result, clean
    from synthcv.format.codecs import to_gray
    from synthcv.sensor.photometric import apply_photometric

    image = result.rgb if spec.image.channels == 3 else to_gray(result.rgb)
    out = apply_photometric(image, result.depth, scene.camera.K, sensor)
    out = out if out.ndim == 3 else np.repeat(out[..., None], 3, axis=2)
    return replace(result, rgb=out), result.rgb if clean is None else clean
