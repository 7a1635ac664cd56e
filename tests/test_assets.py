"""Asset library: geometry truth of every asset kind, caching, scaling and error messages."""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest
import trimesh
from shapely.geometry import Polygon

from synthcv.assets import (
    PRIMITIVES,
    AssetError,
    available_fonts,
    available_pybullet_assets,
    available_textures,
    build_mesh,
    clear_cache,
    glyph_outline,
    native_texture,
    scale_mesh,
    texture_path,
)
from synthcv.scene import Mesh


def solid(mesh: Mesh) -> trimesh.Trimesh:
    """The mesh with coincident vertices merged (UV seams split them on purpose)."""
    return trimesh.Trimesh(mesh.vertices, mesh.faces, process=True)


def assert_contract(mesh: Mesh) -> None:
    """What every built mesh promises: dtypes, bbox-centred, read-only, valid indices."""
    assert mesh.vertices.dtype == np.float64 and mesh.vertices.shape[1] == 3
    assert mesh.faces.dtype == np.int32 and mesh.faces.shape[1] == 3
    assert mesh.faces.min() >= 0 and mesh.faces.max() < len(mesh.vertices)
    lo, hi = mesh.vertices.min(axis=0), mesh.vertices.max(axis=0)
    np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-12)
    assert not mesh.vertices.flags.writeable and not mesh.faces.flags.writeable
    if mesh.uv is not None:
        assert mesh.uv.shape == (len(mesh.vertices), 2) and not mesh.uv.flags.writeable


# --- primitives -------------------------------------------------------------------------------

PRIMITIVE_CASES = [
    ({"primitive": "cube", "dims": [0.1, 0.2, 0.3]}, [0.1, 0.2, 0.3], 0.1 * 0.2 * 0.3),
    ({"primitive": "cube", "size": 0.07}, [0.07] * 3, 0.07**3),
    ({"primitive": "sphere", "radius": 0.04}, [0.08] * 3, 4 / 3 * math.pi * 0.04**3),
    (
        {"primitive": "cylinder", "radius": 0.03, "height": 0.2},
        [0.06, 0.06, 0.2],
        math.pi * 0.03**2 * 0.2,
    ),
    (
        {"primitive": "cone", "radius": 0.05, "height": 0.08},
        [0.1, 0.1, 0.08],
        math.pi * 0.05**2 * 0.08 / 3,
    ),
    (
        {"primitive": "capsule", "radius": 0.02, "height": 0.1},
        [0.04, 0.04, 0.1],
        math.pi * 0.02**2 * 0.06 + 4 / 3 * math.pi * 0.02**3,
    ),
    (
        {"primitive": "torus", "major_radius": 0.06, "minor_radius": 0.015},
        [0.15, 0.15, 0.03],
        2 * math.pi**2 * 0.06 * 0.015**2,
    ),
]


@pytest.mark.parametrize(("asset", "extents", "volume"), PRIMITIVE_CASES)
def test_primitive_extents_volume_and_closed_surface(asset, extents, volume):
    mesh = build_mesh(asset)
    assert_contract(mesh)
    np.testing.assert_allclose(mesh.extents, extents, rtol=1e-12, atol=1e-15)
    s = solid(mesh)
    assert s.is_watertight and s.is_winding_consistent
    assert s.volume > 0  # outward (counter-clockwise) winding
    assert s.volume == pytest.approx(volume, rel=0.04)  # polygonal approximation of curves
    assert mesh.source == f"primitive:{asset['primitive']}"
    assert mesh.primitive == asset["primitive"]
    assert mesh.uv is not None and mesh.uv.min() >= 0 and mesh.uv.max() <= 1


def test_primitive_dims_are_exact_and_defaults_documented():
    assert build_mesh({"primitive": "cube", "dims": [0.1, 0.2, 0.3]}).dims == {
        "x": 0.1,
        "y": 0.2,
        "z": 0.3,
    }
    assert build_mesh({"primitive": "sphere"}).dims == {"radius": 0.05}
    assert build_mesh({"primitive": "cylinder"}).dims == {"radius": 0.05, "height": 0.1}
    assert build_mesh({"primitive": "capsule", "height": 0.3}).dims == {
        "radius": 0.05,
        "height": 0.3,
    }
    assert build_mesh({"primitive": "torus"}).dims == {"major_radius": 0.05, "minor_radius": 0.02}
    np.testing.assert_allclose(build_mesh({"primitive": "cube"}).extents, 0.1)
    assert set(PRIMITIVES) == {"cube", "sphere", "cylinder", "cone", "capsule", "torus"}


