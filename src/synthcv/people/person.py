"""One posed, placed person: body mesh, eyes, clothing regions, COCO keypoints and rig.

:func:`build_person` is the only entry point: it takes everything drawn for one person
(:class:`PersonParams`) plus where it stands, and returns the object-frame mesh and rig and the
world pose, so the sampler can append it to the scene like any other object.

Order of operations: forward kinematics of the pose at the skeleton's own size → skinning of
the shape's rest mesh → the clip's heading removed (``facing`` is then the pelvis' heading) →
uniform scale to the drawn height → vertical contact (soles on the ground, or the clip's own
height) → eyes turned toward the gaze target → keypoints → centred on the bounding box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from synthcv.people import head as headgeo
from synthcv.people.body import (
    PART_ID,
    BodyShape,
    RestBody,
    pose_vertices,
    posed_offsets,
    rest_body,
    sole_drop,
    standing_height,
)
from synthcv.people.keypoints import COCO_KEYPOINTS, DEPTH_BELOW_SURFACE, JOINT_OF
from synthcv.people.motions import (
    CLIPS,
    STANDING_ROOT_HEIGHT,
    Pose,
    load_clip,
    perturb,
    pose_named,
    slerp,
)
from synthcv.people.skeleton import INDEX, JOINTS, forward_kinematics
from synthcv.scene import Mesh, PersonRig, matrix_to_quat, quat_to_matrix

#: Material regions of a person's faces, in this order (``SceneObject.region_materials``).
PERSON_CLASS = "person"  # the semantic class people get (after the spec's object classes)
REGIONS = ("skin", "top", "bottom", "shoes", "hair", "sclera", "iris", "pupil")
REGION_ID = {name: i for i, name in enumerate(REGIONS)}
#: The Monk Skin Tone scale (Monk 2019; Google's published swatches), 1 lightest … 10
#: darkest, as sRGB; a fractional tone blends its two neighbours.
MONK_SKIN_TONES = (
    "#f6ede4", "#f3e7db", "#f7ead0", "#eadaba", "#d7bd96",
    "#a07e56", "#825c43", "#604134", "#3a312a", "#292420",
)  # fmt: skip
SLEEVES = ("none", "short", "long")
LEGS = ("shorts", "long")
HAIR = ("none", "short", "long")
CONTACT = ("ground", "clip")


@dataclass(frozen=True)
class PersonParams:
    """Everything drawn for one person (angles in degrees, lengths in metres)."""

    pose: str = "standing"
    phase: float = 0.0
    perturb: float = 0.0  # std of a random extra rotation at every joint
    blend_pose: str | None = None  # a second pose mixed in ...
    blend_phase: float = 0.0
    blend_weight: float = 0.0  # ... this far (0: none, 1: only the second)
    height: float = 1.75
    shape: BodyShape = field(default_factory=BodyShape)
    head_yaw: float = 0.0  # turn of the head on the neck, > 0 to the person's left
    head_pitch: float = 0.0  # > 0 up
    head_roll: float = 0.0
    sleeves: str = "short"
    legs: str = "long"
    gaze: str = "camera"  # camera | point | ahead
    gaze_yaw: float = 0.0  # added to the target's direction, > 0 to the person's left
    gaze_pitch: float = 0.0
    eyelid: float = 1.0
    contact: str = "ground"
    lod: int = 0  # mesh level of detail (body.LOD_STEPS): 1 for people far from the camera


@dataclass(frozen=True)
class PlacedPerson:
    mesh: Mesh
    rig: PersonRig
    position: np.ndarray  # world position of the mesh origin (its bounding-box centre)
    yaw: float  # degrees: the pelvis' heading in the world (0 = +x)
    footprint: np.ndarray  # (4,) world xy box of the posed person [x0, y0, x1, y1]
    clip_heading: float  # degrees the clip's own heading was at this phase (removed)


def skin_rgb(tone: float) -> tuple[float, float, float]:
    """sRGB in [0, 1] of a Monk-scale tone in [1, 10]."""
    rgb = np.array([[int(h[i : i + 2], 16) / 255 for i in (1, 3, 5)] for h in MONK_SKIN_TONES])
    t = float(np.clip(tone, 1.0, 10.0)) - 1.0
    i = min(int(t), 8)
    return tuple(float(c) for c in rgb[i] + (t - i) * (rgb[i + 1] - rgb[i]))  # type: ignore[return-value]


def level_of_detail(pixels_per_metre: float) -> int:
    """The mesh level for a person seen at ``pixels_per_metre`` (focal length / distance):
    the finest whose voxel projects to at least 1.5 px."""
    from synthcv.people.body import LOD_STEPS

    for level, step in enumerate(LOD_STEPS):
        if step * pixels_per_metre >= 1.5:
            return level
    return len(LOD_STEPS) - 1


def draw_pose(params: PersonParams, rng: np.random.Generator) -> Pose:
    """The skeleton pose: the clip or static pose, blended with a second one, perturbed, head
    turned, pelvis centred."""
    pose = pose_named(params.pose, params.phase)
    if params.blend_pose is not None and params.blend_weight > 0:
        pose = blend(pose, pose_named(params.blend_pose, params.blend_phase), params.blend_weight)
    pose = perturb(pose, params.perturb, rng)
    local = pose.local.copy()
    local[INDEX["neck"]] = local[INDEX["neck"]] @ headgeo.turn(
        params.head_yaw, params.head_pitch, params.head_roll
    )
    root = pose.root_position.copy()
    root[0] = root[2] = 0.0  # the clip's travel is dropped: the person stands where placed
    return Pose(root, local)


def blend(a: Pose, b: Pose, weight: float) -> Pose:
    """Every joint turned ``weight`` of the way from ``a`` to ``b`` (slerp); the root's
    position moved as far. Hinges stay hinges (both rotate about the same axis)."""
    local = np.empty_like(a.local)
    for i in range(len(a.local)):
        qa, qb = matrix_to_quat(a.local[i]), matrix_to_quat(b.local[i])
        local[i] = quat_to_matrix(slerp(qa, qb, weight))
    return Pose(a.root_position + weight * (b.root_position - a.root_position), local)


def _heading(world: np.ndarray) -> float:
    """Yaw (radians) of the pelvis' forward axis projected on the ground (0 if vertical)."""
    fwd = world[INDEX["root"], :3, 0]
    if math.hypot(fwd[0], fwd[1]) < 1e-6:
        return 0.0
    return math.atan2(fwd[1], fwd[0])


