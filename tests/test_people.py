"""People (issue #18): skeleton and clips against pybullet, labels against geometry.

The skeleton's table and kinematics are checked against the URDF and pybullet's own forward
kinematics; keypoints, parts, head pose and gaze against the geometry they come from; people
against the ground, each other and occluders; tiny against Cycles.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from synthcv.labels import compute_labels
from synthcv.people import head as headgeo
from synthcv.people.body import PARTS, BodyShape, rest_body
from synthcv.people.keypoints import COCO_FLIP_PAIRS, COCO_KEYPOINTS, COCO_SKELETON
from synthcv.people.motions import CLIPS, STATIC_POSES, clip_pose, load_clip, pose_named
from synthcv.people.person import REGIONS, PersonParams, build_person
from synthcv.people.skeleton import (
    JOINTS,
    URDF_JOINTS,
    URDF_SCALE,
    Y_UP_TO_Z_UP,
    forward_kinematics,
    joint_offsets,
)
from synthcv.scene import Camera, Ground, Material, Mesh, Scene, SceneObject, Sun
from synthcv.spec import SpecError, load_spec

pybullet = pytest.importorskip("pybullet")


def _urdf() -> Path:
    import pybullet_data

    return Path(pybullet_data.getDataPath()) / "humanoid" / "humanoid.urdf"


# ------------------------------------------------------------------ skeleton and clips


def test_joint_table_is_the_urdf_s():
    text = _urdf().read_bytes().replace(b"\x00", b"").decode()
    root = ET.fromstring(text)
    seen = {}
    for joint in root.iter("joint"):
        name = joint.get("name")
        origin = [float(v) for v in joint.find("origin").get("xyz").split()]
        seen[name] = (joint.find("parent").get("link"), tuple(origin), joint.get("type"))
    for name in JOINTS[1:]:
        parent, origin, kind = URDF_JOINTS[name]
        assert seen[name][0] == parent
        assert np.allclose(seen[name][1], origin)
        assert seen[name][2] == kind


def _pybullet_link_positions(pose) -> np.ndarray:
    """Link frame origins (y-up world) of pybullet's humanoid set to ``pose``."""
    from synthcv.scene import matrix_to_quat

    p = pybullet
    c = p.connect(p.DIRECT)
    try:
        body = p.loadURDF(
            str(_urdf()), globalScaling=URDF_SCALE, useFixedBase=True, physicsClientId=c
        )
        p.resetBasePositionAndOrientation(
            body,
            pose.root_position.tolist(),
            matrix_to_quat(pose.local[0]).tolist(),
            physicsClientId=c,
        )
        index = {  # pybullet numbers the joints in its own order: match them by name
            p.getJointInfo(body, k, physicsClientId=c)[1].decode(): k
            for k in range(p.getNumJoints(body, physicsClientId=c))
        }
        for j in range(1, len(JOINTS)):
            kind, k = URDF_JOINTS[JOINTS[j]][2], index[JOINTS[j]]
            if kind == "spherical":
                q = matrix_to_quat(pose.local[j]).tolist()
                p.resetJointStateMultiDof(body, k, targetValue=q, physicsClientId=c)
            elif kind == "revolute":
                angle = math.atan2(pose.local[j][1, 0], pose.local[j][0, 0])
                p.resetJointState(body, k, angle, physicsClientId=c)
        out = [p.getBasePositionAndOrientation(body, physicsClientId=c)[0]]
        for j in range(1, len(JOINTS)):
            state = p.getLinkState(
                body, index[JOINTS[j]], computeForwardKinematics=True, physicsClientId=c
            )
            out.append(state[4])
        return np.array(out)
    finally:
        p.disconnect(c)


@pytest.mark.parametrize("clip,phase", [("walk", 0.3), ("cartwheel", 0.55), ("dance_b", 0.8)])
def test_forward_kinematics_match_pybullet(clip, phase):
    pose = clip_pose(clip, phase)
    ours = forward_kinematics(pose, joint_offsets())[:, :3, 3] @ Y_UP_TO_Z_UP  # back to y-up
    theirs = _pybullet_link_positions(pose)
    assert np.abs(ours - theirs).max() < 1e-4


