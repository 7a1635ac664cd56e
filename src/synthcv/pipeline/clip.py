"""One clip (``sequence:``), in memory: the scene once, its motion over the frames, each frame
rendered and labelled as a single sample is, and exact optical flow between neighbours.

Frame 0 is what :func:`synthcv.pipeline.sample.render_sample` gives for the same index (with
``start: settled``); instance ids are the scene's, so they are tracks across the frames.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from synthcv.pipeline.profile import stage
from synthcv.pipeline.sample import RenderedSample, render_scene
from synthcv.spec import Spec


@dataclass
class RenderedFrame:
    frame: int
    time: float  # seconds from frame 0
    sample: RenderedSample
    flow: np.ndarray | None = None  # to the next frame (H, W, 2), NaN without a surface
    flow_status: np.ndarray | None = None  # synthcv.flow status codes
    flow_back: np.ndarray | None = None  # to the previous frame
    flow_back_status: np.ndarray | None = None


def _frame_seed(seed: int, frame: int) -> int:
    """The sensor noise seed of ``frame``: frame 0 keeps the sample's (a one-frame clip is the
    single frame), later frames get independent noise."""
    if frame == 0:
        return seed
    return int(np.random.SeedSequence([seed, frame]).generate_state(1, np.uint64)[0]) >> 1


def _people_at(scene: Any, t: float, travel: bool) -> Any:
    """The scene with every person built ``t`` seconds into its motion."""
    from synthcv.people.person import person_at

    objects = []
    for obj in scene.objects:
        if obj.person is None or obj.person.rebuild is None:
            objects.append(obj)
            continue
        placed = person_at(obj.person.rebuild, t, travel)
        objects.append(replace(obj, mesh=placed.mesh, position=placed.position, person=placed.rig))
    return scene.with_objects(objects)


def render_clip(
    spec: Spec, index: int, renderer: Any, scene_hash: str | None = None
) -> list[RenderedFrame]:
    """Every frame of clip ``index`` of ``spec`` (docs/sequences.md)."""
    from synthcv.flow import optical_flow
    from synthcv.motion import camera_at
    from synthcv.physics import settle, trajectory
    from synthcv.sampler import sample_scene

    assert spec.sequence is not None
    with stage("sample"):
        scene = sample_scene(spec, index, scene_hash=scene_hash)
    plan = scene.motion
    if plan.start == "settled":
        with stage("physics"):
            scene, phys = settle(scene, spec.physics)
    else:
        phys = {"physics.steps": 0, "physics.settled": False}
    if spec.camera.frame is not None:  # framed on frame 0; the intrinsics stay for the clip
        from synthcv.pipeline.framing import frame_camera

        scene = frame_camera(scene, spec.camera.frame, spec.image.supersample)
    lens = scene.sensor.distortion if scene.sensor is not None else None
    frames: list[RenderedFrame] = []
    people = spec.sequence.people
    with stage("physics"):
        poses = trajectory(scene, spec.physics, plan)
    for t, posed in enumerate(poses):
        moved = replace(posed, camera=camera_at(scene.camera, plan, plan.time(t)))
        if people.animate and t:
            moved = _people_at(moved, plan.time(t), people.travel)
        if moved.sensor is not None:
            moved = replace(
                moved, sensor=replace(moved.sensor, seed=_frame_seed(moved.sensor.seed, t))
            )
        frames.append(RenderedFrame(t, plan.time(t), render_scene(spec, moved, renderer, phys)))
        if t > 0:
            a, b = frames[t - 1], frames[t]
            sa, sb = a.sample, b.sample
            with stage("flow"):
                a.flow, a.flow_status = optical_flow(sa.scene, sa.result, sb.scene, sb.result, lens)
                b.flow_back, b.flow_back_status = optical_flow(
                    sb.scene, sb.result, sa.scene, sa.result, lens
                )
    return frames
