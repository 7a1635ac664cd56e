"""Light from point, spot and area lamps on Lambertian surfaces, in Blender's units.

Cycles renders lamps itself; the tiny backend has one directional light, so it adds the lamps'
light per pixel from this function: no shadows, no soft size, Lambertian surfaces (an
approximation, documented in docs/environments.md). The constants are Blender's, measured with
Cycles: a white Lambertian surface facing a 100 W point light 1 m away has radiance 2.51
(100 / 4π²), under a 100 W area light 10.0 (100 / π²), under a sun of strength 1 0.318 (1 / π).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from synthcv.scene import Lamp


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def spot_mask(lamp: Lamp, to_point: np.ndarray) -> np.ndarray:
    """Blender's spot cone: 0 outside the cone, 1 inside, a smoothstep over the outer
    ``spot_blend`` of the cone's cosine range. ``to_point``: unit vectors lamp → point."""
    cos_half = math.cos(math.radians(lamp.spot_angle) / 2)
    cos_axis = to_point @ np.asarray(lamp.direction, dtype=np.float64)
    smooth = (1.0 - cos_half) * lamp.spot_blend
    t = cos_axis - cos_half
    if smooth <= 0:
        return (t > 0).astype(np.float64)
    return np.where(t > 0, _smoothstep(t / smooth), 0.0)


def lamp_radiance(points: np.ndarray, normals: np.ndarray, lamps: Sequence[Lamp]) -> np.ndarray:
    """Linear RGB radiance (N, 3) that white Lambertian surfaces at ``points`` (N, 3) with unit
    ``normals`` (N, 3) send back under ``lamps``."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    normals = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
    out = np.zeros_like(points)
    for lamp in lamps:
        d = np.asarray(lamp.position, dtype=np.float64) - points  # point → lamp
        r2 = np.maximum((d * d).sum(axis=1), 1e-8)
        to_lamp = d / np.sqrt(r2)[:, None]
        cos_surface = np.clip((normals * to_lamp).sum(axis=1), 0.0, None)
        if lamp.kind == "area":
            cos_lamp = np.clip(-to_lamp @ np.asarray(lamp.direction, dtype=np.float64), 0.0, None)
            scale = lamp.power / math.pi**2 * cos_lamp
        else:
            scale = np.full(len(points), lamp.power / (4 * math.pi**2))
            if lamp.kind == "spot":
                scale = scale * spot_mask(lamp, -to_lamp)
        out += (scale * cos_surface / r2)[:, None] * np.asarray(lamp.color, dtype=np.float64)
    return out
