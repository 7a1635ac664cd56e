"""Sequences (issue #23): clips with tracks, per-frame labels and exact optical flow."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from synthcv.flow import OCCLUDED, VISIBLE
from synthcv.format import open_dataset
from synthcv.format.codecs import read_flow, write_flow
from synthcv.pipeline import generate, render_sample
from synthcv.pipeline.clip import render_clip
from synthcv.render.tiny import TinyRenderer
from synthcv.sampler import sample_scene
from synthcv.spec import Spec


def top_down_spec(sequence: dict, **over) -> dict:
    """A flat box under a camera looking straight down: its top face is a plane at constant
    depth, so its image motion has a closed form."""
    spec = {
        "count": 2,
        "image": {"width": 128, "height": 96},
        "camera": {"distance": 0.5, "elevation": 90, "azimuth": 0, "fov": 50},
        "lights": {"ambient": 0.6, "sun": {"elevation": 90}},
        "objects": {
            "count": 1,
            "pose": {"x": 0.0, "y": 0.0, "z": 0.0, "rotation": "euler", "yaw": 20},
            "classes": {"box": {"asset": {"primitive": "cube", "dims": [0.2, 0.14, 0.02]}}},
        },
        "physics": {"enabled": False},
        "sequence": sequence,
    }
    spec.update(over)
    return spec


def _top_plane_hits(camera, z_plane: float) -> np.ndarray:
    """World points (H, W, 3) where each pixel's ray meets the plane z = z_plane."""
    h, w = camera.height, camera.width
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    k = camera.K
    rays = np.stack([(xs - k[0, 2]) / k[0, 0], (ys - k[1, 2]) / k[1, 1], np.ones_like(xs)], -1)
    c2w = camera.camera_to_world
    d = rays @ c2w[:3, :3].T
    eye = c2w[:3, 3]
    s = (z_plane - eye[2]) / d[..., 2]
    return eye + d * s[..., None]


def _analytic_flow(clip, motion) -> tuple[np.ndarray, np.ndarray]:
    """The top face's exact flow from frame 0 to 1: plane hits moved by ``motion`` and
    projected; and the mask of top-face pixels (visible, away from the edges)."""
    a, b = clip[0].sample, clip[1].sample
    obj = a.scene.objects[0]
    top = obj.position[2] + obj.mesh.extents[2] / 2
    hits = _top_plane_hits(a.scene.camera, top)
    moved = motion(hits, obj, b.scene.objects[0])
    uv, _ = b.scene.camera.project(moved.reshape(-1, 3))
    h, w = a.result.depth.shape
    ys, xs = np.mgrid[0:h, 0:w]
    expect = uv.reshape(h, w, 2) - np.stack([xs, ys], -1)
    from scipy.ndimage import binary_erosion

    face = binary_erosion(a.result.instance == obj.instance_id, iterations=2)
    return expect, face & (clip[0].flow_status == VISIBLE)


def test_flow_of_a_translating_object_is_the_analytic_flow(tiny):
    spec = Spec.model_validate(top_down_spec({"frames": 2, "fps": 10, "objects": {"linear": 0.3}}))
    clip = render_clip(spec, 0, tiny)
    v = sample_scene(spec, 0).motion.velocities[1][0]

    def move(p, a, b):
        return p + (b.position - a.position)

    np.testing.assert_allclose(
        clip[1].sample.scene.objects[0].position - clip[0].sample.scene.objects[0].position,
        v * 0.1,
        atol=1e-9,
    )
    expect, face = _analytic_flow(clip, move)
    assert face.sum() > 500
    err = np.abs(clip[0].flow[face] - expect[face]).max()
    assert err < 0.1, err
    assert np.abs(expect[face]).max() > 3  # it moved
    # frame 1 sampled where the flow points reproduces frame 0's pixels
    rgb0 = clip[0].sample.result.rgb.astype(float)
    rgb1 = clip[1].sample.result.rgb.astype(float)
    ys, xs = np.nonzero(face)
    tx = np.round(xs + clip[0].flow[ys, xs, 0]).astype(int)
    ty = np.round(ys + clip[0].flow[ys, xs, 1]).astype(int)
    assert np.abs(rgb1[ty, tx] - rgb0[ys, xs]).mean() < 2.0


