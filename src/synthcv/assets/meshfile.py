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
    where = describe(asset, "mesh")
    if not isinstance(path, str | os.PathLike) or not str(path):
        raise AssetError.at(where, "mesh", f"got {path!r}, expected a file path")
    shown = _shown(str(path))
    try:
        p = Path(os.path.expanduser(str(path))).resolve()
        found = p.is_file()
    except (OSError, ValueError, RuntimeError) as exc:
        raise AssetError.at(where, "mesh", f"got {shown}, expected a file path ({exc})") from None
    if not found:
        raise AssetError(
            f"{where}: mesh file not found: {p}",
            key="mesh",
            detail=f"got {shown}, expected a mesh file (mesh file not found: {p})",
        )
    if p.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise AssetError(
            f"{where}: unsupported mesh format {p.suffix!r} for {p}; "
            f"expected one of {list(SUPPORTED_SUFFIXES)}",
            key="mesh",
            detail=f"got {shown}, expected a mesh file of a format in {list(SUPPORTED_SUFFIXES)}",
        )
    return p


def _shown(text: str, n: int = 80) -> str:
    return repr(text if len(text) <= n else text[: n - 3] + "...")


def load_raw(path: Path, where: str) -> RawMesh:
    """Read a mesh file (a multi-part scene is flattened with its transforms) into arrays."""
    import trimesh

    try:
        loaded = trimesh.load(str(path), force="mesh", process=True)
    except Exception as exc:  # trimesh raises many types for corrupt files
        raise AssetError(
            f"{where}: cannot read mesh file {path}: {exc}",
            key="mesh",
            detail=f"got {_shown(str(path))}, expected a readable mesh file "
            f"({type(exc).__name__}: {exc})",
        ) from exc
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise AssetError(
            f"{where}: mesh file {path} holds no triangles",
            key="mesh",
            detail=f"got {_shown(str(path))}, expected a mesh file with triangles (it holds none)",
        )
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
        for tex in re.findall(
            r"^\s*map_Kd\s+(?:-\S+\s+\S+\s+)*(.+?)\s*$", mtl.read_text(errors="replace"), re.M
        ):
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
    try:
        path = Path(os.path.expanduser(str(p))).resolve()
        st = path.stat()
    except (OSError, ValueError, RuntimeError):
        return (str(p),)
    return (str(path), st.st_mtime_ns, st.st_size)


def file_texture(asset: Mapping[str, Any]) -> str | None:
    """The image an OBJ file's own material uses (``map_Kd``), if any."""
    tex = mtl_texture(resolve_path(asset, asset["mesh"]))
    return None if tex is None else str(tex)


KIND = AssetKind(key="mesh", build=build_file, cache_key=file_stamp, native_texture=file_texture)