def test_every_clip_and_static_pose_loads():
    for name in CLIPS:
        clip = load_clip(name)
        assert clip.duration > 0
        for phase in (0.0, 0.5, 1.0):
            pose = clip_pose(name, phase)
            assert np.isfinite(pose.local).all()
            # rotations stay rotations after interpolation
            dets = np.linalg.det(pose.local)
            assert np.allclose(dets, 1.0, atol=1e-6)
    for name in STATIC_POSES:
        assert np.isfinite(pose_named(name).local).all()


def test_clip_phase_interpolates_between_frames():
    clip = load_clip("walk")
    n = len(clip.frames)
    at_frame = clip.frames[:2, 0][:1].sum() / clip.duration  # phase of frame 1
    assert np.allclose(clip_pose("walk", at_frame).root_position, clip.frames[1, 1:4])
    half = clip_pose("walk", at_frame / 2).root_position
    assert np.allclose(half, (clip.frames[0, 1:4] + clip.frames[1, 1:4]) / 2)
    assert n > 2


def test_coco_tables():
    assert len(COCO_KEYPOINTS) == 17
    assert len(COCO_SKELETON) == 19
    for a, b in COCO_FLIP_PAIRS:
        la, lb = COCO_KEYPOINTS[a], COCO_KEYPOINTS[b]
        assert la.replace("left", "right") == lb


# ------------------------------------------------------------------ body mesh


def test_body_mesh_is_closed_and_every_vertex_has_a_part():
    import trimesh

    from synthcv.people.person import level_of_detail

    for lod in (0, 1):
        body = rest_body(BodyShape(build=1.0, hair="short"), lod)
        mesh = trimesh.Trimesh(body.vertices, body.faces, process=False)
        assert mesh.is_watertight
        assert mesh.volume > 0  # faces wind outwards
        assert set(np.unique(body.part)) == set(range(1, len(PARTS)))
        assert np.allclose(body.weights.sum(1), 1.0)
    fine, coarse = rest_body(BodyShape(), 0), rest_body(BodyShape(), 1)
    assert len(coarse.faces) < len(fine.faces) / 3
    vol = [trimesh.Trimesh(b.vertices, b.faces).volume for b in (fine, coarse)]
    assert abs(vol[1] / vol[0] - 1) < 0.03  # the same body, fewer triangles
    # a person 60 px per metre away (about 100 px tall) gets the coarse mesh; near ones the fine
    assert level_of_detail(60.0) == 1 and level_of_detail(300.0) == 0


def test_height_and_build_are_what_was_asked():
    rng = np.random.default_rng(0)
    for height in (1.5, 1.9):
        p = build_person(
            PersonParams(pose="standing", height=height, gaze="ahead"),
            rng,
            xy=(0, 0),
            yaw=0,
            ground_z=0,
            gaze_target=None,
        )
        v = p.mesh.vertices + p.position
        # standing is straight but for slightly spread arms: within 1 cm of the height
        assert abs(v[:, 2].max() - v[:, 2].min() - height) < 0.01
    import trimesh

    def volume(build: float) -> float:
        body = rest_body(BodyShape(build=build))
        return trimesh.Trimesh(body.vertices, body.faces, process=False).volume

    # limbs and torso thicken with the build (volume ~ build², less the head, which does not)
    assert 1.8 < volume(1.3) / volume(0.8) < (1.3 / 0.8) ** 2
    base, wide = rest_body(BodyShape()), rest_body(BodyShape(build=1.3))
    skull = base.segment == base.segments.index("head")
    moved = np.linalg.norm(wide.vertices[skull] - base.vertices[skull], axis=1)
    assert np.median(moved) < 1e-4 and moved.max() < 0.006  # only where the jaw meets the neck


# ------------------------------------------------------------------ one person, rendered

W, H = 192, 256


def _person(params: PersonParams, *, yaw: float = 180.0, gaze_target=None, instance_id: int = 1):
    """A person at the origin; yaw 180 faces -x, toward a camera on the -x axis."""
    placed = build_person(
        params,
        np.random.default_rng(1),
        xy=(0.0, 0.0),
        yaw=yaw,
        ground_z=0.0,
        gaze_target=gaze_target,
    )
    mats = tuple(Material(color=(0.2 + 0.1 * k % 0.8, 0.5, 0.6)) for k in range(len(REGIONS)))
    from synthcv.sampler import _euler_quat

    obj = SceneObject(
        instance_id,
        "person",
        1,
        placed.mesh,
        placed.position,
        _euler_quat(0, 0, placed.yaw),
        mats[0],
        mass=0.0,
        region_materials=mats,
        person=placed.rig,
    )
    return obj, placed


