"""Glyph stroke width and slant: handwriting-like variety that stays a closed solid."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import trimesh

from synthcv.assets import AssetError, build_mesh, glyph_outline


@pytest.mark.parametrize("font", ["DejaVuSans", "DejaVuSerif-Italic", "cmr10", "STIXGeneralBol"])
@pytest.mark.parametrize("char", ["0", "4", "8"])
def test_restyled_glyphs_stay_watertight(font, char):
    for stroke, shear in [(-0.03, 15), (0.05, -20)]:
        m = build_mesh({"glyph": char, "font": font, "stroke": stroke, "shear": shear})
        tm = trimesh.Trimesh(m.vertices, m.faces)
        assert tm.is_watertight and tm.volume > 0


def test_stroke_changes_ink_area_and_shear_slants():
    plain = glyph_outline("1", "DejaVuSans", 0.1)
    bold = glyph_outline("1", "DejaVuSans", 0.1, stroke=0.04)
    thin = glyph_outline("1", "DejaVuSans", 0.1, stroke=-0.02)
    assert thin.area < plain.area < bold.area

    def lean(geom) -> float:  # mean x of the top part minus mean x of the bottom part
        pts = np.asarray(geom.exterior.coords)
        return pts[pts[:, 1] > 0.03, 0].mean() - pts[pts[:, 1] < -0.03, 0].mean()

    # positive shear leans right: the top moves right relative to the bottom
    assert lean(glyph_outline("1", "DejaVuSans", 0.1, shear=20)) - lean(plain) > 0.01


def test_bad_styles_are_explained():
    with pytest.raises(AssetError, match="shear got 80"):
        build_mesh({"glyph": "7", "shear": 80})


FONTS = ["hand", "DejaVuSans", "DejaVuSerif-Italic", "STIXGeneralItalic", "cmr10", "cmti10"]


@pytest.mark.parametrize("font", FONTS)
def test_thinning_saturates_per_glyph_instead_of_erasing_it(font):
    """A range like stroke uniform [-0.06, 0.05] must render every font, not fail on the
    thinnest one: each glyph thins down to its own limit and stays there."""
    for char in "0478":
        areas = [glyph_outline(char, font, 1.0, stroke=s).area for s in (0, -0.02, -0.04, -0.5)]
        assert all(a >= b - 1e-9 for a, b in itertools.pairwise(areas)), areas
        assert areas[-1] > 0.1 * areas[0]  # still ink: eroded by at most 0.8 of its half-width
        m = build_mesh({"glyph": char, "font": font, "stroke": -0.5, "style": 3})
        tm = trimesh.Trimesh(m.vertices, m.faces)
        assert tm.is_watertight and tm.volume > 0


def test_no_bundled_font_loses_a_digit_to_thinning():
    from synthcv.assets.glyphs import available_fonts

    for font in ["hand", *available_fonts("0123456789")]:
        for char in "0123456789":
            g = glyph_outline(char, font, 1.0, stroke=-0.5)
            assert not g.is_empty and g.area > 0, (font, char)


def test_thick_strokes_go_on_thinning_where_thin_fonts_have_stopped():
    def area(font: str, stroke: float) -> float:
        return glyph_outline("4", font, 1.0, stroke=stroke).area

    # cmti10's "4" (mean stroke width 0.059 of its height) stops near -0.023 ...
    assert area("cmti10", -0.03) == pytest.approx(area("cmti10", -0.05), rel=1e-6)
    assert area("cmti10", -0.02) > area("cmti10", -0.03)
    # ... while the hand's pen (0.12 of the height) still thins at -0.04
    assert area("hand", -0.02) > area("hand", -0.03) > area("hand", -0.04)
