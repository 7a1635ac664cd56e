"""Poses: the 15 motion-capture clips that ship with ``pybullet_data`` and a few static poses.

A clip file (``data/motions/humanoid3d_<name>.txt``, DeepMimic's format) is JSON with
``Frames``: rows of 44 numbers, ``[duration, root position (3), root rotation (w, x, y, z),
chest, neck, right hip (4 each), right knee (1), right ankle, right shoulder (4 each),
right elbow (1), left hip, left knee, left ankle, left shoulder, left elbow]`` in the URDF's
y-up frame. A pose is drawn at a *phase* in [0, 1] of the clip: positions and hinge angles are
interpolated linearly, rotations by slerp between the two nearest frames.

Static poses (``standing``, ``sitting``, ``arms_raised``, ``t_pose``, ``waving``) are joint
rotations given here; like clips, they can be perturbed within the joints' limits.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from synthcv.people.skeleton import INDEX, JOINTS, REVOLUTE_LIMITS, Pose, axis_angle

CLIPS = (
    "walk",
    "run",
    "jump",
    "kick",
    "punch",
    "dance_a",
    "dance_b",
    "crawl",
    "getup_faceup",
    "getup_facedown",
    "roll",
    "spin",
    "spinkick",
    "backflip",
    "cartwheel",
)
STATIC_POSES = ("standing", "sitting", "arms_raised", "t_pose", "waving")
POSES = CLIPS + STATIC_POSES

#: The clip columns after the root: (joint, number of values).
_CLIP_LAYOUT = (
    ("chest", 4),
    ("neck", 4),
    ("right_hip", 4),
    ("right_knee", 1),
    ("right_ankle", 4),
    ("right_shoulder", 4),
    ("right_elbow", 1),
    ("left_hip", 4),
    ("left_knee", 1),
    ("left_ankle", 4),
    ("left_shoulder", 4),
    ("left_elbow", 1),
)
FRAME_WIDTH = 1 + 3 + 4 + sum(n for _, n in _CLIP_LAYOUT)  # 44


class PoseError(ValueError):
    """An unknown pose name or an unreadable clip file."""


def clip_path(name: str) -> Path:
    import pybullet_data

    return Path(pybullet_data.getDataPath()) / "data" / "motions" / f"humanoid3d_{name}.txt"


@dataclass(frozen=True)
class Clip:
    name: str
    frames: np.ndarray  # (N, 44)

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the last (a frame's first number is its duration)."""
        return float(self.frames[:-1, 0].sum())


@lru_cache(maxsize=len(CLIPS))
def load_clip(name: str) -> Clip:
    """One clip of pybullet_data, checked for the DeepMimic layout."""
    if name not in CLIPS:
        raise PoseError(f"unknown motion clip {name!r}; expected one of {', '.join(CLIPS)}")
    path = clip_path(name)
    try:
        data = json.loads(path.read_text())
        frames = np.asarray(data["Frames"], dtype=np.float64)
    except (OSError, ValueError, KeyError) as e:
        raise PoseError(f"{path}: cannot read motion clip {name!r}: {e}") from e
    if frames.ndim != 2 or frames.shape[1] != FRAME_WIDTH or len(frames) < 2:
        raise PoseError(f"{path}: expected ≥ 2 frames of {FRAME_WIDTH} numbers, got {frames.shape}")
    return Clip(name, frames)


def quat_wxyz_to_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation of two unit quaternions (the shorter way round)."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    d = float(np.dot(a, b))
    if d < 0:
        b, d = -b, -d
    if d > 0.9995:
        q = a + t * (b - a)
        return q / np.linalg.norm(q)
    th = math.acos(d)
    return (math.sin((1 - t) * th) * a + math.sin(t * th) * b) / math.sin(th)


def _frame_to_pose(row: np.ndarray) -> Pose:
    local = np.tile(np.eye(3), (len(JOINTS), 1, 1))
    local[INDEX["root"]] = quat_wxyz_to_matrix(row[4:8])
    k = 8
    for joint, n in _CLIP_LAYOUT:
        if n == 4:
            local[INDEX[joint]] = quat_wxyz_to_matrix(row[k : k + 4])
        else:
            local[INDEX[joint]] = axis_angle(np.array([0.0, 0.0, 1.0]), float(row[k]))
        k += n
    return Pose(row[1:4].copy(), local)


