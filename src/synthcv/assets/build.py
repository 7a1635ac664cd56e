"""``build_mesh``: one entry point for every asset kind, with an LRU cache of finished meshes.

The kind of an asset dict (its one kind key) is looked up in :mod:`synthcv.assets.kinds`,
which says how to build it and what else its cache key depends on.

The spec sampler calls it with realized plain dicts many times per dataset (the same few assets
in every sample), so meshes are cached by a canonical, hashable form of the dict. Cached meshes
are shared: their arrays are read-only, and :func:`scale_mesh` returns a new Mesh.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from synthcv.assets import kinds
from synthcv.assets._common import AssetError, readonly
from synthcv.scene import Mesh

CACHE_SIZE = 256
_cache: OrderedDict[Hashable, Mesh] = OrderedDict()
_lock = threading.Lock()


def _freeze(value: Any, where: str = "asset") -> Hashable:
    """Canonical hashable form: mappings sorted by key, sequences as tuples, numbers as floats."""
    if isinstance(value, Mapping):
        return ("{}", tuple(sorted((str(k), _freeze(v, f"{where}.{k}")) for k, v in value.items())))
    if isinstance(value, str | bytes | bool | type(None)):
        return value
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    if isinstance(value, np.ndarray | Sequence):
        return ("[]", tuple(_freeze(v, f"{where}[]") for v in value))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise AssetError(f"{where}: got {value!r} ({type(value).__name__}), expected plain data")


def _cache_key(asset: Mapping[str, Any], kind: kinds.AssetKind) -> Hashable:
    """The dict's canonical form, the kind's extras, and the kind itself: a kind registered
    later under the same key (a test's temporary kind) never receives another kind's meshes."""
    extra = kind.cache_key(asset) if kind.cache_key is not None else ()
    return (id(kind), _freeze(asset), *extra)


def build_mesh(asset: Mapping[str, Any]) -> Mesh:
    """The Mesh of a realized asset dict (one kind key: primitive/pybullet/mesh/glyph...), cached.

    The same dict (by value) returns the same Mesh object; never mutate it.
    """
    if not isinstance(asset, Mapping):
        raise AssetError(f"asset got {asset!r}, expected a mapping such as {{'primitive': 'cube'}}")
    kind = kinds.kind_of(asset)
    key = _cache_key(asset, kind)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    mesh = kind.build(asset)
    with _lock:
        mesh = _cache.setdefault(key, mesh)  # a racing thread may have built it too
        _cache.move_to_end(key)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return mesh


def clear_cache() -> None:
    """Forget every cached mesh (tests, or after editing bundled files in place)."""
    with _lock:
        _cache.clear()


def _factors(s: float | Sequence[float]) -> np.ndarray:
    try:
        f = np.asarray(s, dtype=np.float64)
        f = np.full(3, float(f)) if f.ndim == 0 else f.reshape(3)
    except (TypeError, ValueError) as exc:
        raise AssetError(f"scale got {s!r}, expected a number or 3 numbers") from exc
    if not all(math.isfinite(x) and x > 0 for x in f):
        raise AssetError(f"scale got {s!r}, expected positive finite factor(s)")
    return f


def _scaled_dims(mesh: Mesh, f: np.ndarray) -> tuple[str | None, dict[str, float]]:
    """Analytic shape after scaling, or (None, {}) where the scaling breaks its symmetry."""
    p, d = mesh.primitive, mesh.dims
    same = lambda a, b: math.isclose(a, b, rel_tol=1e-12)  # noqa: E731
    if p is None or not d:
        return p, dict(d)
    if p == "cube":
        return p, {"x": d["x"] * f[0], "y": d["y"] * f[1], "z": d["z"] * f[2]}
    uniform = same(f[0], f[1]) and same(f[1], f[2])
    if p == "sphere" and uniform:
        return p, {"radius": d["radius"] * f[0]}
    if p in ("cylinder", "cone") and same(f[0], f[1]):
        return p, {"radius": d["radius"] * f[0], "height": d["height"] * f[2]}
    if p == "capsule" and uniform:  # stretched along z its caps would no longer be round
        return p, {"radius": d["radius"] * f[0], "height": d["height"] * f[2]}
    if p == "torus" and uniform:
        return p, {k: d[k] * f[0] for k in ("major_radius", "minor_radius")}
    return None, {}


def scale_mesh(mesh: Mesh, s: float | Sequence[float]) -> Mesh:
    """A new Mesh scaled by ``s`` (one factor or per-axis x, y, z) about its centre.

    Vertices, keypoints and dims scale; faces, UVs and source are kept. A non-uniform scale that
    turns a sphere into an ellipsoid (etc.) clears ``primitive`` so physics uses the hull.
    """
    f = _factors(s)
    primitive, dims = _scaled_dims(mesh, f)
    return replace(
        mesh,
        vertices=readonly(mesh.vertices * f, np.float64),
        keypoints={k: readonly(v * f, np.float64) for k, v in mesh.keypoints.items()},
        keypoint_depth={k: d * float(np.min(f)) for k, d in mesh.keypoint_depth.items()},
        primitive=primitive,
        dims={k: float(v) for k, v in dims.items()},
        unscaled=mesh.unscaled or mesh,
        scale_factors=tuple(float(a * b) for a, b in zip(mesh.scale_factors, f, strict=True)),
    )
