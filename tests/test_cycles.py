"""Cycles backend: labels checked against analytic geometry, determinism, errors.

Scenes are built straight from the scene dataclasses; images are tiny (<= 64 px) and sample
counts low so the module runs in a few seconds. Expected values come from ray/plane and
ray/sphere intersections computed here, never from the renderer itself.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("bpy")
trimesh = pytest.importorskip("trimesh")

from synthcv.render.cycles import CyclesRenderer, CyclesRenderError  # noqa: E402
from synthcv.scene import (  # noqa: E402
    Camera,
    Ground,
    Material,
    Mesh,
    Scene,
    SceneObject,
    Sun,
    quat_to_matrix,
)

pytestmark = pytest.mark.cycles

W, H = 64, 48
IDENTITY_Q = np.array([0.0, 0.0, 0.0, 1.0])


@pytest.fixture(scope="module")
def renderer():
    r = CyclesRenderer(samples=2, threads=2)
    yield r
    r.close()


def make_camera(eye, target, fov=45.0, width=W, height=H, K=None, up=(0.0, 0.0, 1.0)) -> Camera:
    K = Camera.intrinsics_from_fov(width, height, fov) if K is None else K
    return Camera(width, height, K, Camera.look_at(eye, target, up=up))


def make_scene(objects, camera, ground=True, index=0, seed=7, ambient=0.3) -> Scene:
    return Scene(
        index=index,
        seed=seed,
        objects=objects,
        camera=camera,
        sun=Sun((0.3, -0.4, 0.87), 1.0),
        ambient=ambient,
        ground=Ground(enabled=ground),
        background=(0.1, 0.2, 0.3),
    )


def sphere_object(iid, center, radius, subdiv=4, material=None) -> SceneObject:
    s = trimesh.creation.icosphere(subdivisions=subdiv, radius=radius)
    mesh = Mesh(np.asarray(s.vertices), np.asarray(s.faces), "primitive:sphere")
    return SceneObject(
        iid, "ball", 1, mesh, np.asarray(center, float), IDENTITY_Q, material or Material()
    )


def pixel_rays(camera: Camera) -> np.ndarray:
    """Camera-frame ray directions with z = 1 through every pixel centre, (H, W, 3)."""
    u, v = np.meshgrid(np.arange(camera.width), np.arange(camera.height))
    pix = np.stack([u, v, np.ones_like(u)], axis=-1).astype(np.float64)
    return pix @ np.linalg.inv(camera.K).T


def to_cam(camera: Camera, p) -> np.ndarray:
    return camera.world_to_camera[:3, :3] @ np.asarray(p, float) + camera.world_to_camera[:3, 3]


def analytic_sphere(camera: Camera, center_w, radius):
    """(hit mask, depth z, camera-frame normals, cos of the view angle) of a ray/sphere hit."""
    d = pixel_rays(camera)
    c = to_cam(camera, center_w)
    a = (d * d).sum(-1)
    b = -2.0 * (d @ c)
    disc = b * b - 4 * a * (c @ c - radius**2)
    hit = disc > 0
    t = np.where(hit, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), 0.0)
    n = (t[..., None] * d - c) / radius
    facing = -(n * d).sum(-1) / np.linalg.norm(d, axis=-1)
    return hit, t, n, np.where(hit, facing, 0.0)


def angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_result_types_and_conventions(renderer):
    cam = make_camera([0, -3, 2], [0, 0, 0.3])
    res = renderer.render(make_scene([sphere_object(1, [0, 0, 0.4], 0.4)], cam))
    assert renderer.name == "cycles" and renderer.version.startswith("blender-5.")
    assert res.rgb.shape == (H, W, 3) and res.rgb.dtype == np.uint8
    assert res.depth.shape == (H, W) and res.depth.dtype == np.float32
    assert res.instance.shape == (H, W) and res.instance.dtype == np.uint16
    assert res.normals.shape == (H, W, 3) and res.normals.dtype == np.float32
    assert res.normals_source == "geometry"
    hit = res.depth > 0
    assert hit.any() and (~hit).any()  # ground, sphere and sky all in view
    assert np.allclose(np.linalg.norm(res.normals[hit], axis=-1), 1.0, atol=1e-4)
    assert not res.normals[~hit].any()  # zeros where nothing was hit
    assert not res.instance[~hit].any()


def test_ground_plane_depth_and_normals_exact(renderer):
    """Planar camera z (not ray length) and the ground's camera-frame normal, per pixel."""
    cam = make_camera([0.3, -2.0, 2.5], [0, 0, 0], fov=40)
    res = renderer.render(make_scene([], cam))
    d = pixel_rays(cam)
    n_c = cam.world_to_camera[:3, :3] @ np.array([0.0, 0.0, 1.0])
    p0 = to_cam(cam, [0, 0, 0])
    z = (n_c @ p0) / (d @ n_c)
    p_world = (z[..., None] * d - cam.world_to_camera[:3, 3]) @ cam.world_to_camera[:3, :3]
    inside = (z > 0) & (np.abs(p_world[..., :2]).max(-1) < 4.9)  # ground is 10 m wide
    assert inside.mean() > 0.5
    hit = res.depth > 0
    assert (hit == inside).mean() > 0.99
    both = hit & inside
    np.testing.assert_allclose(res.depth[both], z[both], rtol=1e-3)
    assert angle_deg(res.normals[both], n_c[None]).max() < 0.5
    assert not res.instance.any()  # ground is instance 0