def clip_pose(name: str, phase: float) -> Pose:
    """The pose of clip ``name`` at ``phase`` ∈ [0, 1] (0: first frame, 1: last)."""
    clip = load_clip(name)
    f = clip.frames
    t = float(np.clip(phase, 0.0, 1.0)) * clip.duration
    ends = np.cumsum(f[:-1, 0])
    i = int(min(np.searchsorted(ends, t, side="right"), len(f) - 2))
    start = ends[i - 1] if i > 0 else 0.0
    u = float(np.clip((t - start) / max(f[i, 0], 1e-12), 0.0, 1.0))
    a, b = f[i], f[i + 1]
    row = a + u * (b - a)  # positions and hinge angles
    row[4:8] = slerp(a[4:8], b[4:8], u)
    k = 8
    for _, n in _CLIP_LAYOUT:
        if n == 4:
            row[k : k + 4] = slerp(a[k : k + 4], b[k : k + 4], u)
        k += n
    return _frame_to_pose(row)


# Standing height of the root in the clips (walk's first frame), used by the static poses.
STANDING_ROOT_HEIGHT = 0.8475


def _static(name: str) -> Pose:
    """Static poses, as URDF-frame joint rotations (x forward, y up, z right)."""
    local = np.tile(np.eye(3), (len(JOINTS), 1, 1))
    x, z = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])
    height = STANDING_ROOT_HEIGHT

    def arms(abduct_deg: float) -> None:  # raise both arms sideways
        local[INDEX["right_shoulder"]] = axis_angle(x, -math.radians(abduct_deg))
        local[INDEX["left_shoulder"]] = axis_angle(x, math.radians(abduct_deg))

    if name == "standing":
        arms(8.0)
        local[INDEX["right_elbow"]] = axis_angle(z, math.radians(10.0))
        local[INDEX["left_elbow"]] = axis_angle(z, math.radians(10.0))
    elif name == "sitting":  # thighs forward and level, shins down: a chair seat at knee height
        for side in ("right", "left"):
            local[INDEX[f"{side}_hip"]] = axis_angle(z, math.radians(90.0))
            local[INDEX[f"{side}_knee"]] = axis_angle(z, -math.radians(90.0))
            local[INDEX[f"{side}_shoulder"]] = axis_angle(z, math.radians(20.0))
            local[INDEX[f"{side}_elbow"]] = axis_angle(z, math.radians(60.0))
        height = 0.8314 * 0.5 + 0.05  # pelvis near seat height; contact decides the final z
    elif name == "arms_raised":
        arms(170.0)
    elif name == "t_pose":
        arms(90.0)
    elif name == "waving":
        arms(8.0)
        local[INDEX["right_shoulder"]] = axis_angle(x, -math.radians(110.0))
        local[INDEX["right_elbow"]] = axis_angle(z, math.radians(70.0))
    else:
        raise PoseError(f"unknown static pose {name!r}; expected one of {', '.join(STATIC_POSES)}")
    return Pose(np.array([0.0, height, 0.0]), local)


def pose_named(name: str, phase: float = 0.0) -> Pose:
    """A clip at ``phase`` or a static pose (``phase`` ignored)."""
    if name in CLIPS:
        return clip_pose(name, phase)
    if name in STATIC_POSES:
        return _static(name)
    raise PoseError(
        f"unknown pose {name!r}; expected a clip ({', '.join(CLIPS)}) or "
        f"a static pose ({', '.join(STATIC_POSES)})"
    )


def perturb(pose: Pose, degrees: float, rng: np.random.Generator) -> Pose:
    """Each joint rotated by a random axis-angle of std ``degrees`` (hinges about their own
    axis, clipped to the URDF's limits); the root and wrists are left alone."""
    if degrees <= 0:
        return pose
    local = pose.local.copy()
    for i, name in enumerate(JOINTS):
        if name == "root" or name.endswith("wrist"):
            continue
        if name in REVOLUTE_LIMITS:
            lo, hi = REVOLUTE_LIMITS[name]
            angle = math.atan2(local[i][1, 0], local[i][0, 0])
            angle = float(np.clip(angle + math.radians(degrees) * rng.normal(), lo, hi))
            local[i] = axis_angle(np.array([0.0, 0.0, 1.0]), angle)
        else:
            axis = rng.normal(size=3)
            local[i] = local[i] @ axis_angle(axis, math.radians(degrees) * rng.normal())
    return Pose(pose.root_position.copy(), local)