def test_cone_apex_points_up_and_capsule_is_a_sphere_at_minimum_height():
    cone = build_mesh({"primitive": "cone", "radius": 0.05, "height": 0.1})
    top = cone.vertices[np.isclose(cone.vertices[:, 2], 0.05)]
    np.testing.assert_allclose(top[:, :2], 0.0, atol=1e-12)  # the apex is on +z
    capsule = build_mesh({"primitive": "capsule", "radius": 0.05, "height": 0.1})
    assert solid(capsule).is_watertight
    np.testing.assert_allclose(capsule.extents, 0.1)


# --- glyphs -----------------------------------------------------------------------------------


def test_glyph_8_has_two_holes_and_is_a_closed_genus_two_solid():
    outline = glyph_outline("8", "DejaVuSans", height=0.1)
    assert outline.geom_type == "Polygon" and len(outline.interiors) == 2
    mesh = build_mesh({"glyph": "8", "height": 0.1, "depth": 0.02})
    s = solid(mesh)
    assert s.is_watertight and s.is_winding_consistent and s.volume > 0
    assert s.euler_number == -2  # a solid with two through-holes
    filled = Polygon(outline.exterior).area * 0.02
    assert s.volume == pytest.approx(outline.area * 0.02, rel=1e-9)
    assert s.volume < 0.9 * filled  # the holes are really cut out


@pytest.mark.parametrize("font", ["DejaVuSans", "DejaVuSerif-BoldItalic", "STIXGeneral", "cmr10"])
def test_digit_glyphs_are_watertight_with_the_right_topology(font):
    for ch in "0123456789B#":
        outline = glyph_outline(ch, font)
        parts = list(getattr(outline, "geoms", [outline]))
        expected_euler = sum(2 - 2 * len(p.interiors) for p in parts)
        mesh = build_mesh({"glyph": ch, "font": font, "height": 0.08, "depth": 0.01})
        assert_contract(mesh)
        s = solid(mesh)
        assert s.is_watertight, (font, ch)
        assert s.euler_number == expected_euler, (font, ch)
        assert s.volume == pytest.approx(outline.area * 0.8**2 * 0.01, rel=1e-6), (font, ch)
        np.testing.assert_allclose(mesh.extents[1:], [0.08, 0.01], rtol=1e-9)
        assert mesh.source == f"glyph:{font}:{ch}"
    holes = {ch: len(glyph_outline(ch, font).interiors) for ch in "0468B"}
    assert holes["8"] == 2 and holes["B"] == 2 and holes["0"] == 1


def test_glyph_reads_in_the_xy_plane_with_x_right_and_y_up():
    mesh = build_mesh({"glyph": "L", "height": 0.1, "depth": 0.02})
    v = mesh.vertices
    np.testing.assert_allclose(mesh.extents[2], 0.02)  # extruded along z
    bottom = v[v[:, 1] < -0.045]
    top = v[v[:, 1] > 0.045]
    assert top[:, 0].max() < 0  # the stem is on the left (not mirrored)
    assert bottom[:, 0].max() > 0.02  # the foot runs to the right at the bottom (not upside down)


def test_glyph_fit_em_keeps_relative_sizes_and_int_digits_are_accepted():
    small = build_mesh({"glyph": "a", "height": 0.1, "fit": "em"})
    big = build_mesh({"glyph": "A", "height": 0.1, "fit": "em"})
    assert small.extents[1] < big.extents[1] < 0.1
    assert build_mesh({"glyph": 7}).source == "glyph:DejaVuSans:7"  # YAML `glyph: 7`


def test_every_listed_font_builds_a_glyph():
    fonts = available_fonts()
    assert {"DejaVuSans", "DejaVuSans-Bold", "DejaVuSerif", "STIXGeneral", "cmr10"} <= set(fonts)
    assert "LastResortHE-Regular" not in fonts
    from matplotlib import ft2font

    from synthcv.assets.glyphs import resolve_font

    for font in fonts:
        charmap = ft2font.FT2Font(str(resolve_font(font)[1])).get_charmap()
        for code in sorted(charmap):
            if code < 33:
                continue
            try:
                mesh = build_mesh({"glyph": chr(code), "font": font})
            except AssetError as exc:
                assert "no outline" in str(exc)  # a blank glyph: try the next one
                continue
            assert solid(mesh).volume > 0, font
            break
        else:
            pytest.fail(f"font {font} built no glyph at all")


def test_fonts_for_digits_exclude_symbol_and_size_fonts():
    digit_fonts = available_fonts("0123456789")
    assert "DejaVuSans" in digit_fonts and "cmr10" in digit_fonts
    assert not {"cmex10", "cmsy10", "STIXSizOneSymReg", "DejaVuSansDisplay"} & set(digit_fonts)