def test_tilted_plane_object_pose_and_normals(renderer):
    """A 1 m square rotated 40° about x by an (x, y, z, w) quaternion: depth and normal."""
    half = math.radians(40) / 2
    q = np.array([math.sin(half), 0.0, 0.0, math.cos(half)])
    verts = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], float)
    mesh = Mesh(verts, np.array([[0, 1, 2], [0, 2, 3]]), "test:plane")
    obj = SceneObject(5, "plane", 1, mesh, np.array([0.1, 0.2, 1.0]), q, Material())
    cam = make_camera([0.0, -2.5, 2.0], [0.1, 0.2, 1.0], fov=50)
    res = renderer.render(make_scene([obj], cam, ground=False))
    n_w = quat_to_matrix(q) @ np.array([0.0, 0.0, 1.0])
    n_c = cam.world_to_camera[:3, :3] @ n_w
    p0 = to_cam(cam, obj.position)
    if n_c @ p0 > 0:  # the visible side faces the camera
        n_c = -n_c
    d = pixel_rays(cam)
    z = (n_c @ p0) / (d @ n_c)
    mask = res.instance == 5
    assert mask.sum() > 200
    assert set(np.unique(res.instance)) == {0, 5}
    np.testing.assert_allclose(res.depth[mask], z[mask], rtol=1e-3)
    assert angle_deg(res.normals[mask], n_c[None]).max() < 2.0


def test_back_face_normals_face_the_camera(renderer):
    """Seen from below, a one-sided plane's normal is flipped towards the camera (as for
    depth-derived normals), never pointing away from it."""
    verts = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], float)
    mesh = Mesh(verts, np.array([[0, 1, 2], [0, 2, 3]]), "test:plane")
    obj = SceneObject(5, "plane", 1, mesh, np.array([0, 0, 1.0]), IDENTITY_Q, Material())
    cam = make_camera([0.0, -1.0, -1.0], [0, 0, 1.0], fov=50)
    res = renderer.render(make_scene([obj], cam, ground=False))
    mask = res.instance == 5
    expected = -(cam.world_to_camera[:3, :3] @ np.array([0.0, 0.0, 1.0]))
    assert mask.sum() > 200
    assert angle_deg(res.normals[mask], expected[None]).max() < 1.0


def test_sphere_normals_depth_and_mask(renderer):
    center, radius = [0.2, 0.1, 0.6], 0.5
    cam = make_camera([0.5, -2.5, 1.8], center, fov=45)
    res = renderer.render(make_scene([sphere_object(3, center, radius)], cam, ground=False))
    hit, z, n, facing = analytic_sphere(cam, center, radius)
    mask = res.instance == 3
    assert iou(mask, hit) > 0.97
    inner = mask & hit & (facing > 0.3)  # away from the silhouette (tessellation)
    assert inner.sum() > 200
    assert np.percentile(angle_deg(res.normals[inner], n[inner]), 99) < 2.0
    assert angle_deg(res.normals[inner], n[inner]).mean() < 1.0
    np.testing.assert_allclose(res.depth[inner], z[inner], rtol=5e-3)


