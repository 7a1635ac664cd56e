"""User mesh files (OBJ/STL/PLY/GLB/...) loaded through trimesh into plain arrays.

trimesh is imported lazily: it is only needed when a file asset is actually built.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from synthcv.assets._common import AssetError, check_keys, describe, finalize, positive
from synthcv.assets.kinds import AssetKind
from synthcv.scene import Mesh

SUPPORTED_SUFFIXES = (".obj", ".stl", ".ply", ".glb", ".gltf", ".off")


class RawMesh(NamedTuple):
    """Vertices, faces and optional per-vertex UVs straight from a file, before finalizing."""

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray | None


def resolve_path(asset: Mapping[str, Any], path: Any) -> Path:
    """Absolute path of an existing mesh file, or an error naming the path that was tried."""
    if not isinstance(path, str | os.PathLike) or not str(path):
        raise AssetError(f"{describe(asset, 'mesh')}: mesh got {path!r}, expected a file path")
    p = Path(os.path.expanduser(str(path))).resolve()
    if not p.is_file():
        raise AssetError(f"{describe(asset, 'mesh')}: mesh file not found: {p}")
    if p.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise AssetError(
            f"{describe(asset, 'mesh')}: unsupported mesh format {p.suffix!r} for {p}; "
            f"expected one of {list(SUPPORTED_SUFFIXES)}"
        )
    return p


def load_raw(path: Path, where: str) -> RawMesh:
    """Read a mesh file (a multi-part scene is flattened with its transforms) into arrays."""
    import trimesh

    try:
        loaded = trimesh.load(str(path), force="mesh", process=True)
    except Exception as exc:  # trimesh raises many types for corrupt files
        raise AssetError(f"{where}: cannot read mesh file {path}: {exc}") from exc
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise AssetError(f"{where}: mesh file {path} holds no triangles")
    if loaded.is_watertight and loaded.volume < 0:  # inside-out closed mesh: fix the winding
        loaded.invert()
    uv = getattr(loaded.visual, "uv", None)
    if uv is not None and len(uv) != len(loaded.vertices):
        uv = None
    return RawMesh(
        np.asarray(loaded.vertices, dtype=np.float64),
        np.asarray(loaded.faces, dtype=np.int64),
        None if uv is None else np.asarray(uv, dtype=np.float64),
    )


def build_file(asset: Mapping[str, Any]) -> Mesh:
    """Mesh of ``{"mesh": PATH, "units": s, "size": m}``: scaled by units, then fit to size."""
    check_keys(asset, ("mesh", "units", "size", "keypoints"))
    path = resolve_path(asset, asset["mesh"])
    units = positive(asset, "units", 1.0)
    size = positive(asset, "size") if asset.get("size") is not None else None
    raw = load_raw(path, describe(asset, "mesh"))
    return finalize(asset, raw.vertices * units, raw.faces, f"file:{path}", uv=raw.uv, size=size)


def mtl_texture(obj_path: Path) -> Path | None:
    """The first diffuse texture (``map_Kd``) of an OBJ's material library, if it exists."""
    if obj_path.suffix.lower() != ".obj":
        return None
    try:
        text = obj_path.read_text(errors="replace")
    except OSError:
        return None
    for lib in re.findall(r"^\s*mtllib\s+(.+?)\s*$", text, flags=re.M):
        mtl = obj_path.parent / lib
        if not mtl.is_file():
            continue
        for tex in re.findall(r"^\s*map_Kd\s+(?:-\S+\s+\S+\s+)*(.+?)\s*$", mtl.read_text(), re.M):
            for candidate in (mtl.parent / tex, mtl.parent / tex.replace("\\", "/").split("/")[-1]):
                if candidate.is_file():
                    return candidate.resolve()
    return None


def file_stamp(asset: Mapping[str, Any]) -> tuple[Any, ...]:
    """The file's resolved path, mtime and size: an edited file must not be served stale from
    the mesh cache (a missing file gives just the path; the builder reports it)."""
    p = asset["mesh"]
    if not isinstance(p, str | os.PathLike):
        return ()
    path = Path(os.path.expanduser(str(p))).resolve()
    try:
        st = path.stat()
    except OSError:
        return (str(path),)
    return (str(path), st.st_mtime_ns, st.st_size)


def file_texture(asset: Mapping[str, Any]) -> str | None:
    """The image an OBJ file's own material uses (``map_Kd``), if any."""
    tex = mtl_texture(resolve_path(asset, asset["mesh"]))
    return None if tex is None else str(tex)


KIND = AssetKind(key="mesh", build=build_file, cache_key=file_stamp, native_texture=file_texture)
