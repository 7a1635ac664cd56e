"""Analytic shapes (cube, sphere, cylinder, cone, capsule, torus) as UV-mapped triangle meshes.

Built with numpy alone (no trimesh) because they are the most common assets and must be cheap.
Round shapes are surfaces of revolution about z made by :func:`_lathe`: a profile polyline in the
(r, z) half-plane, swept around z. Walking the profile from the bottom pole, around the outside,
to the top pole makes every triangle wind counter-clockwise seen from outside. The seam column
(θ = 2π) duplicates θ = 0 with u = 1 so textures wrap; positions of duplicated vertices are
bit-identical, so merging coincident vertices yields a closed (watertight) surface.

UV convention: OpenGL style, (0, 0) is the bottom-left of the image, v grows upwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from synthcv.assets._common import (
    AssetError,
    check_keys,
    describe,
    did_you_mean,
    finalize,
    positive,
)
from synthcv.assets.kinds import AssetKind
from synthcv.scene import Mesh

SEGMENTS = 32  # around the z axis
RINGS = 16  # pole to pole on a sphere (8 per capsule hemisphere); a multiple of 4 keeps extents
TORUS_MINOR = 16  # around the tube

PRIMITIVES = ("cube", "sphere", "cylinder", "cone", "capsule", "torus")
DEFAULTS = {
    "size": 0.1,
    "radius": 0.05,
    "height": 0.1,
    "major_radius": 0.05,
    "minor_radius": 0.02,
}
_KEYS = {
    "cube": ("size", "dims"),
    "sphere": ("radius",),
    "cylinder": ("radius", "height"),
    "cone": ("radius", "height"),
    "capsule": ("radius", "height"),
    "torus": ("major_radius", "minor_radius"),
}


def _what(asset: Mapping[str, Any]) -> str:
    return describe(asset, "primitive")


def _cube(dims: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """24 vertices (4 per face, so each face is flat-shaded and carries the full texture)."""
    half = dims / 2.0
    e = np.eye(3)
    # (outward normal, u axis, v axis) with u × v = normal; side faces keep v pointing up (+z).
    frames = [
        (e[0], e[1], e[2]),
        (-e[0], -e[1], e[2]),
        (e[1], -e[0], e[2]),
        (-e[1], e[0], e[2]),
        (e[2], e[0], e[1]),
        (-e[2], e[0], -e[1]),
    ]
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
    verts, uvs, faces = [], [], []
    for k, (n, u, v) in enumerate(frames):
        for su, sv in corners:
            verts.append((n + su * u + sv * v) * half)
            uvs.append(((su + 1) / 2, (sv + 1) / 2))
        b = 4 * k
        faces += [(b, b + 1, b + 2), (b, b + 2, b + 3)]
    return np.array(verts), np.array(faces), np.array(uvs)


def _lathe(
    strips: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]], segments: int = SEGMENTS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Revolve profile strips about z. Each strip: radii r, heights z, and v per point.

    ``v=None`` asks for a planar (top-view) UV mapping, used for flat caps. Strips share no
    vertices, so the borders between them stay sharp (e.g. a cylinder's rim).
    """
    j = np.arange(segments + 1)
    ang = 2 * np.pi * (j % segments) / segments  # seam column reuses θ = 0 exactly
    cos, sin = np.cos(ang), np.sin(ang)
    verts, uvs, faces = [], [], []
    base = 0
    rmax = max(float(np.max(r)) for r, _, _ in strips)
    for r, z, v in strips:
        n = len(r)
        x = r[:, None] * cos[None, :]
        y = r[:, None] * sin[None, :]
        zz = np.broadcast_to(z[:, None], x.shape)
        verts.append(np.stack([x, y, zz], axis=-1).reshape(-1, 3))
        if v is None:
            uv = np.stack([0.5 + x / (2 * rmax), 0.5 + y / (2 * rmax)], axis=-1)
        else:
            uv = np.stack(np.broadcast_arrays(j[None, :] / segments, v[:, None]), axis=-1)
        uvs.append(uv.reshape(-1, 2))
        idx = base + np.arange(n * (segments + 1)).reshape(n, segments + 1)
        for i in range(n - 1):
            a, b = idx[i, :-1], idx[i, 1:]
            c, d = idx[i + 1, 1:], idx[i + 1, :-1]
            if r[i] > 0:  # skip the triangle that collapses onto a bottom pole
                faces.append(np.stack([a, b, c], axis=1))
            if r[i + 1] > 0:  # ... or onto a top pole
                faces.append(np.stack([a, c, d], axis=1))
        base += n * (segments + 1)
    return np.vstack(verts), np.vstack(faces), np.vstack(uvs)


def _arc(radius: float, z0: float, phi0: float, phi1: float, steps: int) -> tuple:
    """Quarter/half circle profile of a sphere-like cap centred at height z0."""
    phi = np.linspace(phi0, phi1, steps + 1)
    r = radius * np.cos(phi)
    r[np.isclose(np.abs(phi), np.pi / 2)] = 0.0  # exact poles
    z = z0 + radius * np.sin(phi)
    return r, z