def test_box_faces_stay_flat(renderer):
    """Sharp 90° edges are not smoothed: every box pixel has one of its face normals."""
    box = trimesh.creation.box((0.6, 0.6, 0.6))
    mesh = Mesh(np.asarray(box.vertices), np.asarray(box.faces), "primitive:cube")
    q = np.array([0.0, 0.0, math.sin(math.radians(15)), math.cos(math.radians(15))])
    obj = SceneObject(2, "box", 1, mesh, np.array([0.0, 0.0, 0.3]), q, Material())
    cam = make_camera([1.2, -2.0, 1.6], [0, 0, 0.3])
    res = renderer.render(make_scene([obj], cam, ground=False))
    mask = res.instance == 2
    rot = cam.world_to_camera[:3, :3] @ quat_to_matrix(q)
    faces = np.concatenate([rot, -rot], axis=1).T  # the 6 face normals in camera frame
    err = angle_deg(res.normals[mask][:, None, :], faces[None]).min(axis=1)
    assert mask.sum() > 150
    assert np.percentile(err, 98) < 1.0


def test_instance_ids_exact_with_occlusion(renderer):
    """Two objects (ids 1 and 1000) with one occluding the other: no blended ids appear."""
    front, back = [0.0, -0.6, 0.35], [0.25, 0.3, 0.5]
    objs = [sphere_object(1, front, 0.35), sphere_object(1000, back, 0.5)]
    cam = make_camera([0.0, -3.0, 1.2], [0.1, 0, 0.4])
    res = renderer.render(make_scene(objs, cam))
    assert set(np.unique(res.instance).tolist()) == {0, 1, 1000}
    hit_f, z_f, _, _ = analytic_sphere(cam, front, 0.35)
    hit_b, z_b, _, _ = analytic_sphere(cam, back, 0.5)
    vis_b = hit_b & ~(hit_f & (z_f < z_b))
    assert iou(res.instance == 1, hit_f) > 0.95
    assert iou(res.instance == 1000, vis_b) > 0.95


def test_projection_matches_K_with_offset_principal_point(renderer):
    """A small sphere lands where K predicts, also with a principal point off centre."""
    K = np.array([[70.0, 0, 25.3], [0, 70.0, 28.6], [0, 0, 1]])
    cam = Camera(W, H, K, Camera.look_at([0.0, -3.0, 1.0], [0, 0, 0.5]))
    points = [[0.35, 0.0, 0.75], [-0.4, 0.2, 0.3]]
    objs = [sphere_object(i + 1, p, 0.08, subdiv=2) for i, p in enumerate(points)]
    res = renderer.render(make_scene(objs, cam, ground=False))
    uv, _ = cam.project(np.array(points))
    for i in range(len(points)):
        ys, xs = np.nonzero(res.instance == i + 1)
        assert len(xs) > 3
        assert abs(xs.mean() - uv[i, 0]) < 1.0 and abs(ys.mean() - uv[i, 1]) < 1.0


def test_determinism_and_reset_between_samples(renderer):
    """A, B, A: the two renders of A are identical (labels and RGB); B does not leak into A."""
    cam = make_camera([0, -3, 2], [0, 0, 0.3])
    a = make_scene([sphere_object(1, [0, 0, 0.4], 0.4, material=Material(procedural="noise"))], cam)
    b_objs = [sphere_object(2, [0.6, 0.2, 0.3], 0.3), sphere_object(3, [-0.6, 0, 0.3], 0.3)]
    b = make_scene(b_objs, cam, seed=99)
    r1 = renderer.render(a)
    r2 = renderer.render(b)
    r3 = renderer.render(a)
    for key in ("rgb", "depth", "instance", "normals"):
        np.testing.assert_array_equal(getattr(r1, key), getattr(r3, key))
    assert set(np.unique(r3.instance).tolist()) == {0, 1}
    assert set(np.unique(r2.instance).tolist()) == {0, 2, 3}