def _camera(eye, target, fov=35.0) -> Camera:
    return Camera(
        W, H, Camera.intrinsics_from_fov(W, H, fov), Camera.look_at(np.array(eye), np.array(target))
    )


def _render(objects, camera):
    from synthcv.render.tiny import TinyRenderer

    scene = Scene(0, 0, objects, camera, Sun((0.3, -0.4, 0.85)), 0.4, Ground(), (0.1, 0.1, 0.1))
    r = TinyRenderer()
    try:
        result = r.render(scene)
    finally:
        r.close()
    return scene, result, compute_labels(scene, result)


FRONT = ((-4.0, 0.0, 1.0), (0.0, 0.0, 0.95))


def test_keypoints_are_the_projected_joints_and_left_is_on_the_image_right():
    obj, placed = _person(PersonParams(pose="standing", height=1.75, gaze="ahead"))
    cam = _camera(*FRONT)
    _, _, labels = _render([obj], cam)
    o = labels.objects[0]
    kps = np.array(o["keypoints"]).reshape(-1, 3)
    names = o["keypoint_names"]
    assert names == list(COCO_KEYPOINTS)
    rot = obj.object_to_world()
    for name, joint in zip(placed.rig.joint_names, placed.rig.joints, strict=True):
        if name not in names:
            continue
        world = rot[:3, :3] @ joint + rot[:3, 3]
        uv, _ = cam.project(world[None])
        assert np.abs(kps[names.index(name), :2] - (uv[0] + 0.5)).max() < 0.5
    at = {n: kps[i] for i, n in enumerate(names)}
    for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle", "eye", "ear"):
        assert at[f"left_{part}"][0] > at[f"right_{part}"][0], part
        assert at[f"left_{part}"][2] == 2 and at[f"right_{part}"][2] == 2, part
    assert at["nose"][1] < at["left_shoulder"][1] < at["left_hip"][1] < at["left_knee"][1]


def test_an_object_in_front_of_a_knee_hides_that_keypoint():
    obj, placed = _person(PersonParams(pose="standing", height=1.75, gaze="ahead"))
    cam = _camera(*FRONT)
    rot = obj.object_to_world()
    knee = rot[:3, :3] @ placed.rig.joints[JOINTS.index("right_knee")] + rot[:3, 3]
    box = Mesh(
        vertices=np.array(
            [[x, y, z] for x in (-0.05, 0.05) for y in (-0.06, 0.06) for z in (-0.06, 0.06)]
        ),
        faces=np.array(
            [
                [0, 2, 1],
                [1, 2, 3],
                [4, 5, 6],
                [5, 7, 6],
                [0, 1, 4],
                [1, 5, 4],
                [2, 6, 3],
                [3, 6, 7],
                [0, 4, 2],
                [2, 4, 6],
                [1, 3, 5],
                [3, 7, 5],
            ],
            dtype=np.int32,
        ),
        source="box",
    )
    blocker = SceneObject(
        2, "box", 2, box, knee + np.array([-0.4, 0.0, 0.0]), np.array([0, 0, 0, 1.0]), Material()
    )
    _, _, labels = _render([obj, blocker], cam)
    kps = np.array(labels.objects[0]["keypoints"]).reshape(-1, 3)
    v = dict(zip(COCO_KEYPOINTS, kps[:, 2], strict=True))
    assert v["right_knee"] == 1
    assert v["left_knee"] == 2 and v["right_ankle"] == 2 and v["right_hip"] == 2


def test_a_joint_behind_the_body_is_not_visible():
    """Seen from the person's right side, the left shoulder is behind the chest."""
    obj, _ = _person(PersonParams(pose="standing", height=1.75, gaze="ahead"), yaw=-90.0)
    _, _, labels = _render([obj], _camera(*FRONT))
    kps = np.array(labels.objects[0]["keypoints"]).reshape(-1, 3)
    v = dict(zip(COCO_KEYPOINTS, kps[:, 2], strict=True))
    # yaw -90: facing -y, the right side (forward × up = -x) toward the camera on -x
    assert v["right_shoulder"] == 2 and v["left_shoulder"] == 1
    assert v["right_ear"] == 2 and v["left_ear"] == 1