def test_flow_of_a_rotating_object_is_the_analytic_flow(tiny):
    spec = Spec.model_validate(top_down_spec({"frames": 2, "fps": 8, "objects": {"angular": 120}}))
    clip = render_clip(spec, 0, tiny)

    def turn(p, a, b):
        ra, rb = a.object_to_world(), b.object_to_world()
        return (p - ra[:3, 3]) @ ra[:3, :3] @ rb[:3, :3].T + rb[:3, 3]

    expect, face = _analytic_flow(clip, turn)
    visible = face & np.isfinite(expect).all(-1)
    assert visible.sum() > 300
    assert np.abs(clip[0].flow[visible] - expect[visible]).max() < 0.1


def test_forward_and_backward_flow_agree_where_both_are_visible(tiny):
    spec = Spec.model_validate(
        top_down_spec(
            {
                "frames": 3,
                "fps": 12,
                "objects": {"linear": 0.25, "angular": 60},
                "camera": {"orbit": 20},
            }
        )
    )
    clip = render_clip(spec, 0, tiny)
    fwd, status = clip[0].flow, clip[0].flow_status
    back = clip[1].flow_back
    ys, xs = np.nonzero(status == VISIBLE)
    tx = np.round(xs + fwd[ys, xs, 0]).astype(int)
    ty = np.round(ys + fwd[ys, xs, 1]).astype(int)
    round_trip = fwd[ys, xs] + back[ty, tx]
    ok = np.isfinite(round_trip).all(-1)
    # the backward flow is read at the nearest pixel: within the flow's change over half a px
    assert np.median(np.abs(round_trip[ok])) < 0.05
    assert np.percentile(np.abs(round_trip[ok]), 99) < 0.5
    assert {VISIBLE} <= set(np.unique(status))
    assert clip[0].flow_back is None and clip[-1].flow is None


def test_occluded_and_out_of_view_points_are_marked(tiny):
    spec = Spec.model_validate(
        top_down_spec(
            {"frames": 2, "fps": 2, "objects": {"linear": 0.6}}, image={"width": 64, "height": 48}
        )
    )
    clip = render_clip(spec, 0, tiny)
    status = clip[0].flow_status
    inst = clip[0].sample.result.instance
    # where the box was, the ground it uncovers was hidden before; where it goes, the ground
    # it covers becomes hidden: some ground points are occluded in frame 1
    assert (status[inst == 0] == OCCLUDED).any()
    assert (status == VISIBLE).any() and (status[inst == 1] == VISIBLE).any()


def test_track_ids_are_stable_across_frames(tmp_path):
    spec = top_down_spec(
        {"frames": 4, "fps": 10, "start": "drop", "objects": {"linear": 0.1}},
        objects={
            "count": 3,
            "pose": {
                "x": {"uniform": [-0.2, 0.2]},
                "y": {"uniform": [-0.2, 0.2]},
                "rotation": "random",
                "drop_height": 0.05,
            },
            "classes": {
                "cube": {"asset": {"primitive": "cube", "size": 0.06}},
                "ball": {"asset": {"primitive": "sphere", "radius": 0.04}},
            },
        },
        physics={"enabled": True},
    )
    generate(spec, tmp_path / "clips", progress=False)
    ds = open_dataset(tmp_path / "clips")
    assert ds.clips == 2 and len(ds) == 8
    clip = ds.clip(1)
    assert clip["frame"] == [0, 1, 2, 3] and clip["rgb"].shape == (4, 96, 128, 3)
    assert clip["time"] == pytest.approx([0, 0.1, 0.2, 0.3])
    tracks = [{o["instance_id"]: o["class_name"] for o in objs} for objs in clip["objects"]]
    assert all(t == tracks[0] for t in tracks) and len(tracks[0]) == 3
    # objects fall: the drop moves them between frames
    z = [[o["position_world"][2] for o in objs] for objs in clip["objects"]]
    assert z[0] != z[-1]
    assert clip["flow"][0].shape == (96, 128, 2) and clip["flow"][-1] is None
    rows = pq.read_table(tmp_path / "clips" / "samples.parquet").to_pylist()
    assert [(r["clip"], r["frame"]) for r in rows][:5] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]
    assert len({r["sample_index"] for r in rows}) == 8


