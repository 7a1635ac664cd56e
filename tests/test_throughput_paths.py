"""The fast paths of issue #21 keep every output the same: indexed render arrays, a mesh's own
pybullet lists, and the per-stage profile of ``generate``."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from synthcv.assets.build import build_mesh
from synthcv.pipeline import generate, render_sample
from synthcv.pipeline.profile import STAGES
from synthcv.render.tiny import TinyRenderer, _cached_arrays, _render_arrays
from synthcv.spec import Spec

SPEC = {
    "count": 4,
    "seed": 3,
    "image": {"width": 64, "height": 48},
    "camera": {"distance": 0.8, "elevation": 40, "azimuth": {"uniform": [0, 360]}},
    "objects": {
        "count": 3,
        "classes": {
            "duck": {"asset": {"pybullet": "duck"}, "material": {"texture": "native"}},
            "torus": {"asset": {"primitive": "torus", "major_radius": 0.05, "minor_radius": 0.02}},
        },
    },
}


@pytest.mark.parametrize(
    "asset",
    [{"pybullet": "duck"}, {"primitive": "cube", "size": 0.1}, {"primitive": "torus"}],
)
def test_indexed_arrays_are_the_per_corner_arrays(asset):
    """Every triangle corner gets exactly the position, normal and UV it had before indexing,
    in the same order: pybullet rasterizes the same triangles, so the image is unchanged."""
    mesh = build_mesh(asset)
    verts, normals, uvs = _render_arrays(mesh)
    iv, inorm, iuv, idx = _cached_arrays(mesh)
    assert len(iv) < len(verts)  # shared corners
    assert np.array_equal(iv[idx], verts) and np.array_equal(inorm[idx], normals)
    if uvs is not None:
        assert np.array_equal(iuv[idx], uvs)


def test_a_returning_mesh_keeps_its_own_lists_and_renders_the_same():
    spec = Spec.model_validate(SPEC)
    warm, fresh = TinyRenderer(), TinyRenderer()
    try:
        first = [render_sample(spec, i, warm).result.rgb for i in range(spec.count)]
        again = [render_sample(spec, i, warm).result.rgb for i in range(spec.count)]
        cold = [render_sample(spec, i, fresh).result.rgb for i in range(spec.count)]
        own = warm._mesh_lists._own
        assert own and all(m.unscaled is None for m in own)  # the cached, unscaled meshes
        assert warm._mesh_lists._rows == sum(len(v["vertices"]) for v in own.values())
        for a, b, c in zip(first, again, cold, strict=True):
            assert np.array_equal(a, b) and np.array_equal(a, c)
    finally:
        warm.close()
        fresh.close()


def test_a_mesh_seen_once_gets_no_lists_of_its_own():
    """Per-sample meshes (each handwritten digit) must not pile up lists pybullet never frees."""
    from synthcv.render.pybullet_lists import ReusedLists
    from synthcv.render.tiny import _MeshLists

    lists = _MeshLists(ReusedLists())
    for size in (0.1, 0.11, 0.12):
        lists(build_mesh({"primitive": "sphere", "radius": size}))
    assert not lists._own


def test_generate_reports_where_the_time_went(tmp_path):
    times: dict[str, float] = {}
    generate(
        Spec.model_validate(SPEC), tmp_path / "a", workers=2, progress=False, profile_into=times
    )
    assert {"sample", "physics", "render", "labels", "write", "shard tables"} <= set(times)
    assert set(times) <= set(STAGES)
    assert all(v > 0 for k, v in times.items() if k != "sensor")

    from synthcv.cli import _register, app

    if not app.registered_commands:
        _register()
    spec_file = tmp_path / "spec.yaml"
    import json

    spec_file.write_text(json.dumps(SPEC))
    res = CliRunner().invoke(
        app,
        ["generate", str(spec_file), "--out", str(tmp_path / "b"), "--profile"],
        env={"SYNTHCV_TRACKING": "0", "COLUMNS": "300"},
    )
    assert res.exit_code == 0, res.output
    for row in ("physics", "render", "labels", "write", "all stages", "samples/s"):
        assert row in res.output


def _normals_reference(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """The definition, written plainly on (H, W, 3) arrays: per pixel and direction the
    one-sided difference with the smaller depth jump between valid pixels (forward on ties),
    the cross product, unit length, turned to face the camera."""
    h, w = depth.shape
    z = depth.astype(np.float64)
    ys, xs = np.mgrid[0:h, 0:w]
    pts = np.stack([(xs - K[0, 2]) * z / K[0, 0], (ys - K[1, 2]) * z / K[1, 1], z], axis=-1)
    valid = z > 0

    def side(axis: int) -> np.ndarray:
        out = np.zeros_like(pts)
        n = pts.shape[axis]
        for i in range(n):
            here = np.take(pts, i, axis=axis)
            fwd = bwd = np.zeros_like(here)
            jf = jb = np.full(here.shape[:-1], np.inf)
            if i + 1 < n:
                fwd = np.take(pts, i + 1, axis=axis) - here
                ok = np.take(valid, i + 1, axis=axis) & np.take(valid, i, axis=axis)
                jf = np.where(ok, np.abs(fwd[..., 2]), np.inf)
            if i > 0:
                bwd = here - np.take(pts, i - 1, axis=axis)
                ok = np.take(valid, i - 1, axis=axis) & np.take(valid, i, axis=axis)
                jb = np.where(ok, np.abs(bwd[..., 2]), np.inf)
            pick = np.where((jf <= jb)[..., None], fwd, bwd)
            if axis == 1:
                out[:, i] = pick
            else:
                out[i] = pick
        return out

    n = np.cross(side(1), side(0))
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.divide(n, norm, out=np.zeros_like(n), where=norm > 0)
    n[np.einsum("hwc,hwc->hw", n, pts) > 0] *= -1
    n[~valid] = 0
    return n.astype(np.float32)


def test_normals_from_depth_equal_their_definition_bit_for_bit():
    """The planar fast path computes exactly the definition: a tilted plane, a step (an
    occlusion edge), holes (no hit) and noise, including the one-pixel-wide edge columns."""
    from synthcv.labels import normals_from_depth

    rng = np.random.default_rng(0)
    K = np.array([[60.0, 0, 31.5], [0, 60.0, 23.5], [0, 0, 1]])
    ys, xs = np.mgrid[0:48, 0:64]
    plane = 1.0 + 0.004 * xs + 0.002 * ys
    step = np.where(xs > 40, plane - 0.3, plane)
    holes = step * (rng.random(step.shape) > 0.1)
    noisy = holes + rng.normal(0, 0.002, holes.shape) * (holes > 0)
    for depth in (plane, step, holes, noisy, noisy[:, :1], noisy[:1], noisy[:2, :3]):
        got = normals_from_depth(depth.astype(np.float32), K)
        assert got.tobytes() == _normals_reference(depth.astype(np.float32), K).tobytes()
    # and the plane's normal is the plane's: n ∝ (∂X × ∂Y) of the back-projected surface
    n = normals_from_depth(plane.astype(np.float32), K)[24, 32]
    assert n[2] < 0 and abs(np.linalg.norm(n) - 1) < 1e-6


def test_rasterized_layers_equal_a_brute_force_point_in_triangle_test():
    """Many objects in one pass: every pixel centre inside (edges included) a triangle of
    layer k is set on layer k, and nothing else; degenerate, off-image and large triangles
    included."""
    from synthcv.labels import rasterize_layers, rasterize_triangles

    rng = np.random.default_rng(1)
    h, w = 24, 32
    small = rng.uniform(-4, 36, (60, 1, 2)) + rng.uniform(-3, 3, (60, 3, 2))
    large = rng.uniform(-20, 50, (6, 3, 2))
    grid = np.stack(np.meshgrid(np.arange(8.0), np.arange(8.0)), -1)[:3, :3].reshape(-1, 2)
    on_centres = np.array([[[2, 2], [6, 2], [2, 6]], [[5, 5], [5, 5], [9, 9]]], float)  # edge, flat
    tri = np.concatenate([small, large, on_centres, grid[None, [0, 2, 6]]])
    layer = rng.integers(0, 3, len(tri))
    got = rasterize_layers(tri, layer, 3, h, w)

    want = np.zeros((3, h, w), bool)
    cy, cx = np.mgrid[0:h, 0:w]
    for t, k in zip(tri, layer, strict=True):
        a, b, c = t
        area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        if abs(area) <= 1e-12:
            continue
        inside = np.ones((h, w), bool)
        for p0, p1 in ((a, b), (b, c), (c, a)):
            e = (p1[0] - p0[0]) * (cy - p0[1]) - (p1[1] - p0[1]) * (cx - p0[0])
            inside &= e * np.sign(area) >= 0
        want[k] |= inside
    assert want.any(axis=(1, 2)).all()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(rasterize_triangles(tri[layer == 1], h, w), want[1])