def test_parts_tile_the_visible_mask_and_sit_where_they_belong():
    obj, _ = _person(PersonParams(pose="t_pose", height=1.75, gaze="ahead"))
    _, result, labels = _render([obj], _camera(*FRONT))
    parts = labels.parts
    assert parts is not None and parts.dtype == np.uint8
    assert np.array_equal(parts > 0, result.instance == 1)
    ys = {name: np.nonzero(parts == i)[0] for i, name in enumerate(PARTS) if i}
    xs = {name: np.nonzero(parts == i)[1] for i, name in enumerate(PARTS) if i}
    assert all(len(v) for v in ys.values()), [k for k, v in ys.items() if not len(v)]
    assert (
        ys["head"].mean()
        < ys["torso"].mean()
        < ys["left_upper_leg"].mean()
        < ys["left_foot"].mean()
    )
    # arms out (t-pose) facing the camera: the left hand is at the image's right
    assert xs["left_hand"].mean() > xs["torso"].mean() > xs["right_hand"].mean()


@pytest.mark.parametrize(
    "yaw,pitch,roll", [(30.0, 0.0, 0.0), (0.0, 20.0, 0.0), (-25.0, -15.0, 10.0)]
)
def test_head_pose_of_a_known_turn(yaw, pitch, roll):
    params = PersonParams(
        pose="t_pose", height=1.75, gaze="ahead", head_yaw=yaw, head_pitch=pitch, head_roll=roll
    )
    obj, placed = _person(params)
    neck_height = (obj.object_to_world() @ np.append(placed.rig.head[:3, 3], 1))[2]
    cam = _camera((-3.0, 0.0, neck_height), (0.0, 0.0, neck_height))
    _, _, labels = _render([obj], cam)
    o = labels.objects[0]
    # a straight body facing a level camera: the head pose is the turn on the neck
    got = (o["head_yaw"], o["head_pitch"], o["head_roll"])
    assert np.abs(np.array(got) - np.array([yaw, pitch, roll])).max() < 1.0


def test_head_pose_round_trips():
    rng = np.random.default_rng(3)
    for _ in range(50):
        angles = (rng.uniform(-80, 80), rng.uniform(-60, 60), rng.uniform(-45, 45))
        back = headgeo.head_pose_cam(headgeo.head_rotation_cam(*angles))
        assert np.allclose(back, angles, atol=1e-6)


def test_gaze_points_at_the_camera():
    cam = _camera((-2.5, 0.6, 1.7), (0.0, 0.0, 1.5))
    obj, placed = _person(
        PersonParams(pose="standing", height=1.7, gaze="camera", head_yaw=10.0),
        gaze_target=cam.position,
    )
    _, _, labels = _render([obj], cam)
    o = labels.objects[0]
    assert o["gaze_clamped"] is False
    to_cam = cam.world_to_camera[:3, :3] @ obj.object_to_world()[:3, :3]
    t_cam = cam.world_to_camera[:3, :3] @ obj.position + cam.world_to_camera[:3, 3]
    for k, key in enumerate(("gaze_right_cam", "gaze_left_cam")):
        eye = to_cam @ placed.rig.eye_centres[k] + t_cam
        want = -eye / np.linalg.norm(eye)  # toward the camera centre
        got = np.array(o[key])
        assert math.degrees(math.acos(np.clip(got @ want, -1, 1))) < 1.0


def test_gaze_beyond_the_eyes_range_is_clamped_and_said():
    cam = _camera((-2.5, 0.0, 1.7), (0.0, 0.0, 1.5))
    target = np.array([0.0, 3.0, 1.6])  # 90° to the person's side
    obj, _placed = _person(PersonParams(pose="standing", gaze="camera"), gaze_target=target)
    _, _, labels = _render([obj], cam)
    assert labels.objects[0]["gaze_clamped"] is True
    assert labels.objects[0]["gaze_point"] is None