def _rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def vertex_regions(body: RestBody, sleeves: str, legs: str, hair: str) -> np.ndarray:
    """Each rest vertex's material region from its body segment and clothing choices."""
    seg = np.array(body.segments)[body.segment]
    t = body.along
    r = np.full(len(seg), REGION_ID["skin"], dtype=np.int16)
    r[np.isin(seg, ("torso_upper", "torso_lower"))] = REGION_ID["top"]
    r[seg == "pelvis"] = REGION_ID["bottom"]
    r[seg == "hair"] = REGION_ID["hair"]
    neck = body.rest_world[INDEX["neck"]]
    at_neck = (body.vertices - neck[:3, 3]) @ neck[:3, :3]
    # a round neckline: the top stops 7.5 cm around the neck, 5 cm below its base
    collar = (at_neck[:, 1] > -0.05) & (np.hypot(at_neck[:, 0], at_neck[:, 2]) < 0.075)
    r[(r == REGION_ID["top"]) & collar] = REGION_ID["skin"]
    if hair != "none":  # the skull above the hairline
        local = at_neck - np.asarray(headgeo.HEAD_CENTRE)
        line = np.interp(local[:, 0], headgeo.HAIRLINE_FORWARD, headgeo.HAIRLINE_HEIGHT)
        r[(seg == "head") & (local[:, 1] > line)] = REGION_ID["hair"]
    r[seg == "foot"] = REGION_ID["shoes"]
    upper_arm = seg == "upper_arm"
    if sleeves == "long":
        r[upper_arm] = REGION_ID["top"]
        r[(seg == "lower_arm") & (t < 0.9)] = REGION_ID["top"]
    elif sleeves == "short":
        r[upper_arm & (t < 0.45)] = REGION_ID["top"]
    r[seg == "upper_leg"] = REGION_ID["bottom"]
    if legs == "long":
        r[(seg == "lower_leg") & (t < 0.93)] = REGION_ID["bottom"]
    else:
        r[(seg == "upper_leg") & (t > 0.6)] = REGION_ID["skin"]
    return r