def test_fonts_by_case_insensitive_name_and_by_path():
    from synthcv.assets.glyphs import font_dir

    a = build_mesh({"glyph": "5", "font": "dejavusans-bold"})
    b = build_mesh({"glyph": "5", "font": str(font_dir() / "DejaVuSans-Bold.ttf")})
    np.testing.assert_allclose(a.vertices, b.vertices)
    assert b.source == f"glyph:{font_dir() / 'DejaVuSans-Bold.ttf'}:5"


@pytest.mark.parametrize(
    ("asset", "pattern"),
    [
        ({"glyph": " "}, r"' ' \(U\+0020\) has no outline in font DejaVuSans"),
        ({"glyph": "Ж", "font": "cmr10"}, r"'Ж' \(U\+0416\) is not in font cmr10"),
        ({"glyph": "ab"}, r"glyph got 'ab', expected exactly one character"),
        (
            {"glyph": "7", "font": "DejaVuSnas"},
            r"unknown font 'DejaVuSnas' \(did you mean 'DejaVuSans'",
        ),
        ({"glyph": "7", "font": "/nowhere/font.ttf"}, r"font file not found: /nowhere/font.ttf"),
        ({"glyph": "7", "fit": "cap"}, r"fit got 'cap'"),
    ],
)
def test_glyph_errors_name_the_character_or_font(asset, pattern):
    with pytest.raises(AssetError, match=pattern):
        build_mesh(asset)


# --- pybullet_data ----------------------------------------------------------------------------

NAMED = available_pybullet_assets(include_random=False)


@pytest.mark.parametrize("name", NAMED)
def test_every_named_pybullet_asset_loads(name):
    mesh = build_mesh({"pybullet": name})
    assert_contract(mesh)
    assert mesh.source == f"pybullet_data:{name}"
    assert 0.01 < mesh.extents.max() < 2.5  # metres: from a domino to a table


def test_pybullet_native_sizes_orientation_and_primitives():
    np.testing.assert_allclose(build_mesh({"pybullet": "cube_small"}).extents, 0.05, rtol=1e-6)
    np.testing.assert_allclose(build_mesh({"pybullet": "jenga"}).extents, [0.15, 0.05, 0.03])
    table = build_mesh({"pybullet": "table"})
    np.testing.assert_allclose(table.extents, [1.5, 1.0, 0.625], rtol=1e-6)  # top + 4 legs
    ball = build_mesh({"pybullet": "sphere_small"})
    assert ball.primitive == "sphere" and ball.dims["radius"] == pytest.approx(0.03, rel=0.01)
    duck = build_mesh({"pybullet": "duck"})
    assert duck.uv is not None  # textured with duckCM.png
    # Turned upright: the duck's height (0.77 native units x 0.05) is now along z.
    assert duck.extents[2] == pytest.approx(1.54 * 0.05, rel=0.01)
    assert duck.extents[1] == pytest.approx(1.153 * 0.05, rel=0.01)


def test_pybullet_size_rescales_the_largest_extent_and_keypoints_stay_declared():
    mesh = build_mesh({"pybullet": "duck", "size": 0.3, "keypoints": {"beak": [0.1, 0, 0.05]}})
    assert mesh.extents.max() == pytest.approx(0.3)
    np.testing.assert_array_equal(mesh.keypoints["beak"], [0.1, 0, 0.05])
    assert mesh.all_keypoints()[0] == ["beak"]


def test_random_objects_sample_loads_and_listing():
    names = available_pybullet_assets()
    randoms = [n for n in names if n.startswith("random:")]
    assert len(randoms) == 999 and "random:168" not in randoms  # shipped with NaN vertices
    for name in randoms[::50]:
        mesh = build_mesh({"pybullet": name})
        assert_contract(mesh)
        assert 0.02 < mesh.extents.max() < 0.5
    assert build_mesh({"pybullet": "random:7"}).source == "pybullet_data:random:007"


@pytest.mark.slow
def test_all_random_objects_load():
    for name in available_pybullet_assets()[len(NAMED) :]:
        assert_contract(build_mesh({"pybullet": name}))


@pytest.mark.parametrize(
    ("asset", "pattern"),
    [
        ({"pybullet": "duk"}, r"unknown pybullet_data asset 'duk' \(did you mean 'duck'"),
        ({"pybullet": "random:1000"}, r"numbered 0\.\.999"),
        ({"pybullet": "random:168"}, r"random_urdfs/168 is broken"),
        ({"pybullet": "duck", "size": -1}, r"size got -1\.0, expected a positive number"),
    ],
)
def test_pybullet_errors(asset, pattern):
    with pytest.raises(AssetError, match=pattern):
        build_mesh(asset)