def test_seed_changes_rgb_noise_only(renderer):
    cam = make_camera([0, -3, 2], [0, 0, 0.3])
    objs = [sphere_object(1, [0, 0, 0.4], 0.4)]
    r1 = renderer.render(make_scene(objs, cam, seed=1))
    r2 = renderer.render(make_scene(objs, cam, seed=2))
    np.testing.assert_array_equal(r1.instance, r2.instance)
    np.testing.assert_array_equal(r1.depth, r2.depth)
    assert not np.array_equal(r1.rgb, r2.rgb)


def test_lighting_mapping(renderer):
    """Documented mapping: a white surface facing the sun has linear radiance 0.7 * intensity,
    a uniform world of strength ``ambient`` adds ``ambient``; the sky shows ``background``."""
    cam = make_camera([0, 0, 3], [0, 0, 0], fov=20, width=32, height=32, up=(0, 1, 0))
    white = Ground(material=Material(color=(1.0, 1.0, 1.0), roughness=1.0))

    def linear(intensity, ambient):
        sc = Scene(0, 1, [], cam, Sun((0, 0, 1), intensity), ambient, white)
        v = renderer.render(sc).rgb[8:24, 8:24].astype(float).mean() / 255
        return ((v + 0.055) / 1.055) ** 2.4

    assert linear(0.5, 0.0) == pytest.approx(0.35, rel=0.08)
    assert linear(0.0, 0.4) == pytest.approx(0.4, rel=0.08)
    sky_cam = make_camera([0, 0, 1], [0, 5, 3], width=32, height=32)
    sky = Scene(0, 1, [], sky_cam, Sun((0, 0, 1), 1.0), 0.5, Ground(), background=(0.2, 0.4, 0.6))
    res = renderer.render(sky)
    assert not res.depth[:4].any()
    np.testing.assert_allclose(res.rgb[:4].reshape(-1, 3).mean(0), [51, 102, 153], atol=1.5)


def test_textures_render(renderer):
    """Image (pybullet_data) and procedural textures vary the colour of a surface."""
    pybullet_data = pytest.importorskip("pybullet_data")
    import os

    tex = os.path.join(pybullet_data.getDataPath(), "checker_blue.png")
    cam = make_camera([0, 0, 3], [0, 0, 0], fov=30, up=(0, 1, 0))

    def spread(material):
        ground = Ground(material=material)
        res = renderer.render(Scene(0, 1, [], cam, Sun((0, 0, 1), 1.0), 0.3, ground))
        return float(res.rgb.reshape(-1, 3).astype(float).std(0).max())

    flat = spread(Material(color=(0.6, 0.6, 0.6), roughness=1.0))
    assert spread(Material(color=(1, 1, 1), texture=tex, texture_scale=0.5)) > flat + 20
    assert spread(Material(color=(0.6, 0.6, 0.6), procedural="checker")) > flat + 20
    assert spread(Material(color=(0.6, 0.6, 0.6), procedural="noise")) > flat + 5


def test_errors_name_the_sample(renderer, tmp_path):
    cam = make_camera([0, -3, 2], [0, 0, 0.3])
    missing = str(tmp_path / "nope.png")
    obj = sphere_object(1, [0, 0, 0.4], 0.4, material=Material(texture=missing))
    with pytest.raises(CyclesRenderError, match=r"sample 17 .*nope\.png"):
        renderer.render(make_scene([obj], cam, index=17))
    bad = Camera(W, H, np.array([[50.0, 0, 32], [0, 60.0, 24], [0, 0, 1]]), cam.world_to_camera)
    with pytest.raises(CyclesRenderError, match=r"sample 4 .*square pixels"):
        renderer.render(make_scene([], bad, index=4))
    obj = sphere_object(1, [0, 0, 0.4], 0.4, material=Material(procedural="marble"))
    with pytest.raises(CyclesRenderError, match=r"sample 2 .*'marble'"):
        renderer.render(make_scene([obj], cam, index=2))
    # the renderer is still usable after a failed sample
    res = renderer.render(make_scene([sphere_object(1, [0, 0, 0.4], 0.4)], cam))
    assert set(np.unique(res.instance).tolist()) == {0, 1}


