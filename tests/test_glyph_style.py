"""Glyph stroke width and slant: handwriting-like variety that stays a closed solid."""

from __future__ import annotations

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
    with pytest.raises(AssetError, match="thins the glyph away"):
        build_mesh({"glyph": "1", "stroke": -0.5})