def test_native_texture_of_bundled_objects():
    assert os.path.basename(native_texture({"pybullet": "duck"})) == "duckCM.png"
    assert os.path.basename(native_texture({"pybullet": "tray"})) == "tray.jpg"
    assert native_texture({"pybullet": "teddy"}) is None
    assert native_texture({"primitive": "cube"}) is None


# --- user mesh files --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".obj", ".stl", ".ply", ".glb"])
def test_mesh_files_load_with_units_and_size(tmp_path, suffix):
    box = trimesh.creation.box((2.0, 4.0, 6.0))
    box.apply_translation([10, 20, 30])  # off-centre on purpose
    path = tmp_path / f"box{suffix}"
    box.export(path)
    mesh = build_mesh({"mesh": str(path), "units": 0.01})
    assert_contract(mesh)
    np.testing.assert_allclose(mesh.extents, [0.02, 0.04, 0.06], rtol=1e-6)
    assert mesh.source == f"file:{path.resolve()}"
    assert solid(mesh).volume > 0
    sized = build_mesh({"mesh": str(path), "units": 0.01, "size": 0.3})
    np.testing.assert_allclose(sized.extents, [0.1, 0.2, 0.3], rtol=1e-6)


def test_mesh_file_scene_is_concatenated_and_inside_out_is_fixed(tmp_path):
    a = trimesh.creation.box((1, 1, 1))
    b = trimesh.creation.box((1, 1, 1))
    b.apply_translation([2, 0, 0])
    path = tmp_path / "two.glb"
    trimesh.Scene([a, b]).export(path)
    np.testing.assert_allclose(build_mesh({"mesh": str(path)}).extents, [3, 1, 1])
    flipped = trimesh.creation.box((1, 1, 1))
    flipped.invert()
    inv = tmp_path / "inv.stl"
    flipped.export(inv)
    assert solid(build_mesh({"mesh": str(inv)})).volume == pytest.approx(1.0)


def test_obj_uvs_survive(tmp_path):
    src = build_mesh({"primitive": "cube"})
    t = trimesh.Trimesh(
        src.vertices, src.faces, visual=trimesh.visual.TextureVisuals(uv=src.uv), process=False
    )
    path = tmp_path / "uv.obj"
    t.export(path)
    mesh = build_mesh({"mesh": str(path)})
    assert mesh.uv is not None and mesh.uv.shape == (len(mesh.vertices), 2)


def test_edited_mesh_file_is_not_served_stale(tmp_path):
    path = tmp_path / "m.stl"
    trimesh.creation.box((1, 1, 1)).export(path)
    first = build_mesh({"mesh": str(path)})
    trimesh.creation.box((2, 1, 1)).export(path)
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)
    np.testing.assert_allclose(build_mesh({"mesh": str(path)}).extents, [2, 1, 1])
    assert first.extents[0] == pytest.approx(1.0)


def test_mesh_file_errors_name_the_path(tmp_path):
    missing = tmp_path / "nope.obj"
    with pytest.raises(AssetError, match=f"mesh file not found: {re.escape(str(missing))}"):
        build_mesh({"mesh": str(missing)})
    garbage = tmp_path / "garbage.obj"
    garbage.write_text("this is not an obj file\n")
    with pytest.raises(AssetError, match=f"{re.escape(str(garbage))} holds no triangles"):
        build_mesh({"mesh": str(garbage)})
    bad_ply = tmp_path / "bad.ply"
    bad_ply.write_bytes(b"\x00garbage" * 8)
    with pytest.raises(AssetError, match=f"cannot read mesh file {re.escape(str(bad_ply))}"):
        build_mesh({"mesh": str(bad_ply)})
    other = tmp_path / "x.fbx"
    other.write_text("")
    with pytest.raises(AssetError, match=r"unsupported mesh format '\.fbx'"):
        build_mesh({"mesh": str(other)})


# --- cache, scaling, keypoints ----------------------------------------------------------------


def test_cache_returns_the_same_immutable_object():
    clear_cache()
    a = build_mesh({"primitive": "cylinder", "radius": 0.02, "height": 0.1})
    b = build_mesh({"height": 0.1, "radius": 0.02, "primitive": "cylinder"})  # order, int/float
    assert a is b
    assert build_mesh({"primitive": "cylinder", "radius": 0.03, "height": 0.1}) is not a
    for arr in (a.vertices, a.faces, a.uv):
        with pytest.raises(ValueError):
            arr[0] = 0
    kp = build_mesh({"primitive": "cube", "keypoints": {"top": [0, 0, 0.05]}})
    with pytest.raises(ValueError):
        kp.keypoints["top"][0] = 1.0
    assert build_mesh({"primitive": "cube", "keypoints": {"top": (0, 0, 0.05)}}) is kp