def _sphere(radius: float):
    r, z = _arc(radius, 0.0, -np.pi / 2, np.pi / 2, RINGS)
    return _lathe([(r, z, np.linspace(0, 1, RINGS + 1))])


def _disc(radius: float, z: float, top: bool):
    """A flat cap, walked pole→rim at the bottom and rim→pole at the top (outward winding)."""
    r = np.array([radius, 0.0]) if top else np.array([0.0, radius])
    return r, np.array([z, z]), None


def _cylinder(radius: float, height: float):
    h = height / 2
    side = (np.array([radius, radius]), np.array([-h, h]), np.array([0.0, 1.0]))
    return _lathe([_disc(radius, -h, top=False), side, _disc(radius, h, top=True)])


def _cone(radius: float, height: float):
    h = height / 2
    side = (np.array([radius, 0.0]), np.array([-h, h]), np.array([0.0, 1.0]))
    return _lathe([_disc(radius, -h, top=False), side])


def _capsule(radius: float, height: float):
    half_cyl = height / 2 - radius
    q = RINGS // 2
    rb, zb = _arc(radius, -half_cyl, -np.pi / 2, 0.0, q)
    rt, zt = _arc(radius, half_cyl, 0.0, np.pi / 2, q)
    if half_cyl > 0:
        r, z = np.concatenate([rb, rt]), np.concatenate([zb, zt])
    else:  # a sphere: the two equators coincide, keep one
        r, z = np.concatenate([rb, rt[1:]]), np.concatenate([zb, zt[1:]])
    arclen = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(r), np.diff(z)))])
    return _lathe([(r, z, arclen / arclen[-1])])


def _torus(major: float, minor: float):
    k = np.arange(TORUS_MINOR + 1)
    psi = -np.pi + 2 * np.pi * (k % TORUS_MINOR) / TORUS_MINOR  # inner equator first, CCW
    r = major + minor * np.cos(psi)
    z = minor * np.sin(psi)
    z[np.isclose(z, 0.0, atol=1e-15 * minor)] = 0.0
    return _lathe([(r, z, k / TORUS_MINOR)])


def build_primitive(asset: Mapping[str, Any]) -> Mesh:
    """Mesh of ``{"primitive": NAME, ...dims}`` with exact ``dims`` for physics shapes."""
    name = asset["primitive"]
    if name not in PRIMITIVES:
        raise AssetError(
            f"{_what(asset)}: unknown primitive {name!r}{did_you_mean(str(name), PRIMITIVES)}; "
            f"expected one of {list(PRIMITIVES)}"
        )
    check_keys(asset, ("primitive", "keypoints", *_KEYS[name]))
    if name == "cube":
        if "dims" in asset and "size" in asset:
            raise AssetError(f"{_what(asset)}: give either size or dims, not both")
        if "dims" in asset:
            raw = asset["dims"]
            if isinstance(raw, Mapping):
                raw = [raw.get(k) for k in "xyz"]
            if not isinstance(raw, list | tuple | np.ndarray) or len(raw) != 3:
                raise AssetError(
                    f"{_what(asset)}: dims got {asset['dims']!r}, expected [x, y, z] in metres"
                )
            d = np.array(
                [positive({**asset, f"dims[{i}]": x}, f"dims[{i}]") for i, x in enumerate(raw)]
            )
        else:
            d = np.full(3, positive(asset, "size", DEFAULTS["size"]))
        v, f, uv = _cube(d)
        dims = {"x": d[0], "y": d[1], "z": d[2]}
    elif name == "sphere":
        radius = positive(asset, "radius", DEFAULTS["radius"])
        v, f, uv = _sphere(radius)
        dims = {"radius": radius}
    elif name in ("cylinder", "cone", "capsule"):
        radius = positive(asset, "radius", DEFAULTS["radius"])
        height = positive(asset, "height", DEFAULTS["height"])
        if name == "capsule" and height < 2 * radius:
            raise AssetError(
                f"{_what(asset)}: height got {height}, expected >= 2 * radius = {2 * radius} "
                "(height is the total length, caps included)"
            )
        v, f, uv = {"cylinder": _cylinder, "cone": _cone, "capsule": _capsule}[name](radius, height)
        dims = {"radius": radius, "height": height}
    else:
        major = positive(asset, "major_radius", DEFAULTS["major_radius"])
        minor = positive(asset, "minor_radius", DEFAULTS["minor_radius"])
        if minor >= major:
            raise AssetError(
                f"{_what(asset)}: minor_radius {minor} must be smaller than "
                f"major_radius {major} (else the tube intersects itself)"
            )
        v, f, uv = _torus(major, minor)
        dims = {"major_radius": major, "minor_radius": minor}
    return finalize(asset, v, f, f"primitive:{name}", uv=uv, primitive=name, dims=dims)


KIND = AssetKind(key="primitive", build=build_primitive)
