"""The humanoid skeleton that ships with ``pybullet_data`` (DeepMimic's ``humanoid.urdf``) and
its forward kinematics, in numpy.

The URDF is modelled y-up with the figure facing +x and its right side at +z, at four times
human size (DeepMimic loads it with ``globalScaling=0.25``; its motion clips are in metres at
that scale). The joint table below is that file's, verbatim (``tests/test_people.py`` reads the
URDF from pybullet_data and checks it, and checks these kinematics against pybullet's).

synthcv works z-up: :data:`Y_UP_TO_Z_UP` turns the URDF frame into the body frame, where the
figure faces +x, its left is +y and up is +z.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The URDF's length unit in metres (DeepMimic's ``globalScaling``).
URDF_SCALE = 0.25

#: Joints in the URDF's order (the motion clips' order without root and wrists).
JOINTS = (
    "root",
    "chest",
    "neck",
    "right_hip",
    "right_knee",
    "right_ankle",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_hip",
    "left_knee",
    "left_ankle",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
)
INDEX = {name: i for i, name in enumerate(JOINTS)}

#: joint → (parent, origin in the parent link's frame (URDF units), type)
URDF_JOINTS: dict[str, tuple[str | None, tuple[float, float, float], str]] = {
    "root": (None, (0.0, 0.0, 0.0), "free"),
    "chest": ("root", (0.0, 0.944604, 0.0), "spherical"),
    "neck": ("chest", (0.0, 0.895576, 0.0), "spherical"),
    "right_hip": ("root", (0.0, 0.0, 0.339548), "spherical"),
    "right_knee": ("right_hip", (0.0, -1.686184, 0.0), "revolute"),
    "right_ankle": ("right_knee", (0.0, -1.639480, 0.0), "spherical"),
    "right_shoulder": ("chest", (-0.096200, 0.974000, 0.732440), "spherical"),
    "right_elbow": ("right_shoulder", (0.0, -1.099152, 0.0), "revolute"),
    "right_wrist": ("right_elbow", (0.0, -1.035788, 0.0), "fixed"),
    "left_hip": ("root", (0.0, 0.0, -0.339548), "spherical"),
    "left_knee": ("left_hip", (0.0, -1.686184, 0.0), "revolute"),
    "left_ankle": ("left_knee", (0.0, -1.639480, 0.0), "spherical"),
    "left_shoulder": ("chest", (-0.096200, 0.974000, -0.732440), "spherical"),
    "left_elbow": ("left_shoulder", (0.0, -1.099152, 0.0), "revolute"),
    "left_wrist": ("left_elbow", (0.0, -1.035788, 0.0), "fixed"),
}
PARENT = tuple(
    -1 if URDF_JOINTS[n][0] is None else INDEX[URDF_JOINTS[n][0]]  # type: ignore[index]
    for n in JOINTS
)
#: Revolute joints turn about the link's z axis, within these limits (radians, the URDF's).
REVOLUTE_LIMITS = {
    "right_knee": (-3.14, 0.0),
    "left_knee": (-3.14, 0.0),
    "right_elbow": (0.0, 3.14),
    "left_elbow": (0.0, 3.14),
}

#: URDF (y up, x forward, z right) → body frame (z up, x forward, y left): +90° about x.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

#: Which limb segment each length ratio of a body shape stretches (joint → ratio name).
SEGMENT_RATIO = {
    "chest": "torso",
    "neck": "torso",
    "right_knee": "leg",
    "right_ankle": "leg",
    "left_knee": "leg",
    "left_ankle": "leg",
    "right_elbow": "arm",
    "right_wrist": "arm",
    "left_elbow": "arm",
    "left_wrist": "arm",
}


@dataclass(frozen=True)
class Pose:
    """A skeleton pose in the URDF's own terms (y-up frame, clip metres).

    ``local`` holds each joint's rotation relative to its parent link (3×3); the root's is its
    orientation in the y-up world. ``root_position`` is the root joint's position, y-up.
    """

    root_position: np.ndarray  # (3,)
    local: np.ndarray  # (J, 3, 3)


def rest_pose() -> Pose:
    """Every joint at zero: standing straight, arms hanging, at the clips' standing height."""
    return Pose(np.array([0.0, 0.0, 0.0]), np.tile(np.eye(3), (len(JOINTS), 1, 1)))


def axis_angle(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix of ``angle`` radians about ``axis`` (Rodrigues)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def joint_offsets(ratios: dict[str, float] | None = None) -> np.ndarray:
    """Each joint's origin in its parent's frame, in metres, with limb ``ratios`` applied
    (``{"leg": 1.05, "arm": 0.95, "torso": 1.0}``; missing ratios are 1)."""
    ratios = ratios or {}
    out = np.zeros((len(JOINTS), 3))
    for i, name in enumerate(JOINTS):
        out[i] = np.asarray(URDF_JOINTS[name][1]) * URDF_SCALE
        ratio = SEGMENT_RATIO.get(name)
        if ratio is not None:
            out[i] *= ratios.get(ratio, 1.0)
    return out


def forward_kinematics(pose: Pose, offsets: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """World transforms (J, 4, 4) of every joint's link frame, in the z-up body frame.

    ``scale`` multiplies every length, the root's position included (a taller person of the
    same proportions). Rotations are the URDF links', carried into the z-up frame, so a
    link's +x is still its forward, +y its "up along the bone" and +z its right.
    """
    n = len(JOINTS)
    world = np.zeros((n, 4, 4))
    for i in range(n):
        p = PARENT[i]
        m = np.eye(4)
        if p < 0:
            m[:3, :3] = Y_UP_TO_Z_UP @ pose.local[i]
            m[:3, 3] = Y_UP_TO_Z_UP @ pose.root_position * scale
        else:
            parent = world[p]
            m[:3, :3] = parent[:3, :3] @ pose.local[i]
            m[:3, 3] = parent[:3, :3] @ (offsets[i] * scale) + parent[:3, 3]
        world[i] = m
    return world