def test_a_one_frame_clip_is_the_single_frame_sample(tmp_path, tiny):
    single = top_down_spec({"frames": 1}, camera={"distance": 0.8, "elevation": 70, "fov": 50})
    plain = dict(single)
    plain.pop("sequence")
    a = render_sample(Spec.model_validate(plain), 1, tiny)
    [b] = render_clip(Spec.model_validate(single), 1, tiny)
    np.testing.assert_array_equal(a.result.rgb, b.sample.result.rgb)
    np.testing.assert_array_equal(a.result.instance, b.sample.result.instance)
    assert a.labels.objects == b.sample.labels.objects


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_an_interrupted_sequence_run_resumes_byte_identical(tmp_path):
    spec = top_down_spec(
        {
            "frames": 3,
            "fps": 10,
            "objects": {"linear": 0.2, "angular": 45},
            "camera": {"shake": 1.0},
        },
        count=4,
        outputs={"shard_size": 1},
    )
    generate(spec, tmp_path / "a", progress=False)
    generate(spec, tmp_path / "b", progress=False, workers=2)
    # interrupt: the last shard and the merged tables are gone, as after a kill
    for name in ("manifest.json", "samples.parquet", "objects.parquet"):
        (tmp_path / "b" / name).unlink()
    shutil.rmtree(tmp_path / "b" / "shards" / "shard-000003")
    generate(spec, tmp_path / "b", progress=False)
    a, b = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    a = {k: v for k, v in a.items() if not k.startswith(".synthcv")}
    b = {k: v for k, v in b.items() if not k.startswith(".synthcv")}
    assert a.keys() == b.keys() and a == b


def test_flo_files_round_trip_and_bad_files_are_named(tmp_path):
    flow = np.random.default_rng(0).normal(size=(5, 7, 2)).astype(np.float32)
    flow[0, 0] = np.nan
    write_flow(tmp_path / "x.flo", flow)
    np.testing.assert_array_equal(read_flow(tmp_path / "x.flo"), flow)
    (tmp_path / "bad.flo").write_bytes(b"not a flow file")
    with pytest.raises(ValueError, match=r"bad\.flo: not a \.flo"):
        read_flow(tmp_path / "bad.flo")


def test_a_clip_frame_renders_as_its_scene_alone(tiny):
    """The tiny backend moves a built world's bodies between frames instead of rebuilding it;
    the frame must be exactly what a fresh renderer draws for that posed scene."""
    spec = Spec.model_validate(
        top_down_spec({"frames": 3, "fps": 10, "objects": {"linear": 0.3, "angular": 90}})
    )
    clip = render_clip(spec, 0, tiny)
    fresh = TinyRenderer()
    try:
        for f in clip[1:]:
            alone = fresh.render(f.sample.scene)
            np.testing.assert_array_equal(alone.rgb, f.sample.result.rgb)
            np.testing.assert_array_equal(alone.instance, f.sample.result.instance)
    finally:
        fresh.close()


def test_coco_export_of_clips_has_videos_frames_and_tracks(tmp_path):
    from pycocotools.coco import COCO

    from synthcv.tools.coco import TRACK_STRIDE, export_coco

    spec = top_down_spec({"frames": 3, "fps": 6, "objects": {"linear": 0.1}}, count=2)
    generate(spec, tmp_path / "clips", progress=False)
    path = export_coco(tmp_path / "clips", tmp_path / "coco.json")
    coco = COCO(str(path))  # pycocotools reads it
    data = coco.dataset
    assert [v["id"] for v in data["videos"]] == [1, 2]
    assert all(v["length"] == 3 and v["fps"] == 6 for v in data["videos"])
    frames = {(im["video_id"], im["frame_id"]) for im in data["images"]}
    assert frames == {(v, f) for v in (1, 2) for f in range(3)}
    tracks = {a["track_id"] for a in data["annotations"]}
    assert tracks == {t["id"] for t in data["tracks"]} == {1, TRACK_STRIDE + 1}
    for a in data["annotations"]:
        assert a["video_id"] == a["track_id"] // TRACK_STRIDE + 1