def build_person(
    params: PersonParams,
    rng: np.random.Generator,
    *,
    xy: tuple[float, float],
    yaw: float,
    ground_z: float,
    gaze_target: np.ndarray | None,
) -> PlacedPerson:
    """Pose, skin, scale, place and label one person.

    ``yaw`` (degrees) is the heading the pelvis gets in the world; ``gaze_target`` is a world
    point (the camera centre for ``gaze: camera``, the drawn point for ``gaze: point``), None
    for ``gaze: ahead``.
    """
    body = rest_body(params.shape, params.lod)
    pose = draw_pose(params, rng)
    offsets = posed_offsets(params.shape)
    world = forward_kinematics(pose, offsets)
    verts = pose_vertices(body, world)
    heading = _heading(world)
    k = params.height / standing_height(params.shape)
    # body frame: heading removed, scaled, pelvis over the origin
    turn = _rot_z(-heading)
    world = world.copy()
    world[:, :3, :3] = turn @ world[:, :3, :3]
    world[:, :3, 3] = (world[:, :3, 3] @ turn.T) * k
    verts = (verts @ turn.T) * k
    if params.contact == "ground":
        dz = -float(verts[:, 2].min())
    else:  # the clip's own root height, with the soles on the ground when standing straight
        leg = -(offsets[INDEX["right_knee"], 1] + offsets[INDEX["right_ankle"], 1])
        dz = (sole_drop(params.shape) - (STANDING_ROOT_HEIGHT * params.shape.leg - leg)) * k
    verts[:, 2] += dz
    world[:, 2, 3] += dz

    place = _rot_z(math.radians(yaw))
    origin = np.array([xy[0], xy[1], ground_z])

    neck = world[INDEX["neck"]]
    n_rot, n_pos = neck[:3, :3], neck[:3, 3]

    def from_head(p: np.ndarray) -> np.ndarray:
        return np.asarray(p) * k @ n_rot.T + n_pos

    # eyes: aim each at the target (in the neck frame), within the anatomical range
    eye_v, eye_f, eye_r, centres, gazes = [], [], [], [], []
    clamped = False
    for side in ("right", "left"):
        c_body = from_head(headgeo.eye_centre(side))
        if gaze_target is not None:
            target_body = (np.asarray(gaze_target) - origin) @ place  # world → body frame
            d = n_rot.T @ (target_body - c_body)
            gy, gp = headgeo.gaze_angles(d)
        else:
            gy, gp = 0.0, 0.0
        d = headgeo.gaze_direction(gy + params.gaze_yaw, gp + params.gaze_pitch)
        rot, looked, was_clamped = headgeo.eye_rotation(d)
        clamped |= was_clamped
        v, f, reg = headgeo.eyeball(side, rot, params.eyelid, 3 if params.lod == 0 else 1)
        eye_v.append(from_head(v))
        eye_f.append(f)
        eye_r.append(np.array([REGION_ID[x] for x in reg], dtype=np.int16))
        centres.append(c_body)
        gazes.append(n_rot @ looked)

    regions_v = vertex_regions(body, params.sleeves, params.legs, params.shape.hair)
    fr = regions_v[body.faces]  # a face takes the region two or three of its corners share
    face_regions = [np.where(fr[:, 1] == fr[:, 2], fr[:, 1], fr[:, 0])]
    faces = [body.faces]
    parts = [body.part]
    all_v = [verts]
    n = len(verts)
    for v, f, r in zip(eye_v, eye_f, eye_r, strict=True):
        faces.append(f + n)
        face_regions.append(r)
        parts.append(np.full(len(v), PART_ID["head"], dtype=np.uint8))
        all_v.append(v)
        n += len(v)
    vertices = np.vstack(all_v)

    keypoints: dict[str, np.ndarray] = {}
    depth: dict[str, float] = {}
    for name in COCO_KEYPOINTS:
        if name in JOINT_OF:
            keypoints[name] = world[INDEX[JOINT_OF[name]], :3, 3].copy()
        elif name == "nose":
            keypoints[name] = from_head(headgeo.NOSE_POINT)
        elif name.endswith("_eye"):
            keypoints[name] = from_head(headgeo.eye_point(name.split("_")[0]))
        else:
            keypoints[name] = from_head(headgeo.ear_point(name.split("_")[0]))
        depth[name] = DEPTH_BELOW_SURFACE[name] * k * params.shape.build

    lo, hi = vertices.min(0), vertices.max(0)
    centre = (lo + hi) / 2
    head = np.eye(4)
    head[:3, :3] = n_rot
    head[:3, 3] = from_head(np.array(headgeo.HEAD_CENTRE)) - centre
    rig = PersonRig(
        joint_names=JOINTS,
        joints=world[:, :3, 3] - centre,
        head=head,
        eye_centres=np.array(centres) - centre,
        gaze=np.array(gazes),
        gaze_target=None if gaze_target is None else np.asarray(gaze_target, dtype=np.float64),
        gaze_clamped=clamped,
        eyelid=float(params.eyelid),
        vertex_parts=np.concatenate(parts),
    )
    mesh = Mesh(
        vertices=vertices - centre,
        faces=np.vstack(faces).astype(np.int32),
        source=f"person:{params.pose}" + ("" if params.lod == 0 else f"@lod{params.lod}"),
        keypoints={n: p - centre for n, p in keypoints.items()},
        face_regions=np.concatenate(face_regions),
        keypoint_depth=depth,
    )
    position = place @ centre + origin
    corners = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
    xy_world = corners @ place[:2, :2].T + origin[:2]
    footprint = np.array([*xy_world.min(0), *xy_world.max(0)])
    return PlacedPerson(mesh, rig, position, yaw, footprint, math.degrees(heading))


