"""The asset-kind registry: every kind is declared once and reached through the registry."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from synthcv.assets import AssetError, build_mesh, clear_cache, kinds, native_texture
from synthcv.assets._common import check_keys, finalize, positive
from synthcv.distributions import constant
from synthcv.preflight import asset_problems, check_resources
from synthcv.sampler import sample_scene
from synthcv.spec import ASSET_KINDS, AssetSpec, ClassSpec, Num, load_spec

REPO = Path(__file__).resolve().parents[1]


def test_registry_lists_the_built_in_kinds_in_spec_order():
    assert kinds.names() == ("primitive", "pybullet", "mesh", "glyph", "person")
    assert kinds.names() == ASSET_KINDS
    modules = {
        "primitive": "synthcv.assets.primitives",
        "pybullet": "synthcv.assets.pybullet_assets",
        "mesh": "synthcv.assets.meshfile",
        "glyph": "synthcv.assets.glyphs",
        "person": "synthcv.assets.person",
    }
    for kind in kinds.all_kinds():
        assert isinstance(kind, kinds.AssetKind)
        assert kind.build.__module__ == modules[kind.key]  # declared in the kind's own module
    assert kinds.kind_of({"glyph": "7", "font": "hand"}).key == "glyph"
    with pytest.raises(AssetError, match="exactly one of"):
        kinds.kind_of({"glyph": "7", "primitive": "cube"})
    with pytest.raises(AssetError, match="unknown asset kind 'glpyh' \\(did you mean 'glyph'"):
        kinds.get("glpyh")


def _obj_with_texture(tmp_path: Path) -> Path:
    Image.new("RGB", (4, 4), (200, 10, 10)).save(tmp_path / "skin.png")
    (tmp_path / "box.mtl").write_text("newmtl m\nmap_Kd skin.png\n")
    v = [(x, y, z) for x in (0, 1) for y in (0, 1) for z in (0, 1)]
    faces = [(1, 3, 2), (2, 3, 4), (5, 6, 7), (6, 8, 7), (1, 2, 5), (2, 6, 5)]
    faces += [(3, 7, 4), (4, 7, 8), (1, 5, 3), (3, 5, 7), (2, 4, 6), (4, 8, 6)]
    text = "mtllib box.mtl\nusemtl m\n" + "".join(f"v {a} {b} {c}\n" for a, b, c in v)
    text += "".join(f"f {a} {b} {c}\n" for a, b, c in faces)
    path = tmp_path / "box.obj"
    path.write_text(text)
    return path


@pytest.mark.parametrize("key", ["primitive", "pybullet", "mesh", "glyph"])
def test_build_texture_and_factors_are_asked_of_the_registered_kind(tmp_path, key):
    """Wrap each built-in kind in a spy: build_mesh, native_texture and the sampler's
    per-object factors must all go through it."""
    asset = {
        "primitive": {"primitive": "cube", "size": 0.05},
        "pybullet": {"pybullet": "duck"},
        "mesh": {"mesh": str(_obj_with_texture(tmp_path)), "size": 0.05},
        "glyph": {"glyph": "7"},
    }[key]
    original = kinds.get(key)
    calls: list[str] = []

    def spy(name):
        fn = getattr(original, name)
        return lambda *a: (calls.append(name), fn(*a))[1]

    wrapped = dataclasses.replace(
        original, build=spy("build"), native_texture=spy("native_texture"), factors=spy("factors")
    )
    clear_cache()
    with kinds.registered(wrapped, replace=True):
        mesh = build_mesh(asset)
        tex = native_texture(asset)
        spec = load_spec(
            {
                "objects": {"classes": {"c": {"asset": asset, "material": {"texture": "native"}}}},
                "physics": {"enabled": False},
            }
        )
        scene = sample_scene(spec, 0)
    assert calls.count("build") == 1  # the sampler's build is served from the cache
    assert calls.count("native_texture") == 2 and calls.count("factors") == 1
    assert scene.objects[0].mesh.unscaled is mesh or scene.objects[0].mesh is mesh
    if key == "pybullet":
        assert Path(tex).name == "duckCM.png"
    elif key == "mesh":
        assert Path(tex).name == "skin.png"
        assert scene.objects[0].material.texture == tex
    else:
        assert tex is None
    if key == "glyph":
        assert scene.objects[0].attributes["glyph.text"] == "7"
        assert scene.objects[0].attributes["glyph.font"] == "DejaVuSans"
    assert kinds.get(key) is original  # the spy is gone after the block


def test_mesh_kind_cache_key_follows_the_file(tmp_path):
    path = _obj_with_texture(tmp_path)
    stamp = kinds.get("mesh").cache_key({"mesh": str(path)})
    assert stamp[0] == str(path.resolve()) and stamp[2] == path.stat().st_size
    assert kinds.get("mesh").cache_key({"mesh": str(tmp_path / "gone.obj")}) == (
        str((tmp_path / "gone.obj").resolve()),
    )
    assert kinds.get("primitive").cache_key is None


# --------------------------------------------------------------------------- a toy kind


def _build_prism(asset):
    """A triangular prism: an equilateral triangle of side ``prism`` extruded by ``depth``."""
    check_keys(asset, ("prism", "depth", "keypoints"))
    side = positive(asset, "prism")
    depth = positive(asset, "depth", 0.02)
    ang = np.radians([90.0, 210.0, 330.0])
    tri = np.c_[np.cos(ang), np.sin(ang)] * side / np.sqrt(3.0)
    v = np.r_[np.c_[tri, np.zeros(3)], np.c_[tri, np.full(3, depth)]]
    f = [(0, 2, 1), (3, 4, 5), (0, 1, 4), (0, 4, 3), (1, 2, 5), (1, 5, 4), (2, 0, 3), (2, 3, 5)]
    return finalize(asset, v, np.array(f), f"prism:{side:g}")


PRISM = kinds.AssetKind(
    key="prism",
    build=_build_prism,
    factors=lambda asset, mesh: {"prism.side": float(asset["prism"]), "prism.faces": 8},
)


class PrismAssetSpec(AssetSpec):
    """What a spec field for the toy kind looks like (the real AssetSpec is not edited)."""

    prism: Num | None = None


@pytest.fixture
def prism():
    with kinds.registered(PRISM) as kind:
        yield kind


def test_a_kind_registered_in_a_test_builds_passes_preflight_and_records_factors(prism):
    assert kinds.names()[-1] == "prism"
    mesh = build_mesh({"prism": 0.1})
    assert mesh.source == "prism:0.1" and len(mesh.faces) == 8
    np.testing.assert_allclose(
        mesh.vertices.max(0) - mesh.vertices.min(0), [0.1, 0.0866, 0.02], atol=1e-4
    )
    with pytest.raises(AssetError, match=r"asset \{prism: 0.1\}: unknown key 'size'"):
        build_mesh({"prism": 0.1, "size": 2})

    a = PrismAssetSpec(prism={"choice": [0.05, 0.08]}, depth=constant(0.01))
    assert a.kind == "prism"
    assert asset_problems("objects.classes.p.asset", a) == []
    bad = PrismAssetSpec(prism={"choice": [0.05, -1.0]})
    [problem] = asset_problems("objects.classes.p.asset", bad)
    assert problem.startswith("objects.classes.p.asset: asset {prism: -1.0}: prism got -1.0")

    base = load_spec({"objects": {"classes": {"p": {"asset": {"primitive": "cube"}}}}})
    objects = base.objects.model_copy(update={"classes": {"p": ClassSpec(asset=a, scale=2.0)}})
    spec = base.model_copy(update={"objects": objects})
    assert check_resources(spec) == []
    scene = sample_scene(spec, 0, scene_hash="fixed")
    [obj] = scene.objects
    assert obj.attributes["asset"].startswith("prism:") and obj.attributes["scale"] == 2.0
    assert obj.attributes["prism.side"] in (0.05, 0.08) and obj.attributes["prism.faces"] == 8
    assert list(obj.attributes)[:7] == [
        "asset",
        "scale",
        "color_h",
        "color_s",
        "color_v",
        "prism.side",
        "prism.faces",
    ]


def test_unregistered_kind_is_unknown_again():
    assert "prism" not in kinds.names()
    with pytest.raises(AssetError, match="exactly one of"):
        build_mesh({"prism": 0.1})
    with pytest.raises(ValueError, match="already registered"):
        kinds.register(dataclasses.replace(PRISM, key="glyph"))


def test_import_assets_stays_light():
    code = (
        "import sys, synthcv.assets, synthcv.spec; "
        "from synthcv.assets import kinds; kinds.all_kinds(); "
        "print(sorted(m for m in ('trimesh', 'shapely', 'matplotlib', 'pybullet', "
        "'pybullet_data', 'torch') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    assert out.strip() == "[]"
