"""Shared helpers of the asset builders: errors, argument checks and the final Mesh assembly.

Every builder ends in :func:`finalize` so that all meshes obey the same contract: float64
vertices centred on their bounding-box centre, int32 faces, read-only arrays (meshes are cached
and shared, so nobody may mutate them), optional UVs and declared keypoints.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from synthcv.scene import Mesh


class AssetError(ValueError):
    """A bad asset description or an asset that cannot be built; the message says which.

    ``key`` and ``detail``, when set, name the asset key at fault (``font``, ``mesh``) and say
    ``got X, expected Y`` about it, so preflight can report ``...asset.font: got X, ...``."""

    def __init__(self, message: str, *, key: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.key = key
        self.detail = detail

    @classmethod
    def at(cls, where: str, key: str, detail: str) -> AssetError:
        """``{where}: {key} {detail}``, remembering the key and the detail."""
        return cls(f"{where}: {key} {detail}", key=key, detail=detail)


def describe(asset: Mapping[str, Any], kind: str | None = None) -> str:
    """Short label of an asset dict for error messages: ``asset {glyph: '7'}``.

    ``kind`` names the kind key; without it the first key is taken (asset dicts put their
    kind first), so this module needs no registry.
    """
    key = kind if kind is not None else next(iter(asset), None)
    if key is not None and key in asset:
        return f"asset {{{key}: {asset[key]!r}}}"
    return f"asset {dict(asset)!r}"


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a close option exists, else an empty string."""
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_keys(asset: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Reject keys a builder does not understand, so typos never pass silently."""
    allowed = list(allowed)
    for key in asset:
        if key not in allowed:
            raise AssetError(
                f"{describe(asset)}: unknown key {key!r}{did_you_mean(key, allowed)}; "
                f"expected some of {sorted(allowed)}"
            )


def positive(asset: Mapping[str, Any], key: str, default: float | None = None) -> float:
    """The finite, strictly positive number at ``asset[key]`` (or ``default`` when absent)."""
    if key not in asset or asset[key] is None:
        if default is None:
            raise AssetError(f"{describe(asset)}: missing required key {key!r}")
        return float(default)
    value = asset[key]
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise AssetError(f"{describe(asset)}: {key} got {value!r}, expected a positive number")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise AssetError(f"{describe(asset)}: {key} got {value!r}, expected a positive number")
    return value


def readonly(array: Any, dtype: Any) -> np.ndarray:
    """A private, write-protected copy of ``array``: cached meshes are shared between callers."""
    out = np.array(array, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


def parse_keypoints(asset: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Declared keypoints ``{name: [x, y, z]}`` (final object frame) as read-only arrays."""
    raw = asset.get("keypoints")
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise AssetError(
            f"{describe(asset)}: keypoints got {type(raw).__name__}, "
            "expected a mapping {name: [x, y, z]}"
        )
    out: dict[str, np.ndarray] = {}
    for name, point in raw.items():
        if not isinstance(name, str) or not name:
            raise AssetError(f"{describe(asset)}: keypoint name {name!r} must be a non-empty str")
        try:
            p = np.asarray(point, dtype=np.float64)
        except (TypeError, ValueError):
            p = np.empty(0)
        if p.shape != (3,) or not np.all(np.isfinite(p)):
            raise AssetError(
                f"{describe(asset)}: keypoints.{name} got {point!r}, expected 3 finite numbers"
            )
        out[name] = readonly(p, np.float64)
    return out


def dims_from_extents(primitive: str, extents: np.ndarray) -> dict[str, float]:
    """Analytic dims of a mesh known to be a box or a sphere, read off its extents."""
    if primitive == "cube":
        return {"x": float(extents[0]), "y": float(extents[1]), "z": float(extents[2])}
    if primitive == "sphere":
        return {"radius": float(extents.max()) / 2.0}
    raise ValueError(f"cannot derive dims of {primitive!r} from extents")


def finalize(
    asset: Mapping[str, Any],
    vertices: np.ndarray,
    faces: np.ndarray,
    source: str,
    *,
    uv: np.ndarray | None = None,
    primitive: str | None = None,
    dims: Mapping[str, float] | None = None,
    size: float | None = None,
) -> Mesh:
    """Centre on the bbox centre, optionally rescale so the largest extent is ``size``, freeze.

    ``dims`` of a primitive are taken as given (exact); when only ``primitive`` is given (a
    bundled box or ball mesh) they are read off the final extents.
    """
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(faces).reshape(-1, 3)
    if len(v) == 0 or len(f) == 0:
        raise AssetError(f"{describe(asset)}: the mesh is empty (no vertices or no faces)")
    if not np.all(np.isfinite(v)):
        raise AssetError(f"{describe(asset)}: the mesh has non-finite vertex coordinates")
    if f.min() < 0 or f.max() >= len(v):
        raise AssetError(f"{describe(asset)}: face indices out of range")
    lo, hi = v.min(axis=0), v.max(axis=0)
    v = v - (lo + hi) / 2.0
    if size is not None:
        largest = float((hi - lo).max())
        if largest <= 0:
            raise AssetError(f"{describe(asset)}: the mesh has zero extent, cannot set size")
        v = v * (size / largest)
    extents = v.max(axis=0) - v.min(axis=0)
    uv_out = None
    if uv is not None:
        uv_arr = np.asarray(uv, dtype=np.float64)
        if uv_arr.shape == (len(v), 2) and np.all(np.isfinite(uv_arr)):
            uv_out = readonly(uv_arr, np.float64)
    if dims is None:
        dims = dims_from_extents(primitive, extents) if primitive else {}
    return Mesh(
        vertices=readonly(v, np.float64),
        faces=readonly(f, np.int32),
        source=source,
        uv=uv_out,
        keypoints=parse_keypoints(asset),
        primitive=primitive,
        dims={k: float(x) for k, x in dims.items()},
    )
