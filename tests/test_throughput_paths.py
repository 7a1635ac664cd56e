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
