"""Core generator: geometry truth of labels, determinism, resume, sweeps, spec errors."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from shapely.geometry import MultiPoint

from synthcv.pipeline import generate, render_sample
from synthcv.render.tiny import TinyRenderer
from synthcv.scene import Camera
from synthcv.spec import SpecError, load_spec

REPO = Path(__file__).resolve().parents[1]


def _rz(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def cube_spec(**over) -> dict:
    spec = {
        "count": 1,
        "image": {"width": 128, "height": 96},
        "camera": {
            "distance": 1.2,
            "elevation": 35,
            "azimuth": 20,
            "fov": 50,
            "look_at": [0, 0, 0.1],
        },
        "lights": {"ambient": 0.5},
        "objects": {
            "count": 1,
            "pose": {"x": 0.0, "y": 0.0, "z": 0.0, "rotation": "euler", "yaw": 30},
            "classes": {"cube": {"asset": {"primitive": "cube", "size": 0.2}}},
        },
        "physics": {"enabled": False},
    }
    spec.update(over)
    return spec


def analytic_camera(w=128, h=96, fov=50.0, dist=1.2, elev=35.0, azim=20.0, target=(0, 0, 0.1)):
    e, a = math.radians(elev), math.radians(azim)
    t = np.array(target, dtype=float)
    eye = t + dist * np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
    f = 0.5 * h / math.tan(math.radians(fov) / 2)
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1]])
    z = (t - eye) / np.linalg.norm(t - eye)
    x = np.cross(z, [0, 0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    return K, R, -R @ eye, eye


def test_cube_labels_match_analytic_projection(tiny):
    spec = load_spec(cube_spec())
    rs = render_sample(spec, 0, tiny)
    K, R, t, eye = analytic_camera()
    np.testing.assert_allclose(rs.scene.camera.K, K, atol=1e-9)
    # the cube: edge 0.2, resting on z=0, rotated 30° about z
    half = 0.1
    corners_obj = np.array(
        [
            [(1 if k & 1 else -1) * half, (1 if k & 2 else -1) * half, (1 if k & 4 else -1) * half]
            for k in range(8)
        ]
    )
    centre = np.array([0, 0, 0.1])
    world = corners_obj @ _rz(30).T + centre
    cam = world @ R.T + t
    uv = (cam @ K.T)[:, :2] / cam[:, 2:3]
    obj = rs.labels.objects[0]
    assert obj["status"] == "visible" and obj["visibility"] == pytest.approx(1.0, abs=1e-9)
    kp = np.array(obj["keypoints"]).reshape(-1, 3)
    assert obj["keypoint_names"][:8] == [f"corner_{k}" for k in range(8)]
    # COCO keypoints use pixel-corner coordinates: x = u + 0.5
    np.testing.assert_allclose(kp[:8, :2], uv + 0.5, atol=1.0)
    c_cam = R @ centre + t
    c_uv = (K @ c_cam)[:2] / c_cam[2]
    np.testing.assert_allclose(kp[8, :2], c_uv + 0.5, atol=1.0)
    # the bottom corners facing away from the camera are hidden; the top ones are visible
    nearest_top = int(np.argmin(np.where(world[:, 2] > 0.15, cam[:, 2], np.inf)))
    farthest_bottom = int(np.argmax(np.where(world[:, 2] < 0.05, cam[:, 2], -np.inf)))
    assert kp[nearest_top, 2] == 2 and kp[farthest_bottom, 2] == 1
    # silhouette: convex hull of the projected corners
    hull = MultiPoint([tuple(p) for p in uv]).convex_hull
    area = int((rs.result.instance == 1).sum())
    assert abs(area - hull.area) / hull.area < 0.02
    x0, y0, x1, y1 = hull.bounds
    bx, by, bw, bh = obj["bbox"]
    np.testing.assert_allclose(
        [bx, by, bx + bw, by + bh], [x0 + 0.5, y0 + 0.5, x1 + 0.5, y1 + 0.5], atol=1.0
    )
    # depth at the cube centre's pixel equals the analytic ray–box hit, within 1 mm
    u, v = int(np.rint(c_uv[0])), int(np.rint(c_uv[1]))
    ray = R.T @ np.linalg.solve(K, [u, v, 1.0])
    o_local, d_local = _rz(30).T @ (eye - centre), _rz(30).T @ ray
    with np.errstate(divide="ignore"):
        t1, t2 = (-half - o_local) / d_local, (half - o_local) / d_local
    t_hit = np.max(np.minimum(t1, t2))
    z_true = (R @ (eye + t_hit * ray) + t)[2]
    assert abs(rs.result.depth[v, u] - z_true) < 1e-3
    # 6D pose and 3D box in the camera frame
    np.testing.assert_allclose(obj["position_cam"], c_cam, atol=1e-9)
    np.testing.assert_allclose(np.array(obj["box3d_cam"]).reshape(8, 3), cam, atol=1e-9)
    assert rs.labels.semantic[rs.result.instance == 1].min() == 1


def test_occlusion_hidden_and_outside(tiny):
    spec = load_spec(
        cube_spec(
            objects={
                "count": 1,
                "pose": {"x": 0, "y": 0, "z": 0, "rotation": "upright", "yaw": 0},
                "classes": {"cube": {"asset": {"primitive": "cube", "size": 0.2}}},
            }
        )
    )
    rs = render_sample(spec, 0, tiny)
    scene = rs.scene
    from dataclasses import replace

    from synthcv.labels import compute_labels

    cube = scene.objects[0]
    cam_pos = scene.camera.position
    toward = (cam_pos - cube.position) / np.linalg.norm(cam_pos - cube.position)
    right = scene.camera.world_to_camera[0, :3]
    small = replace(
        cube,
        instance_id=2,  # behind and to the side: partly covered
        position=cube.position - 0.3 * toward + 0.12 * right,
    )
    hidden = replace(
        cube, instance_id=3, position=cube.position - 0.6 * toward, mesh=_scaled(cube.mesh, 0.3)
    )  # far behind, fully covered
    outside = replace(cube, instance_id=4, position=cube.position + np.array([0, 0, 5.0]))
    scene2 = scene.with_objects([cube, small, hidden, outside])
    res = tiny.render(scene2)
    objs = {o["instance_id"]: o for o in compute_labels(scene2, res).objects}
    assert objs[1]["visibility"] == pytest.approx(1.0)
    assert 0 < objs[2]["visibility"] < 1 and objs[2]["status"] == "visible"
    assert (
        objs[2]["bbox_amodal"][2] * objs[2]["bbox_amodal"][3]
        >= objs[2]["bbox"][2] * objs[2]["bbox"][3]
    )
    assert objs[3]["status"] == "hidden" and objs[3]["visible_pixels"] == 0
    assert objs[3]["unoccluded_pixels"] > 0 and objs[3]["bbox"] is None
    assert objs[4]["status"] == "outside" and objs[4]["unoccluded_pixels"] == 0
    assert all(v == 0 for v in objs[4]["keypoints"][2::3])


def _scaled(mesh, s):
    from synthcv.assets import scale_mesh

    return scale_mesh(mesh, s)


def test_depth_derived_normals_of_ground_plane(tiny):
    spec = load_spec(
        cube_spec(objects={"count": 0, "classes": {"cube": {"asset": {"primitive": "cube"}}}})
    )
    rs = render_sample(spec, 0, tiny)
    n = rs.labels.normals
    up_cam = rs.scene.camera.world_to_camera[:3, :3] @ np.array([0, 0, 1.0])
    inner = rs.result.depth[2:-2, 2:-2] > 0
    ang = np.degrees(np.arccos(np.clip(n[2:-2, 2:-2][inner] @ up_cam, -1, 1)))
    assert inner.mean() > 0.9 and np.percentile(ang, 99) < 2.0
    np.testing.assert_allclose(np.linalg.norm(n[2:-2, 2:-2][inner], axis=1), 1, atol=1e-5)


SMALL = {
    "count": 6,
    "seed": 5,
    "image": {"width": 32, "height": 32},
    "camera": {
        "distance": 0.8,
        "elevation": {"uniform": [30, 60]},
        "azimuth": {"uniform": [0, 360]},
    },
    "objects": {
        "count": {"randint": [1, 3]},
        "classes": {
            "cube": {"asset": {"primitive": "cube", "size": 0.08}},
            "ball": {"asset": {"primitive": "sphere", "radius": 0.04}},
        },
    },
    "physics": {"steps": 120},
    "outputs": {"shard_size": 2},
}


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_spec_gives_identical_files_any_worker_count(tmp_path):
    a = generate(SMALL, tmp_path / "a", workers=1, progress=False)
    generate(SMALL, tmp_path / "b", workers=2, progress=False)
    ta, tb = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    assert ta.keys() == tb.keys() and ta == tb
    assert a["count"] == 6 and a["num_shards"] == 3
    samples = pq.read_table(tmp_path / "a" / "samples.parquet").to_pylist()
    assert [s["sample_index"] for s in samples] == list(range(6))
    # re-running on a complete dataset is a no-op that returns the same manifest
    assert generate(SMALL, tmp_path / "a", progress=False) == a


def test_physics_settles_without_interpenetration(tmp_path):
    spec = load_spec(
        {
            **SMALL,
            "count": 3,
            "objects": {**SMALL["objects"], "count": 4},
            "physics": {"steps": 720},
        }
    )
    r = TinyRenderer()
    for i in range(3):
        rs = render_sample(spec, i, r)
        assert rs.physics["physics.max_penetration"] < 0.005
        for o in rs.scene.objects:  # resting on the ground or on each other, never below it
            lowest = (o.mesh.vertices @ o.object_to_world()[:3, :3].T + o.position)[:, 2].min()
            assert lowest > -0.005
    r.close()


def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "SYNTHCV_TRACKING": "0"}
    return subprocess.run(
        [sys.executable, "-m", "synthcv", *args], capture_output=True, text=True, env=env, **kw
    )


def test_kill_9_then_resume_is_byte_identical(tmp_path):
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps({**SMALL, "count": 24, "image": {"width": 48, "height": 48}}))
    ref = tmp_path / "ref"
    assert _cli("generate", str(spec_path), "--out", str(ref)).returncode == 0
    out = tmp_path / "out"
    env = {**os.environ, "SYNTHCV_TRACKING": "0"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "synthcv",
            "generate",
            str(spec_path),
            "--out",
            str(out),
            "--workers",
            "2",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "shards" / "shard-000001").exists():
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists()
    res = _cli("generate", str(spec_path), "--out", str(out), "--workers", "1")
    assert res.returncode == 0, res.stderr
    assert _tree_bytes(ref) == {
        k: v for k, v in _tree_bytes(out).items() if not k.startswith("shards/.tmp")
    }


def test_sweep_changes_only_the_swept_field(tmp_path):
    spec = {
        **SMALL,
        "count": 2,
        "camera": {**SMALL["camera"], "elevation": 40},
        "sweep": {"field": "camera.elevation", "linspace": [20, 70, 3]},
    }
    generate(spec, tmp_path / "s", progress=False)
    rows = pq.read_table(tmp_path / "s" / "samples.parquet").to_pylist()
    assert len(rows) == 6
    varying = {
        "camera.elevation",
        "sweep.step",
        "sweep.value",
        "sample_index",
        "shard",
        "world_to_camera",
        "rgb",
        "depth",
        "instance",
        "semantic",
        "normals",
        "num_visible",
    }
    for base in range(2):
        steps = [r for r in rows if r["sample_index"] % 2 == base]
        assert [r["camera.elevation"] for r in steps] == [20.0, 45.0, 70.0]
        for r in steps[1:]:
            same = {k: v for k, v in r.items() if k not in varying}
            assert same == {k: v for k, v in steps[0].items() if k not in varying}
    objs = pq.read_table(tmp_path / "s" / "objects.parquet").to_pylist()
    poses = {}
    for o in objs:
        poses.setdefault((o["sample_index"] % 2, o["instance_id"]), set()).add(
            (tuple(o["position_world"]), o["class_name"], o["scale"])
        )
    assert all(len(v) == 1 for v in poses.values())


def test_bad_spec_lists_every_problem_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "count: -3\n"
        "camera: {elevaton: 30, fov: {uniform: [60]}}\n"
        "objects:\n  classes:\n    cube: {asset: {primitive: cube}, scale: big}\n"
    )
    out = tmp_path / "never"
    res = _cli("generate", str(bad), "--out", str(out))
    assert res.returncode == 2
    err = " ".join(res.stderr.split())
    assert "count: got -3, expected greater than or equal to 1" in err
    assert "camera.elevaton: unknown key 'elevaton'" in err and "did you mean 'elevation'" in err
    assert "camera.fov: got" in err and "two numbers" in err
    assert "objects.classes.cube.scale: got 'big'" in err
    assert not out.exists()


def test_spec_errors_for_yaml_syntax_and_sweep_field():
    with pytest.raises(SpecError, match=r"YAML syntax error at line \d+, column \d+"):
        load_spec("count: 1\nobjects: {classes: [\n")
    with pytest.raises(SpecError, match=r"sweep\.field: got 'camera\.nope'"):
        load_spec(
            {
                "objects": {"classes": {"c": {"asset": {"primitive": "cube"}}}},
                "sweep": {"field": "camera.nope", "values": [1]},
            }
        )
    with pytest.raises(SpecError, match="exactly one of primitive, pybullet, mesh, glyph"):
        load_spec({"objects": {"classes": {"c": {"asset": {"primitive": "cube", "glyph": "7"}}}}})


def test_camera_look_at_is_opencv():
    cam = Camera(
        64, 48, Camera.intrinsics_from_fov(64, 48, 60), Camera.look_at([0, -2, 0], [0, 0, 0])
    )
    uv, z = cam.project(np.array([[0, 0, 0], [0.1, 0, 0], [0, 0, 0.1]]))
    assert z[0] == pytest.approx(2.0)
    np.testing.assert_allclose(uv[0], [31.5, 23.5])
    assert uv[1, 0] > uv[0, 0]  # +x world is to the right
    assert uv[2, 1] < uv[0, 1]  # +z world (up) is up in the image (smaller v)


def test_import_synthcv_is_light():
    code = (
        "import sys, synthcv; synthcv.load_spec('examples/digits.yaml'); "
        "import synthcv.sampler, synthcv.pipeline; "
        "print(sorted(m for m in ('torch', 'bpy', 'mlflow', 'ray', 'pybullet') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    assert out.strip() == "[]"


def test_missing_font_mesh_and_texture_fail_before_writing(tmp_path):
    spec = {
        "objects": {
            "classes": {
                "seven": {
                    "asset": {"glyph": "7", "font": {"choice": ["DejaVuSans", "NoSuchFont"]}}
                },
                "mug": {"asset": {"mesh": str(tmp_path / "missing.obj")}},
            }
        },
        "ground": {"texture": {"choice": ["checker_blue", "chekcer_grid"]}},
    }
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(spec))
    out = tmp_path / "never"
    res = _cli("generate", str(bad), "--out", str(out))
    assert res.returncode == 2, res.stderr
    err = " ".join(res.stderr.split())
    assert "objects.classes.seven.asset.font: got 'NoSuchFont'" in err
    assert "objects.classes.mug.asset.mesh:" in err and "missing.obj" in err
    assert "ground.texture: got 'chekcer_grid'" in err
    assert not out.exists()