def test_clip_previews_are_animated_gifs(tmp_path):
    from PIL import Image
    from typer.testing import CliRunner

    from synthcv.cli import _register, app

    if not app.registered_commands:
        _register()
    moving = {"frames": 3, "fps": 6, "objects": {"linear": 0.3}}
    generate(top_down_spec(moving, count=2), tmp_path / "c", progress=False)
    res = CliRunner().invoke(
        app,
        ["preview", str(tmp_path / "c"), "--out", str(tmp_path / "p.png"), "--clips", "2"],
        env={"SYNTHCV_TRACKING": "0", "COLUMNS": "300"},
    )
    assert res.exit_code == 0, res.output
    gifs = sorted((tmp_path / "p-clips").glob("*.gif"))
    assert [g.name for g in gifs] == ["clip-000000.gif", "clip-000001.gif"]
    with Image.open(gifs[0]) as im:
        assert im.n_frames == 3
    single = top_down_spec({"frames": 1}, count=1)
    single.pop("sequence")
    generate(single, tmp_path / "s", progress=False)
    res = CliRunner().invoke(
        app,
        ["preview", str(tmp_path / "s"), "--out", str(tmp_path / "q.png"), "--clips", "1"],
        env={"SYNTHCV_TRACKING": "0", "COLUMNS": "300"},
    )
    assert res.exit_code == 2 and "not a sequence dataset" in res.output


def test_flow_through_a_lens_is_the_distorted_analytic_flow(tiny):
    from synthcv.sensor.lens import Distortion, distort_pixels, undistort_pixels

    d = Distortion(k1=-0.2, k2=0.05)
    spec = Spec.model_validate(
        top_down_spec(
            {"frames": 2, "fps": 10, "objects": {"linear": 0.3}},
            sensor={"distortion": {"k1": d.k1, "k2": d.k2}},
        )
    )
    clip = render_clip(spec, 0, tiny)
    a, b = clip[0].sample, clip[1].sample
    obj = a.scene.objects[0]
    top = obj.position[2] + obj.mesh.extents[2] / 2
    cam = a.scene.camera
    h, w = a.result.depth.shape
    ys, xs = np.mgrid[0:h, 0:w]
    pre, _ = undistort_pixels(np.stack([xs.ravel(), ys.ravel()], 1), cam.K, d)
    # the pinhole ray of each distorted pixel meets the top plane; move it; project; distort
    k = cam.K
    rays = (
        np.stack(
            [(pre[:, 0] - k[0, 2]) / k[0, 0], (pre[:, 1] - k[1, 2]) / k[1, 1], np.ones(len(pre))], 1
        )
        @ cam.camera_to_world[:3, :3].T
    )
    eye = cam.camera_to_world[:3, 3]
    hits = eye + rays * ((top - eye[2]) / rays[:, 2])[:, None]
    moved = hits + (b.scene.objects[0].position - obj.position)
    uv, _ = b.scene.camera.project(moved)
    expect = (distort_pixels(uv, k, d) - np.stack([xs.ravel(), ys.ravel()], 1)).reshape(h, w, 2)
    from scipy.ndimage import binary_erosion

    face = binary_erosion(a.result.instance == 1, iterations=2) & (clip[0].flow_status == VISIBLE)
    assert face.sum() > 300
    # depth is resampled nearest through the lens: allow a little more than the pinhole 0.1 px
    assert np.abs(clip[0].flow[face] - expect[face]).max() < 0.25


def test_flow_is_the_same_on_both_backends():
    pytest.importorskip("bpy")
    from synthcv.render.cycles import CyclesRenderer

    spec = Spec.model_validate(
        top_down_spec(
            {
                "frames": 2,
                "fps": 10,
                "objects": {"linear": 0.3, "angular": 60},
                "camera": {"orbit": 10},
            }
        )
    )
    a = render_clip(spec, 0, TinyRenderer())
    b = render_clip(spec, 0, CyclesRenderer(samples=1))
    both = (a[0].flow_status == VISIBLE) & (b[0].flow_status == VISIBLE)
    assert both.mean() > 0.8
    assert np.median(np.abs(a[0].flow[both] - b[0].flow[both])) < 0.01


def test_sensor_noise_is_new_in_every_frame_and_frame_zero_keeps_the_samples(tiny):
    sensor = {"exposure_ev": -4, "noise": {}}
    spec = Spec.model_validate(top_down_spec({"frames": 3}, sensor=sensor))
    clip = render_clip(spec, 0, tiny)
    assert np.array_equal(clip[0].sample.clean, clip[2].sample.clean)  # nothing moves ...
    assert not np.array_equal(clip[1].sample.result.rgb, clip[2].sample.result.rgb)  # ... noise
    plain = dict(top_down_spec({"frames": 1}, sensor=sensor))
    plain.pop("sequence")
    single = render_sample(Spec.model_validate(plain), 0, tiny)
    np.testing.assert_array_equal(single.result.rgb, clip[0].sample.result.rgb)