def test_shut_eyelids_hide_the_iris():
    for opening, visible in ((1.0, True), (0.0, False)):
        rot, _, _ = headgeo.eye_rotation(np.array([1.0, 0.0, 0.0]))
        _, _, regions = headgeo.eyeball("right", rot, opening)
        assert ("iris" in regions) is visible


# ------------------------------------------------------------------ people in scenes


def _people_spec(tmp_path: Path, objects: int = 2, **people) -> Path:
    import yaml

    spec = {
        "count": 6,
        "seed": 3,
        "image": {"width": 160, "height": 120},
        "renderer": {"backend": "tiny"},
        "camera": {
            "distance": {"uniform": [5, 6]},
            "elevation": {"uniform": [5, 15]},
            "azimuth": {"uniform": [-20, 20]},
            "look_at": [0, 0, 0.9],
            "fov": 50,
        },
        "objects": {
            "count": objects,
            "classes": {"box": {"asset": {"primitive": "cube", "size": 0.3}}},
            "pose": {"x": {"uniform": [-1.5, 1.5]}, "y": {"uniform": [-1.5, 1.5]}},
        },
        "people": {
            "count": 3,
            "pose": {"choice": ["walk", "run", "standing", "sitting", "dance_a", "jump"]},
            "placement": {"x": {"uniform": [-1.5, 1.5]}, "y": {"uniform": [-1.5, 1.5]}},
            **people,
        },
    }
    path = tmp_path / "people.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_people_stand_on_the_ground_apart_and_are_deterministic(tmp_path):
    from synthcv.sampler import _footprint, _gap, sample_scene

    spec = load_spec(_people_spec(tmp_path))
    for i in range(spec.count):
        scene = sample_scene(spec, i)
        people = [o for o in scene.objects if o.person is not None]
        assert people, "every scene places someone"
        for o in people:
            world = o.mesh.vertices @ o.object_to_world()[:3, :3].T + o.position
            assert abs(world[:, 2].min() - spec.ground.height) < 0.01
        feet = [_footprint(o) for o in scene.objects]
        for a in range(len(feet)):
            for b in range(a + 1, len(feet)):
                if scene.objects[a].person is not None or scene.objects[b].person is not None:
                    assert _gap(feet[a], feet[b]) >= spec.people.placement.gap - 1e-9
        again = sample_scene(spec, i)
        for x, y in zip(scene.objects, again.objects, strict=True):
            assert np.array_equal(x.mesh.vertices, y.mesh.vertices)
            assert x.attributes == y.attributes


def test_a_spec_without_people_keeps_its_samples():
    """Adding people: (and its random stream) changed nothing for specs without it."""
    from synthcv.sampler import sample_scene

    spec = load_spec("examples/tabletop.yaml")
    assert spec.people is None and "people" not in spec.resolved()
    scene = sample_scene(spec, 0)
    assert all(o.person is None for o in scene.objects)
    assert spec.class_names == list(spec.objects.classes)


def test_generate_writes_parts_and_person_labels_and_coco_reads_them(tmp_path):
    from pycocotools.coco import COCO

    from synthcv import generate, open_dataset
    from synthcv.tools.coco import export_coco

    out = tmp_path / "ds"
    generate(_people_spec(tmp_path), out, workers=1)
    ds = open_dataset(out)
    assert ds.manifest["keypoints"]["person"] == list(COCO_KEYPOINTS)
    assert ds.manifest["parts"] == list(PARTS)
    item = ds[0]
    person_ids = [o["instance_id"] for o in ds.objects_of(0) if o["class_name"] == "person"]
    assert np.array_equal(item["parts"] > 0, np.isin(item["instance"], person_ids))
    person = next(o for o in ds.objects_of(0) if o["class_name"] == "person")
    for key in (
        "people.pose",
        "people.skin_tone",
        "people.height",
        "head_yaw",
        "gaze_cam",
        "joints_cam",
    ):
        assert person[key] is not None, key
    assert len(person["joints_cam"]) == 3 * len(JOINTS)
    coco_path = tmp_path / "coco.json"
    export_coco(out, coco_path)
    coco = COCO(str(coco_path))
    cat = next(c for c in coco.loadCats(coco.getCatIds()) if c["name"] == "person")
    assert cat["keypoints"] == list(COCO_KEYPOINTS)
    assert [tuple(p) for p in cat["skeleton"]] == list(COCO_SKELETON)
    anns = coco.loadAnns(coco.getAnnIds(catIds=[cat["id"]]))
    assert anns and all(len(a["keypoints"]) == 51 for a in anns)
    assert any(a["num_keypoints"] > 10 for a in anns)