def test_two_renderers_in_one_process_and_denoise(renderer):
    """Renderers share Blender's global state; each re-takes it. Labels are never denoised."""
    cam = make_camera([0, -3, 2], [0, 0, 0.3])
    sc = make_scene([sphere_object(1, [0, 0, 0.4], 0.4)], cam)
    before = renderer.render(sc)
    other = CyclesRenderer(samples=2, denoise=True)
    try:
        den = other.render(sc)
        after = renderer.render(sc)
    finally:
        other.close()
    for key in ("rgb", "depth", "instance", "normals"):
        np.testing.assert_array_equal(getattr(before, key), getattr(after, key))
    for key in ("depth", "instance", "normals"):
        np.testing.assert_array_equal(getattr(before, key), getattr(den, key))
    assert not np.array_equal(before.rgb, den.rgb)

    # the denoised image is smoother: less pixel-to-pixel variation on the ground
    def rough(rgb):
        return np.abs(np.diff(rgb[-12:].astype(float), axis=1)).mean()

    assert rough(den.rgb) < rough(before.rgb)


def test_denoising_keeps_texture_detail_with_centre_sampled_guides():
    """With every sample through the pixel centre the denoiser's albedo and normal guides are
    exact, so they are not prefiltered: a 16-sample textured render, denoised, stays closer to
    a converged render than with Blender's "Accurate" prefilter, which blurs the texture
    (benchmarks/cycles_quality.py measures the same on whole scenes)."""
    pybullet_data = pytest.importorskip("pybullet_data")
    import os

    tex = os.path.join(pybullet_data.getDataPath(), "checker_blue.png")
    cam = make_camera([0, -0.6, 1.5], [0, 0, 0.3])  # a fine checker fills the frame
    ground = Ground(material=Material(color=(1, 1, 1), texture=tex, texture_scale=8.0))
    scene = Scene(
        0, 5, [sphere_object(1, [0, 0, 0.4], 0.4)], cam, Sun((0.3, -0.4, 0.87)), 0.5, ground
    )

    class Converged(CyclesRenderer):
        def _setup_scene(self) -> None:
            super()._setup_scene()
            self._scene.cycles.use_adaptive_sampling = False

    class Prefiltered(CyclesRenderer):
        def _setup_scene(self) -> None:
            super()._setup_scene()
            self._scene.cycles.denoising_prefilter = "ACCURATE"

    def psnr(a, b):
        return 10 * np.log10(255.0**2 / np.mean((a.astype(float) - b.astype(float)) ** 2))

    images = {}
    for name, r in (
        ("reference", Converged(samples=256, threads=2)),
        ("ours", CyclesRenderer(samples=16, denoise=True, threads=2)),
        ("prefiltered", Prefiltered(samples=16, denoise=True, threads=2)),
    ):
        try:
            images[name] = r.render(scene).rgb
        finally:
            r.close()
    ours, blurred = (
        psnr(images["ours"], images["reference"]),
        psnr(images["prefiltered"], images["reference"]),
    )
    assert ours > blurred + 5.0, (ours, blurred)  # measured: 39.3 against 24.5 dB
    wide = CyclesRenderer(samples=2, denoise=True, filter_width=1.5)
    try:  # a wide pixel filter jitters the guides: Blender's prefilter stays
        assert wide._scene.cycles.denoising_prefilter == "ACCURATE"
    finally:
        wide.close()


def test_bad_options():
    with pytest.raises(ValueError, match=r"renderer\.samples"):
        CyclesRenderer(samples=0)
    with pytest.raises(ValueError, match=r"renderer\.threads"):
        CyclesRenderer(threads=-1)


def test_module_import_does_not_import_bpy():
    code = "import sys, synthcv.render.cycles; assert 'bpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
