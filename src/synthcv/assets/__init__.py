"""The asset library: realized asset dicts → immutable, cached :class:`~synthcv.scene.Mesh`.

Kinds (exactly one key per dict): ``primitive`` (cube, sphere, cylinder, cone, capsule, torus),
``pybullet`` (objects bundled with pybullet_data), ``mesh`` (a user OBJ/STL/PLY/GLB file) and
``glyph`` (a font character extruded into a solid). Each kind is declared once, in its own
module, and listed in the registry :mod:`synthcv.assets.kinds`. See docs/assets.md.

Importing this package is light: trimesh, shapely and matplotlib load only when a mesh of a
kind that needs them is first built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synthcv.assets import kinds
from synthcv.assets._common import AssetError
from synthcv.assets.build import build_mesh, clear_cache, scale_mesh
from synthcv.assets.glyphs import available_fonts, glyph_outline
from synthcv.assets.kinds import AssetKind
from synthcv.assets.primitives import PRIMITIVES
from synthcv.assets.pybullet_assets import available_pybullet_assets
from synthcv.assets.textures import available_textures, texture_path

__all__ = [
    "PRIMITIVES",
    "AssetError",
    "AssetKind",
    "available_fonts",
    "available_pybullet_assets",
    "available_textures",
    "build_mesh",
    "clear_cache",
    "glyph_outline",
    "kinds",
    "native_texture",
    "scale_mesh",
    "texture_path",
]


def native_texture(asset: Mapping[str, Any]) -> str | None:
    """The image a bundled or file mesh's own material uses (OBJ ``map_Kd``), if any.

    Lets a spec say "use the asset's own texture" (e.g. the duck's duckCM.png, the tray's
    tray.jpg); primitives and glyphs have none. Asked of the asset's kind (see ``kinds``).
    """
    return kinds.kind_of(asset).native_texture(asset)