@dataclass(frozen=True)
class PersonBuild:
    """What :func:`build_person` was called with, so a clip can build the same person at
    another moment of its motion (docs/sequences.md)."""

    params: PersonParams
    seed: int  # of the pose perturbation's generator
    xy: tuple[float, float]
    yaw: float
    ground_z: float
    gaze_target: np.ndarray | None


def clip_speed(pose: str) -> float:
    """Metres per second the motion clip's root travels over the ground (first to last frame;
    0 for static poses)."""
    if pose not in CLIPS:
        return 0.0
    clip = load_clip(pose)
    travel = clip.frames[-1, 1:4] - clip.frames[0, 1:4]  # y up
    return float(np.hypot(travel[0], travel[2])) / clip.duration


def person_at(build: PersonBuild, t: float, travel: bool = True) -> PlacedPerson:
    """The person of ``build`` ``t`` seconds later: its motion clip advanced (looping) and,
    with ``travel``, moved along its heading at the clip's own speed. Static poses stay."""
    params, xy = build.params, build.xy
    if params.pose in CLIPS and t:
        clip = load_clip(params.pose)
        params = replace(params, phase=(params.phase + t / clip.duration) % 1.0)
        if travel:
            step = clip_speed(params.pose) * t
            heading = math.radians(build.yaw)
            xy = (xy[0] + step * math.cos(heading), xy[1] + step * math.sin(heading))
    placed = build_person(
        params,
        np.random.default_rng(build.seed),
        xy=xy,
        yaw=build.yaw,
        ground_z=build.ground_z,
        gaze_target=build.gaze_target,
    )
    return replace(placed, rig=replace(placed.rig, rebuild=build))
