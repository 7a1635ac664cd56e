"""Names of the recorded scene factors (``samples.parquet`` columns) across format versions.

Since format version 2 every factor is named by the spec path it was drawn from
(``lights.sun.elevation``, ``camera.look_at.x``, ``ground.color.r``). Version-1 datasets used
older names; :data:`V1_FACTOR_RENAMES` maps each of those to its current name, so readers can
present old datasets under the new names. A leaf module: it imports nothing from synthcv.
"""

from __future__ import annotations

V1_FACTOR_RENAMES: dict[str, str] = {
    "light.elevation": "lights.sun.elevation",
    "light.azimuth": "lights.sun.azimuth",
    "light.intensity": "lights.sun.intensity",
    "light.color_r": "lights.sun.color.r",
    "light.color_g": "lights.sun.color.g",
    "light.color_b": "lights.sun.color.b",
    "light.ambient": "lights.ambient",
    "camera.look_at_x": "camera.look_at.x",
    "camera.look_at_y": "camera.look_at.y",
    "camera.look_at_z": "camera.look_at.z",
    "ground.color_r": "ground.color.r",
    "ground.color_g": "ground.color.g",
    "ground.color_b": "ground.color.b",
}
"""Version-1 factor name → current name (names not listed are unchanged)."""
