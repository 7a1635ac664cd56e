"""How a clip moves (issue #23): the camera's path and the objects' initial velocities.

A :class:`MotionPlan` is drawn once per clip by the sampler (its own random stream) and is
plain data; physics turns the velocities into per-frame poses, and :func:`camera_at` gives the
camera of any frame. Times are seconds from frame 0 (``t = frame / fps``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from synthcv.scene import Camera

#: Handheld shake: each rotation axis is a sum of these many sinusoids (random frequency in
#: SHAKE_HZ and phase), scaled so the angle never exceeds the drawn amplitude.
SHAKE_TERMS = 2
SHAKE_HZ = (0.5, 2.5)


@dataclass(frozen=True)
class MotionPlan:
    frames: int
    fps: float
    start: str  # "settled" | "drop"
    target: np.ndarray  # (3,) the camera's look-at point (world)
    orbit: float = 0.0  # degrees per second about the vertical through ``target``
    dolly: float = 0.0  # metres per second towards ``target``
    shake: float = 0.0  # degrees, largest handheld rotation about any axis
    # (axis, term) frequencies in Hz and phases in radians of the shake
    shake_hz: np.ndarray = field(default_factory=lambda: np.zeros((3, SHAKE_TERMS)))
    shake_phase: np.ndarray = field(default_factory=lambda: np.zeros((3, SHAKE_TERMS)))
    # instance id -> (linear velocity (3,), angular velocity (3,) rad/s), world frame
    velocities: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def time(self, frame: int) -> float:
        return frame / self.fps


def rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues: rotation by ``angle`` radians about unit ``axis``."""
    x, y, z = axis
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def shake_angles(plan: MotionPlan, t: float) -> np.ndarray:
    """(yaw, pitch, roll) of the handheld shake at time ``t``, radians; zero at t = 0."""
    if plan.shake == 0:
        return np.zeros(3)
    waves = np.sin(2 * np.pi * plan.shake_hz * t + plan.shake_phase) - np.sin(plan.shake_phase)
    return np.radians(plan.shake) * waves.sum(axis=1) / (2 * SHAKE_TERMS)


def camera_at(camera0: Camera, plan: MotionPlan, t: float) -> Camera:
    """The camera at time ``t``: frame 0's camera orbited about the vertical through the
    look-at point, moved along its line of sight (never past ``near`` of the target), then
    rotated by the shake about its own centre. Intrinsics stay fixed."""
    if t == 0 or (plan.orbit == 0 and plan.dolly == 0 and plan.shake == 0):
        return camera0
    c2w = camera0.camera_to_world
    eye, rot = c2w[:3, 3].copy(), c2w[:3, :3].copy()  # columns: camera axes in world
    if plan.orbit:
        turn = rotation(np.array([0.0, 0.0, 1.0]), np.radians(plan.orbit * t))
        eye = plan.target + turn @ (eye - plan.target)
        rot = turn @ rot
    if plan.dolly:
        to_target = plan.target - eye
        dist = float(np.linalg.norm(to_target))
        step = min(plan.dolly * t, dist - 2 * camera0.near)
        eye = eye + to_target / max(dist, 1e-12) * step
    if plan.shake:
        yaw, pitch, roll = shake_angles(plan, t)
        local = (
            rotation(np.array([0.0, 1.0, 0.0]), yaw)
            @ rotation(np.array([1.0, 0.0, 0.0]), pitch)
            @ rotation(np.array([0.0, 0.0, 1.0]), roll)
        )
        rot = rot @ local
    w2c = np.eye(4)
    w2c[:3, :3] = rot.T
    w2c[:3, 3] = -rot.T @ eye
    return replace(camera0, world_to_camera=w2c)
