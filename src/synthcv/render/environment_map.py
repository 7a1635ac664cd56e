"""Environment maps (HDRIs): which are bundled, how a file is read, how a direction looks one
up, and what sun and ambient light a map amounts to (docs/environments.md).

Why here: both backends read the same map with the same convention. Cycles lights the scene
from the map itself; the tiny backend draws its background from the map through the camera's
rays and approximates its light by one sun (the map's brightest region) and an ambient level,
which :func:`estimate_lighting` derives once per map.

Convention (Blender's, measured against Cycles renders): a world direction ``d`` (z up) reads
the equirectangular image at ``u = 0.5 - atan2(d_y, d_x) / 2π`` (left to right) and
``v = acos(d_z) / π`` (top to bottom), so the image centre looks along -x and +y is a quarter
turn to the left of it. ``rotation`` turns the map counter-clockwise seen from above (as every
azimuth in a spec): a feature at azimuth φ appears at φ + rotation.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The CC0 Poly Haven maps inside the ``bpy`` wheel (datafiles/studiolights/world, 1K EXR).
BUNDLED_HDRIS = (
    "city",
    "courtyard",
    "forest",
    "interior",
    "night",
    "studio",
    "sunrise",
    "sunset",
)
#: Files a user's map may be (high dynamic range, linear: what OpenImageIO reads as radiance).
HDRI_SUFFIXES = (".exr", ".hdr")
#: Pixels within this angle of the brightest direction, and at least SUN_FRACTION of its
#: luminance, form the "sun" the tiny backend lights with.
SUN_RADIUS_DEG = 12.0
SUN_FRACTION = 0.1
#: A white Lambertian surface facing the tiny backend's sun receives SUN_SCALE * intensity (the
#: same constant as the cycles backend's sun).
SUN_SCALE = 0.7


class EnvironmentMapError(ValueError):
    """A map that cannot be found or read; the message names the file."""


def bundled_dir() -> Path | None:
    """Where the bpy wheel keeps its world HDRIs, found without importing bpy (seconds)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or spec.origin is None:
        return None
    hits = sorted(Path(spec.origin).parent.glob("*/datafiles/studiolights/world"))
    return hits[-1] if hits else None


def resolve(name_or_path: str) -> str:
    """Absolute path of a bundled map name (``forest``) or of a user's EXR/HDR file."""
    if name_or_path in BUNDLED_HDRIS:
        root = bundled_dir()
        if root is None:
            raise EnvironmentMapError(
                f"world.hdri: {name_or_path!r} is bundled with the bpy package, which is not "
                "installed"
            )
        path = root / f"{name_or_path}.exr"
    else:
        path = Path(name_or_path)
    if not path.is_file():
        raise EnvironmentMapError(f"world.hdri: {str(path)!r} does not exist")
    return str(path)


@functools.lru_cache(maxsize=8)
def load(path: str) -> np.ndarray:
    """The map as linear RGB radiance, (H, W, 3) float32, rows top-down; cached per process.

    Read with the OpenImageIO bindings that ship inside bpy (EXR, Radiance HDR, and every
    other format OpenImageIO reads), so no second image library is needed.
    """
    from synthcv.render import _blender_compat as compat

    oiio = compat.oiio()
    inp = oiio.ImageInput.open(path)
    if inp is None:
        raise EnvironmentMapError(f"world.hdri: cannot read {path!r}: {oiio.geterror()}")
    try:
        pixels = np.asarray(inp.read_image("float"), dtype=np.float32)
    finally:
        inp.close()
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[0] < 2 or pixels.shape[1] < 2:
        raise EnvironmentMapError(f"world.hdri: {path!r} is not an image ({pixels.shape})")
    rgb = np.repeat(pixels[..., :1], 3, axis=2) if pixels.shape[2] < 3 else pixels[..., :3]
    if not np.isfinite(rgb).all():
        raise EnvironmentMapError(f"world.hdri: {path!r} has non-finite pixels")
    rgb = np.maximum(rgb, 0.0)
    rgb.setflags(write=False)
    return rgb


def rotate_z(d: np.ndarray, degrees: float) -> np.ndarray:
    """Directions (..., 3) turned counter-clockwise about +z."""
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    out = np.array(d, dtype=np.float64, copy=True)
    out[..., 0] = c * d[..., 0] - s * d[..., 1]
    out[..., 1] = s * d[..., 0] + c * d[..., 1]
    return out


