"""``{person: walk, phase: 0.3, height: 1.8, build: 1.1}``: a posed human body as a rigid object.

The same body as ``people:`` (synthcv.people), in one pose, as one mesh with COCO's 17 person
keypoints: a mannequin, a statue, a body lying on the floor that physics may drop. It has one
material (the class's colour) and no rig, so it gets the keypoints but none of the per-person
labels of ``people:`` (body parts, head pose, gaze); for people standing in a scene use
``people:``. Every pose of ``people.pose`` (a clip or a static pose) is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from synthcv.assets._common import AssetError, check_keys, describe, finalize
from synthcv.assets.kinds import AssetKind
from synthcv.scene import Mesh

KEYS = ("person", "phase", "height", "build", "keypoints")


def build_person_asset(asset: Mapping[str, Any]) -> Mesh:
    from synthcv.people.body import BodyShape
    from synthcv.people.motions import PoseError
    from synthcv.people.person import PersonParams, build_person

    check_keys(asset, KEYS)
    if "keypoints" in asset:
        raise AssetError(f"{describe(asset)}: a person's keypoints are COCO's 17; drop keypoints")
    params = PersonParams(
        pose=str(asset["person"]),
        phase=float(asset.get("phase", 0.0)),
        height=float(asset.get("height", 1.75)),
        shape=BodyShape(build=float(asset.get("build", 1.0)), hair="short"),
        gaze="ahead",
    )
    try:
        placed = build_person(
            params, np.random.default_rng(0), xy=(0.0, 0.0), yaw=0.0, ground_z=0.0, gaze_target=None
        )
    except PoseError as e:
        raise AssetError(f"{describe(asset)}: {e}") from e
    body = placed.mesh
    mesh = finalize(asset, body.vertices, body.faces, f"person:{params.pose}")
    shift = mesh.vertices[0] - body.vertices[0]  # finalize re-centres (here by ~0)
    return replace(
        mesh,
        keypoints={k: v + shift for k, v in body.keypoints.items()},
        keypoint_depth=dict(body.keypoint_depth),
    )


def person_factors(asset: Mapping[str, Any], mesh: Mesh) -> dict[str, Any]:
    return {
        "person.pose": str(asset["person"]),
        "person.phase": float(asset.get("phase", 0.0)),
        "person.height": float(asset.get("height", 1.75)),
        "person.build": float(asset.get("build", 1.0)),
    }


KIND = AssetKind(key="person", build=build_person_asset, factors=person_factors)