def test_people_walk_in_time_and_their_flow_follows_their_keypoints(tiny):
    spec = Spec.model_validate(
        {
            "count": 1,
            "image": {"width": 160, "height": 160},
            "camera": {
                "distance": 3.2,
                "elevation": 8,
                "azimuth": 0,
                "fov": 45,
                "look_at": [0, 0, 0.9],
            },
            "physics": {"enabled": False},
            "people": {
                "count": 1,
                "pose": "walk",
                "phase": 0.2,
                "perturb": 0,
                "placement": {"x": 0.0, "y": 0.0, "facing": 90},
            },
            "sequence": {"frames": 3, "fps": 15},
        }
    )
    clip = render_clip(spec, 0, tiny)
    persons = [f.sample.labels.objects[0] for f in clip]
    assert len({p["instance_id"] for p in persons}) == 1
    # the person walks: it travels along its heading and its limbs move
    x = [f.sample.scene.objects[0].position for f in clip]
    assert np.linalg.norm(x[2][:2] - x[0][:2]) > 0.1
    k0 = np.array(persons[0]["keypoints"]).reshape(-1, 3)
    k1 = np.array(persons[1]["keypoints"]).reshape(-1, 3)
    both = (k0[:, 2] == 2) & (k1[:, 2] == 2)
    assert both.sum() >= 5
    # flow read at each visible keypoint's pixel ≈ how far the keypoint moved
    flow = clip[0].flow
    xi = np.floor(k0[both, 0]).astype(int)
    yi = np.floor(k0[both, 1]).astype(int)
    moved = k1[both, :2] - k0[both, :2]
    err = np.linalg.norm(flow[yi, xi] - moved, axis=1)
    assert np.abs(moved).max() > 2  # it moved by pixels ...
    assert np.isfinite(err).sum() >= 5 and np.nanmedian(err) < 1.0, (err, moved)  # ... flow agrees


def test_streaming_exports_carry_the_flow_as_float_arrays(tmp_path, monkeypatch):
    pytest.importorskip("webdataset")
    datasets = pytest.importorskip("datasets")
    import io
    import tarfile

    from synthcv.tools.hf import export_hf
    from synthcv.tools.webdataset import export_webdataset

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    generate(
        top_down_spec({"frames": 2, "objects": {"linear": 0.3}}, count=1),
        tmp_path / "c",
        progress=False,
    )
    ds = open_dataset(tmp_path / "c")
    flow = ds.read(0, ("flow",))["flow"]
    wds = export_webdataset(ds, tmp_path / "wds")
    with tarfile.open(next(wds.glob("*.tar"))) as tar:
        names = tar.getnames()
        member = tar.extractfile("00000000.flow.npy").read()
    assert "00000001.flow_back.npy" in names and not any(n.endswith("flow.png") for n in names)
    np.testing.assert_array_equal(np.load(io.BytesIO(member)), flow)
    hf = datasets.load_dataset(str(export_hf(ds, tmp_path / "hf")), split="train")
    np.testing.assert_array_equal(np.asarray(hf[0]["flow"], np.float32), flow)
    assert hf[0]["flow_back"] is None and hf[1]["flow"] is None


def test_bad_sequence_fields_are_named(tmp_path):
    import yaml

    from synthcv.spec import SpecError, load_spec

    for sequence, where in [
        ({"frames": 0}, "sequence.frames"),
        ({"fps": -1}, "sequence.fps"),
        ({"start": "midair"}, "sequence.start"),
        ({"camera": {"orbit": {"uniform": [0, 5000]}}}, "sequence.camera.orbit"),
        ({"objects": {"spin": 3}}, "sequence.objects.spin"),
        ({"frames": 1000}, "sequence.frames"),  # × 20,000 clips is over the dataset limit
    ]:
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(top_down_spec(sequence, count=20_000)))
        with pytest.raises(SpecError) as err:
            load_spec(path)
        assert any(line.startswith(where) for line in err.value.problems), err.value.problems