def test_scale_mesh_scales_vertices_keypoints_and_dims():
    cube = build_mesh({"primitive": "cube", "size": 0.1, "keypoints": {"c": [0.05, 0.05, 0.05]}})
    big = scale_mesh(cube, [1, 2, 3])
    np.testing.assert_allclose(big.extents, [0.1, 0.2, 0.3])
    np.testing.assert_allclose(big.keypoints["c"], [0.05, 0.1, 0.15])
    assert big.dims == pytest.approx({"x": 0.1, "y": 0.2, "z": 0.3}) and big.primitive == "cube"
    assert big.faces is cube.faces and big.uv is cube.uv and big.source == cube.source
    assert not big.vertices.flags.writeable
    np.testing.assert_allclose(cube.extents, 0.1)  # the cached original is untouched
    sphere = build_mesh({"primitive": "sphere", "radius": 0.05})
    assert scale_mesh(sphere, 2).dims == pytest.approx({"radius": 0.1})
    squashed = scale_mesh(sphere, [1, 1, 0.5])
    assert squashed.primitive is None and squashed.dims == {}  # an ellipsoid: use the hull
    cyl = scale_mesh(build_mesh({"primitive": "cylinder"}), [2, 2, 3])
    assert cyl.dims == pytest.approx({"radius": 0.1, "height": 0.3})
    np.testing.assert_allclose(cyl.extents, [0.2, 0.2, 0.3])
    with pytest.raises(AssetError, match="positive finite"):
        scale_mesh(cube, 0)
    with pytest.raises(AssetError, match="a number or 3 numbers"):
        scale_mesh(cube, [1, 2])


def test_default_keypoints_are_box_corners_and_centroid():
    mesh = build_mesh({"primitive": "cube", "dims": [0.1, 0.2, 0.3]})
    assert mesh.keypoints == {}
    names, pts = mesh.all_keypoints()
    assert names[-1] == "centroid" and len(names) == 9
    np.testing.assert_allclose(pts[7], [0.05, 0.1, 0.15])


# --- textures ---------------------------------------------------------------------------------


def test_textures_resolve_by_short_name_or_path(tmp_path):
    names = available_textures()
    assert {"checker_blue", "checker_grid", "checker_huge", "tex256", "uvmap", "duckCM"} <= set(
        names
    )
    for name in names:
        assert os.path.isfile(texture_path(name))
    assert texture_path("checker_blue.png") == texture_path("checker_blue")
    user = tmp_path / "mine.png"
    user.write_bytes(b"\x89PNG")
    assert texture_path(str(user)) == str(user.resolve())
    with pytest.raises(AssetError, match=r"texture 'checker_bleu'.*did you mean 'checker_blue'"):
        texture_path("checker_bleu")


# --- asset dict validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asset", "pattern"),
    [
        (
            {},
            r"expected exactly one of \['primitive', 'pybullet', 'mesh', 'glyph', 'person'\], "
            "got none",
        ),
        ({"primitive": "cube", "glyph": "7"}, r"got \['primitive', 'glyph'\]"),
        ({"primitive": "cub"}, r"unknown primitive 'cub' \(did you mean 'cube'"),
        ({"primitive": "sphere", "raduis": 1}, r"unknown key 'raduis' \(did you mean 'radius'"),
        ({"primitive": "sphere", "radius": -0.1}, r"radius got -0\.1, expected a positive"),
        ({"primitive": "sphere", "radius": "big"}, r"radius got 'big'"),
        ({"primitive": "capsule", "radius": 0.1, "height": 0.1}, r"expected >= 2 \* radius"),
        ({"primitive": "torus", "major_radius": 0.02, "minor_radius": 0.03}, "smaller than"),
        ({"primitive": "cube", "size": 0.1, "dims": [1, 1, 1]}, "either size or dims"),
        ({"primitive": "cube", "dims": [1, 1]}, r"dims got \[1, 1\], expected \[x, y, z\]"),
        ({"primitive": "cube", "keypoints": {"a": [1, 2]}}, r"keypoints\.a got \[1, 2\]"),
        ({"primitive": "cube", "keypoints": {"a": [1, 2, {}]}}, r"keypoints\.a got"),
    ],
)
def test_bad_asset_dicts_are_explained(asset, pattern):
    with pytest.raises(AssetError, match=pattern):
        build_mesh(asset)
    assert issubclass(AssetError, ValueError)
