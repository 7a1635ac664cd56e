"""Backends describe themselves; the spec's ``renderer:`` is the named backend's own options;
a spec and its resolved JSON are the same spec (workers receive JSON)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from synthcv.render import backends, get_backend, make_renderer
from synthcv.spec import Spec, SpecError, load_spec

REPO = Path(__file__).resolve().parents[1]
MINI = {"objects": {"classes": {"a": {"asset": {"primitive": "cube", "size": 0.1}}}}}


def test_builtin_backends_describe_themselves():
    found = backends()
    assert list(found)[:2] == ["tiny", "cycles"]
    tiny, cycles = found["tiny"], found["cycles"]
    assert tiny.fork_safe and not cycles.fork_safe
    assert tiny.normals_source == "depth-derived" and cycles.normals_source == "geometry"
    d = tiny.describe()
    assert d["name"] == "tiny" and d["version"].startswith("pybullet-")
    assert cycles.version().startswith("blender-5.")  # read from metadata, bpy not imported


def test_renderer_section_is_the_backends_own_options():
    assert load_spec(MINI).renderer == get_backend("tiny").options()
    s = load_spec({**MINI, "renderer": {"shadows": False}})  # backend may be omitted
    assert s.renderer.backend == "tiny" and s.renderer.shadows is False
    c = load_spec({**MINI, "renderer": {"backend": "cycles", "samples": 8}})
    assert c.resolved()["renderer"] == {
        "backend": "cycles",
        "samples": 8,
        "denoise": False,
        "threads": 0,
        "filter_width": 0.01,
        "view_transform": "Standard",
    }
    # the renderer never changes the scenes: the scene hash ignores it
    assert c.scene_hash == load_spec(MINI).scene_hash != c.spec_hash


@pytest.mark.parametrize(
    ("renderer", "message"),
    [
        (
            {"backend": "nope"},
            'renderer: got {"backend": "nope"}, expected a mapping whose backend',
        ),
        ("cycles", "renderer: got 'cycles', expected a mapping whose backend is one of"),
        ({"backend": "cycles", "samples": 0}, "renderer.samples: got 0, expected greater than"),
        ({"backend": "tiny", "samples": 4}, "renderer.samples: unknown key 'samples'"),
        ({"backend": "cycles", "sampels": 4}, "did you mean 'samples'?"),
    ],
)
def test_renderer_errors_name_the_field(renderer, message):
    with pytest.raises(SpecError) as e:
        load_spec({**MINI, "renderer": renderer})
    assert message in str(e.value), str(e.value)


def test_worker_threads_fill_only_an_unset_threads_option():
    cycles = get_backend("cycles").options
    assert cycles(samples=2).renderer_kwargs(threads=3)["threads"] == 3
    assert cycles(samples=2, threads=1).renderer_kwargs(threads=3)["threads"] == 1
    assert "threads" not in get_backend("tiny").options().renderer_kwargs(threads=3)


def test_make_renderer_validates_options():
    r = make_renderer("tiny", {"shadows": False})
    try:
        assert r.name == "tiny" and r.shadows is False
    finally:
        r.close()
    with pytest.raises(ValueError, match="expected one of"):
        make_renderer("nope")
    with pytest.raises(ValueError, match="shadows"):
        make_renderer("tiny", {"shadows": "maybe"})


def test_a_spec_and_its_resolved_json_are_the_same_spec():
    """Workers get ``spec.resolved()`` and re-validate it; it must seed the same samples."""
    specs = [*(REPO / "examples").glob("*.yaml"), *(REPO / "benchmarks").glob("*.yaml")]
    for path in sorted(specs):
        s = load_spec(path)
        r = Spec.model_validate(json.loads(json.dumps(s.resolved())))
        assert r == s and r.scene_hash == s.scene_hash, path.name
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 12))
        weights = {30 + k: float(w) for k, w in enumerate(rng.uniform(0.01, 5, n))}
        s = load_spec({**MINI, "camera": {"fov": {"choice": weights}}})
        r = Spec.model_validate(json.loads(json.dumps(s.resolved())))
        assert r == s and r.scene_hash == s.scene_hash


TOY_BACKEND = '''
"""A test backend: a flat grey image, nothing labelled."""
from typing import Literal

import numpy as np

from synthcv.render import Backend, BackendOptions
from synthcv.scene import RenderResult


class ToyOptions(BackendOptions):
    backend: Literal["toy"] = "toy"
    grey: int = 128


class ToyRenderer:
    name = "toy"
    version = "toy-1"

    def __init__(self, grey: int = 128) -> None:
        self.grey = grey

    def render(self, scene):
        h, w = scene.camera.height, scene.camera.width
        return RenderResult(
            rgb=np.full((h, w, 3), self.grey, np.uint8),
            depth=np.zeros((h, w), np.float32),
            instance=np.zeros((h, w), np.uint16),
            normals=None,
            normals_source="depth-derived",
        )

    def close(self) -> None:
        pass


BACKEND = Backend(
    name="toy",
    options=ToyOptions,
    renderer="synthcv.render.toy:ToyRenderer",
    fork_safe=True,
    normals_source="depth-derived",
    version=lambda: "toy-1",
)
'''


def test_adding_a_backend_is_adding_one_module(tmp_path):
    """A module with ``BACKEND`` on the render package's path is a backend: the spec accepts
    its options, generate renders with it, the manifest describes it. No other edit."""
    (tmp_path / "toy.py").write_text(TOY_BACKEND)
    script = textwrap.dedent(
        f"""
        import json, sys
        import synthcv.render as render
        render.__path__.append({str(tmp_path)!r})
        from synthcv.pipeline import generate
        spec = {json.dumps(MINI)}
        spec["renderer"] = {{"backend": "toy", "grey": 77}}
        spec["image"] = {{"width": 16, "height": 12}}
        m = generate(spec, {str(tmp_path / "out")!r}, count=2, progress=False)
        import synthcv
        ds = synthcv.open_dataset({str(tmp_path / "out")!r})
        print(json.dumps({{"backend": m["backend"], "grey": int(ds[1]["rgb"].max())}}))
        """
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got == {
        "backend": {"name": "toy", "version": "toy-1", "normals_source": "depth-derived"},
        "grey": 77,
    }


def test_new_optional_fields_leave_existing_scene_hashes_alone():
    """A field listed in HASH_STABLE_OPTIONAL (how a future asset kind adds its key) is left
    out of the resolved spec while unset, so existing specs keep their scene hash."""
    from typing import ClassVar

    from synthcv.spec import AssetSpec

    class AssetSpecWithOption(AssetSpec):
        HASH_STABLE_OPTIONAL: ClassVar[frozenset[str]] = AssetSpec.HASH_STABLE_OPTIONAL | {
            "posture"
        }
        posture: str | None = None

    old = AssetSpec(primitive="cube")
    new = AssetSpecWithOption(primitive="cube")
    assert new.model_dump(mode="json") == old.model_dump(mode="json")
    set_ = AssetSpecWithOption(primitive="cube", posture="seated").model_dump(mode="json")
    assert set_["posture"] == "seated"
    # and the mechanism leaves today's resolved specs exactly as they were
    assert load_spec(REPO / "examples" / "tabletop.yaml").scene_hash.startswith("5eabc3c6ba30")


def test_reused_lists_are_the_same_objects_refilled():
    from synthcv.render.pybullet_lists import ReusedLists

    lists = ReusedLists()
    a = lists.rows("vertices", np.arange(6.0).reshape(2, 3))
    first_row = a[0]
    assert a == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    b = lists.rows("vertices", np.ones((3, 3)))
    assert b is a and b[0] is first_row and b == [[1.0, 1.0, 1.0]] * 3
    assert lists.rows("vertices", np.zeros((1, 3))) == [[0.0, 0.0, 0.0]]
    assert lists.rows("normals", np.ones((1, 3))) is not a  # one list per argument
    assert lists.flat("indices", np.arange(4)) == [0, 1, 2, 3]


def test_rendering_a_new_mesh_every_sample_holds_no_python_objects():
    """pybullet keeps the lists it is given; a new glyph per sample once grew 1.4 MB each."""
    import gc

    from synthcv.pipeline import render_sample

    spec = load_spec(
        {
            "count": 60,
            "image": {"width": 28, "height": 28, "channels": 1},
            "renderer": {"backend": "tiny", "shadows": False},
            "camera": {"distance": 0.3, "elevation": 90, "fov": 30},
            "objects": {
                "count": 1,
                "pose": {"x": 0, "y": 0, "z": 0, "rotation": "upright", "yaw": 0},
                "classes": {
                    "2": {
                        "asset": {
                            "glyph": "2",
                            "font": "hand",
                            "height": 0.1,
                            "style": {"randint": [0, 10**6]},
                        }
                    }
                },
            },
            "physics": {"enabled": True, "steps": 2},
        }
    )
    renderer = make_renderer("tiny", {"shadows": False})
    for i in range(10):
        render_sample(spec, i, renderer)
    gc.collect()
    before = len(gc.get_objects())
    for i in range(10, 40):
        render_sample(spec, i, renderer)
    gc.collect()
    # before the fix: ~6,800 more objects per sample (the corner lists of every mesh)
    assert len(gc.get_objects()) - before < 3000
