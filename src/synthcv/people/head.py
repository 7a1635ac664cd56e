"""The head: where its features are, eyes that turn toward a gaze target, and head pose.

Everything here is in the neck link's frame (the skeleton's ``neck`` joint, at the base of the
neck): +x forward (out of the face), +y up along the neck, +z the person's right. Sizes are
adult averages in metres (head breadth ≈ 15 cm, length ≈ 19 cm, height ≈ 23 cm; eyeball
diameter ≈ 24 mm; interpupillary distance ≈ 63 mm).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

HEAD_CENTRE = (0.015, 0.165, 0.0)
HEAD_RADII = (0.097, 0.115, 0.077)  # forward, up, sideways semi-axes of the skull
NOSE_BRIDGE = (0.103, 0.19, 0.0)
NOSE_TIP = (0.122, 0.148, 0.0)
NOSE_TIP_RADIUS = 0.015
EAR_CENTRE = (0.0, 0.168, 0.079)  # the right ear; the left mirrors z
EYE_RADIUS = 0.012
EYE_CENTRE = (0.0955, 0.193, 0.0315)  # the right eye's centre; the left mirrors z
IRIS_HALF_ANGLE = 32.0  # degrees from the eye's axis: iris radius ≈ 6.4 mm
PUPIL_HALF_ANGLE = 12.0
#: How far each eye may turn from the head's forward direction (degrees), a common range.
GAZE_YAW_LIMIT = 40.0
GAZE_PITCH_LIMIT = 30.0

#: The hairline in the head frame (relative to HEAD_CENTRE): skull above it is hair, as a
#: function of how far forward the point is (forehead high, nape low, down to the ears).
HAIRLINE_FORWARD = (-0.12, -0.03, 0.05, 0.12)
HAIRLINE_HEIGHT = (-0.075, -0.02, 0.06, 0.075)

#: Keypoints on the head, in the neck frame, for COCO's nose, eyes and ears.
NOSE_POINT = (NOSE_TIP[0] + NOSE_TIP_RADIUS, NOSE_TIP[1], 0.0)


def eye_centre(side: str) -> np.ndarray:
    """``side``: "right" or "left" (the person's)."""
    c = np.array(EYE_CENTRE)
    if side == "left":
        c[2] = -c[2]
    return c


def eye_point(side: str) -> np.ndarray:
    """The centre of the visible eye (front of the eyeball looking ahead): COCO's eye point."""
    return eye_centre(side) + np.array([EYE_RADIUS, 0.0, 0.0])


def ear_point(side: str) -> np.ndarray:
    c = np.array(EAR_CENTRE) + np.array([0.0, 0.0, 0.008])
    if side == "left":
        c[2] = -c[2]
    return c


def gaze_angles(direction: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees of a neck-frame direction: yaw > 0 toward the person's left,
    pitch > 0 up."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    yaw = math.degrees(math.atan2(-d[2], d[0]))
    pitch = math.degrees(math.asin(float(np.clip(d[1], -1.0, 1.0))))
    return yaw, pitch


def gaze_direction(yaw: float, pitch: float) -> np.ndarray:
    """Unit neck-frame direction of (yaw, pitch) degrees (inverse of :func:`gaze_angles`)."""
    y, p = math.radians(yaw), math.radians(pitch)
    return np.array([math.cos(p) * math.cos(y), math.sin(p), -math.cos(p) * math.sin(y)])


def eye_rotation(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """The eyeball's rotation (neck frame) that turns its axis (+x) to ``direction``, clamped
    to the anatomical range; returns (rotation, the direction actually looked, clamped?)."""
    yaw, pitch = gaze_angles(direction)
    cy = float(np.clip(yaw, -GAZE_YAW_LIMIT, GAZE_YAW_LIMIT))
    cp = float(np.clip(pitch, -GAZE_PITCH_LIMIT, GAZE_PITCH_LIMIT))
    y, p = math.radians(cy), math.radians(cp)
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(p), -math.sin(p), 0], [math.sin(p), math.cos(p), 0], [0, 0, 1]])
    r = ry @ rz
    return r, r @ np.array([1.0, 0.0, 0.0]), (cy, cp) != (yaw, pitch)


@lru_cache(maxsize=4)
def _eyeball(subdivisions: int) -> tuple[np.ndarray, np.ndarray]:
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=subdivisions, radius=EYE_RADIUS)
    return np.asarray(s.vertices, dtype=np.float64), np.asarray(s.faces, dtype=np.int32)


#: Regions of an eyeball's faces (indices into the person's region materials).
SCLERA, IRIS, PUPIL = "sclera", "iris", "pupil"


def eyeball(
    side: str, rotation: np.ndarray, opening: float, subdivisions: int = 3
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One eyeball in the neck frame: vertices, faces and each face's region.

    The iris and pupil are caps around the rotated axis; faces above the lid line
    (``opening`` 1: wide open, 0: shut; the lid does not turn with the eye) are skin.
    """
    v, f = _eyeball(subdivisions)
    axis_angle = np.degrees(np.arccos(np.clip(v[:, 0] / EYE_RADIUS, -1.0, 1.0)))
    world = v @ rotation.T + eye_centre(side)
    lid = EYE_RADIUS * (2.0 * float(np.clip(opening, 0.0, 1.0)) - 1.0)
    centre_f = world[f].mean(1) - eye_centre(side)
    angle_f = axis_angle[f].mean(1)
    regions = np.where(
        angle_f < PUPIL_HALF_ANGLE, PUPIL, np.where(angle_f < IRIS_HALF_ANGLE, IRIS, SCLERA)
    )
    regions = np.where(centre_f[:, 1] > lid * 0.95, "skin", regions)
    return world, f, regions.tolist()


#: A frontal, upright face looking into the camera: the head frame's axes (x out of the face,
#: y up, z the person's right) in OpenCV camera coordinates (x right, y down, z forward).
FRONTAL = np.array([[0.0, 0.0, -1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]]).T


def turn(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head-frame rotation Ry(yaw) · Rz(pitch) · Rx(roll), degrees: yaw about the head's up
    axis (> 0 toward the person's left), pitch about its right axis (> 0 up), roll about the
    line out of the face (> 0 tips the crown toward the person's right shoulder)."""
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(p), -math.sin(p), 0], [math.sin(p), math.cos(p), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, math.cos(r), -math.sin(r)], [0, math.sin(r), math.cos(r)]])
    return ry @ rz @ rx


def head_pose_cam(head_rot_cam: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a head whose frame's axes, in camera coordinates, are
    the columns of ``head_rot_cam``: the :func:`turn` that takes a frontal, upright face
    looking into the camera (:data:`FRONTAL`) to this one. A person facing a level camera who
    turns the head on the neck by (yaw, pitch, roll) has exactly that head pose."""
    r = FRONTAL.T @ head_rot_cam
    pitch = math.degrees(math.asin(float(np.clip(r[1, 0], -1.0, 1.0))))
    yaw = math.degrees(math.atan2(-r[2, 0], r[0, 0]))
    roll = math.degrees(math.atan2(-r[1, 2], r[1, 1]))
    return yaw, pitch, roll


def head_rotation_cam(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Inverse of :func:`head_pose_cam`: the head frame's axes in camera coordinates."""
    return FRONTAL @ turn(yaw, pitch, roll)