def test_gaze_sweep_moves_only_the_eyes(tmp_path):
    import yaml

    from synthcv.sampler import sample_scene

    path = _people_spec(tmp_path, count=1, gaze={"target": "ahead"})
    raw = yaml.safe_load(path.read_text())
    raw["sweep"] = {"field": "people.gaze.yaw", "values": [-20, 20]}
    path.write_text(yaml.safe_dump(raw))
    spec = load_spec(path)
    a, b = sample_scene(spec, 0), sample_scene(spec, spec.count)
    pa = next(o for o in a.objects if o.person is not None)
    pb = next(o for o in b.objects if o.person is not None)
    assert np.array_equal(pa.position, pb.position)
    assert np.array_equal(pa.person.joints, pb.person.joints)
    assert not np.allclose(pa.person.gaze, pb.person.gaze)
    assert pa.attributes["people.gaze.yaw"] == -20 and pb.attributes["people.gaze.yaw"] == 20


def test_spec_errors_name_the_field(tmp_path):
    with pytest.raises(SpecError, match=r"people\.pose.*walkk"):
        load_spec(_people_spec(tmp_path, pose="walkk"))
    with pytest.raises(SpecError, match=r"people\.skin_tone"):
        load_spec(_people_spec(tmp_path, skin_tone=11))
    import yaml

    path = _people_spec(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["objects"]["classes"]["person"] = {"asset": {"primitive": "cube"}}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match=r"objects\.classes\.person.*people"):
        load_spec(path)


@pytest.mark.cycles
def test_tiny_and_cycles_render_the_same_people(tmp_path):
    pytest.importorskip("bpy")
    from synthcv.pipeline.sample import render_sample
    from synthcv.render import get_backend
    from synthcv.render.cycles import CyclesRenderer
    from synthcv.render.tiny import TinyRenderer

    spec = load_spec(_people_spec(tmp_path))
    tiny, cycles = TinyRenderer(), CyclesRenderer(samples=1)
    try:
        for i in range(2):
            a = render_sample(spec, i, tiny)
            b = render_sample(spec, i, cycles)
            for o in a.scene.objects:
                if o.person is None:
                    continue
                ma = a.result.instance == o.instance_id
                mb = b.result.instance == o.instance_id
                if ma.sum() < 60:
                    continue
                assert (ma & mb).sum() / (ma | mb).sum() >= 0.95
            assert np.array_equal(
                a.labels.parts > 0,
                np.isin(a.result.instance, [o.instance_id for o in a.scene.objects if o.person]),
            )
    finally:
        tiny.close()
        cycles.close()
    assert get_backend("cycles").name == "cycles"


def test_blend_turns_every_joint_part_of_the_way():
    from synthcv.people.person import blend

    a, b = pose_named("standing"), pose_named("t_pose")
    half = blend(a, b, 0.5)
    from synthcv.people.skeleton import INDEX

    def abduction(pose):  # angle of the right upper arm from straight down, degrees
        world = forward_kinematics(pose, joint_offsets())
        arm = world[INDEX["right_elbow"], :3, 3] - world[INDEX["right_shoulder"], :3, 3]
        return math.degrees(math.acos(-arm[2] / np.linalg.norm(arm)))

    assert abs(abduction(half) - (abduction(a) + abduction(b)) / 2) < 1.0
    assert np.allclose(blend(a, b, 0.0).local, a.local)
    assert np.allclose(blend(a, b, 1.0).local, b.local)


