"""COCO's 17 person keypoints, their skeleton and flip pairs, from the skeleton and head.

The order, names, skeleton (1-based, as COCO's ``person_keypoints`` json writes it) and flip
pairs are COCO's. Body keypoints are joint centres, which lie inside the limb: each carries the
limb's radius so the depth test (:func:`synthcv.labels.keypoints_for`) compares the rendered
surface with the limb's near side, not with its axis (COCO marks a joint visible when the limb
there is seen).
"""

from __future__ import annotations

COCO_KEYPOINTS = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
COCO_SKELETON = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
    (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip
#: Index pairs (0-based) that swap under a horizontal flip.
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

#: COCO keypoint → skeleton joint whose origin it is (body keypoints).
JOINT_OF = {
    "left_shoulder": "left_shoulder",
    "right_shoulder": "right_shoulder",
    "left_elbow": "left_elbow",
    "right_elbow": "right_elbow",
    "left_wrist": "left_wrist",
    "right_wrist": "right_wrist",
    "left_hip": "left_hip",
    "right_hip": "right_hip",
    "left_knee": "left_knee",
    "right_knee": "right_knee",
    "left_ankle": "left_ankle",
    "right_ankle": "right_ankle",
}
#: How deep below the surface each keypoint lies at build 1 (metres): the limb's radius there.
DEPTH_BELOW_SURFACE = {
    "nose": 0.0,
    "left_eye": 0.0,
    "right_eye": 0.0,
    "left_ear": 0.0,
    "right_ear": 0.0,
    "left_shoulder": 0.055,
    "right_shoulder": 0.055,
    "left_elbow": 0.045,
    "right_elbow": 0.045,
    "left_wrist": 0.032,
    "right_wrist": 0.032,
    "left_hip": 0.09,
    "right_hip": 0.09,
    "left_knee": 0.055,
    "right_knee": 0.055,
    "left_ankle": 0.04,
    "right_ankle": 0.04,
}