def direction_to_pixel(d: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Continuous (column, row) image coordinates of unrotated world directions (..., 3)."""
    d = np.asarray(d, dtype=np.float64)
    n = np.maximum(np.linalg.norm(d, axis=-1), 1e-300)
    u = (0.5 - np.arctan2(d[..., 1], d[..., 0]) / (2 * math.pi)) % 1.0
    v = np.arccos(np.clip(d[..., 2] / n, -1.0, 1.0)) / math.pi
    return u * width, v * height


def pixel_directions(width: int, height: int) -> np.ndarray:
    """Unit world direction of each pixel centre of an unrotated map, (H, W, 3)."""
    u = (np.arange(width) + 0.5) / width
    v = (np.arange(height) + 0.5) / height
    phi = (0.5 - u) * 2 * math.pi  # atan2(y, x)
    theta = v * math.pi
    st = np.sin(theta)[:, None]
    return np.stack(
        [
            st * np.cos(phi)[None, :],
            st * np.sin(phi)[None, :],
            np.broadcast_to(np.cos(theta)[:, None], (height, width)),
        ],
        axis=-1,
    )


def lookup(env: np.ndarray, directions: np.ndarray, rotation: float = 0.0) -> np.ndarray:
    """Radiance seen along world ``directions`` (..., 3) in a map turned by ``rotation``
    degrees; bilinear between pixel centres, wrapping around in azimuth."""
    h, w = env.shape[:2]
    x, y = direction_to_pixel(rotate_z(np.asarray(directions), -rotation), w, h)
    x, y = x - 0.5, np.clip(y - 0.5, 0.0, h - 1.0)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0w, x1w = x0 % w, (x0 + 1) % w
    y1 = np.minimum(y0 + 1, h - 1)
    top = env[y0, x0w] * (1 - fx) + env[y0, x1w] * fx
    bottom = env[y1, x0w] * (1 - fx) + env[y1, x1w] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


@dataclass(frozen=True)
class MapLighting:
    """What an unrotated map amounts to for a renderer with one sun and an ambient term."""

    sun_direction: tuple[float, float, float]  # unit, towards the brightest region
    sun_color: tuple[float, float, float]  # max channel 1
    sun_intensity: float  # a white surface facing it receives SUN_SCALE * this
    ambient: float  # cosine-weighted radiance on an upward surface from the rest of the map


@functools.lru_cache(maxsize=8)
def estimate_lighting(path: str) -> MapLighting:
    """The map's brightest region as a sun, everything else as ambient (an approximation:
    the tiny backend has one directional light; Cycles uses the whole map)."""
    env = load(path).astype(np.float64)
    h, w = env.shape[:2]
    dirs = pixel_directions(w, h)
    theta = (np.arange(h) + 0.5) / h * math.pi
    solid = (2 * math.pi / w) * (math.pi / h) * np.sin(theta)[:, None] * np.ones((1, w))
    lum = env @ np.array([0.2126, 0.7152, 0.0722])
    peak = np.unravel_index(int(np.argmax(lum)), lum.shape)
    centre = dirs[peak]
    near = dirs @ centre > math.cos(math.radians(SUN_RADIUS_DEG))
    sun = near & (lum >= SUN_FRACTION * lum[peak])
    weight = (env * solid[..., None])[sun]  # radiance × solid angle: irradiance it delivers
    irradiance = weight.sum(axis=0)
    direction = (dirs[sun] * (lum * solid)[sun][:, None]).sum(axis=0)
    direction /= max(np.linalg.norm(direction), 1e-300)
    up_cos = np.clip(dirs[..., 2], 0.0, None)
    rest = ~sun
    ambient_rgb = (env * (up_cos * solid)[..., None])[rest].sum(axis=0) / math.pi
    radiance = irradiance / math.pi  # a white Lambertian surface facing the sun
    peak_channel = max(float(radiance.max()), 1e-300)
    color = tuple(float(c) for c in radiance / peak_channel)
    return MapLighting(
        sun_direction=tuple(float(c) for c in direction),
        sun_color=color,  # type: ignore[arg-type]
        sun_intensity=peak_channel / SUN_SCALE,
        ambient=float(ambient_rgb @ np.array([0.2126, 0.7152, 0.0722])),
    )