def test_gaze_at_a_point_in_view_labels_that_point(tmp_path):
    from synthcv.pipeline.sample import render_sample
    from synthcv.render.tiny import TinyRenderer

    # a table-top point between the person and the camera: within the eyes' range, in view
    point = {"x": {"uniform": [1.5, 3.0]}, "y": {"uniform": [-0.6, 0.6]}, "z": 0.8}
    spec = load_spec(
        _people_spec(
            tmp_path,
            objects=0,
            count=1,
            pose="standing",
            gaze={"target": "point", "point": point},
            placement={"x": 0.0, "y": 0.0, "facing": 0.0},
        )
    )
    r = TinyRenderer()
    seen = 0
    try:
        for i in range(spec.count):
            rs = render_sample(spec, i, r)
            obj = next(o for o in rs.scene.objects if o.person is not None)
            row = next(o for o in rs.labels.objects if o["instance_id"] == obj.instance_id)
            target = np.array([row[f"people.gaze.point.{k}"] for k in "xyz"])
            assert np.allclose(target, obj.person.gaze_target)
            if row["gaze_clamped"]:
                continue
            cam = rs.scene.camera
            uv, _ = cam.project(target[None])
            assert row["gaze_point"] is not None
            assert np.abs(np.array(row["gaze_point"]) - (uv[0] + 0.5)).max() < 0.5
            to_cam = cam.world_to_camera[:3, :3]
            eye = obj.object_to_world()[:3, :3] @ obj.person.eye_centres[0] + obj.position
            want = to_cam @ (target - eye)
            want /= np.linalg.norm(want)
            got = np.array(row["gaze_right_cam"])
            assert math.degrees(math.acos(np.clip(got @ want, -1, 1))) < 1.0
            seen += 1
    finally:
        r.close()
    assert seen >= 2
    with pytest.raises(SpecError, match=r"people\.gaze\.point"):
        load_spec(_people_spec(tmp_path, gaze={"target": "point"}))


def test_person_asset_kind_is_a_rigid_body_with_coco_keypoints(tmp_path):
    """``{person: pose}`` in objects.classes: a mannequin that physics drops, with 17 keypoints."""
    from synthcv.pipeline.sample import render_sample
    from synthcv.render.tiny import TinyRenderer

    spec = load_spec(
        {
            "count": 2,
            "image": {"width": 128, "height": 128},
            "renderer": {"backend": "tiny"},
            "camera": {"distance": 4.0, "elevation": 20, "look_at": [0, 0, 0.5], "fov": 50},
            "objects": {
                "count": 1,
                "classes": {"mannequin": {"asset": {"person": "t_pose", "height": 1.7}}},
                "pose": {"rotation": "random", "drop_height": 0.3},
            },
        }
    )
    r = TinyRenderer()
    try:
        rs = render_sample(spec, 0, r)
    finally:
        r.close()
    obj = rs.scene.objects[0]
    assert obj.person is None and obj.mesh.source == "person:t_pose"
    assert abs(obj.mesh.extents[2] - 1.7) < 0.01  # built standing: z is its height
    row = rs.labels.objects[0]
    assert row["keypoint_names"] == list(COCO_KEYPOINTS)
    assert row["person.pose"] == "t_pose"
    world = obj.mesh.vertices @ obj.object_to_world()[:3, :3].T + obj.position
    assert world[:, 2].min() > -0.02  # dropped onto the ground, not through it
    with pytest.raises(SpecError, match="pose names"):
        load_spec({"objects": {"classes": {"m": {"asset": {"person": "moonwalk"}}}}})


def test_audit_of_a_person_model_scores_people_only_and_slices_by_person_factors(tmp_path):
    """A dataset with people and boxes, a model that knows only 'person': the boxes are left
    out (and said so), and per-person factors slice recall (the bias audit)."""
    pytest.importorskip("torch")
    from synthcv import generate
    from synthcv.tasks.audit import audit, audit_markdown
    from synthcv.tasks.detector import DenseDetector
    from synthcv.tasks.detector_io import save_checkpoint

    generate(_people_spec(tmp_path), tmp_path / "ds", progress=False)
    model = DenseDetector(1, ("detection",), categories=["person"], width=8, input_size=64)
    save_checkpoint(model, tmp_path / "model.pt")
    result = audit(
        tmp_path / "model.pt", tmp_path / "ds", factors=["people.skin_tone", "people.pose"]
    )
    assert result["ignored_classes"] == ["box"]
    assert "Not scored (the model has no such class): box" in audit_markdown(result)
    poses = {r["slice"] for r in result["slices"] if r["factor"] == "people.pose"}
    assert poses and poses <= {"walk", "run", "standing", "sitting", "dance_a", "jump"}
    assert any(r["factor"] == "people.skin_tone" for r in result["slices"])
