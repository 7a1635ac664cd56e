"""Objects bundled with the ``pybullet_data`` package, as single meshes at their native size.

Each named asset points at a URDF (its visual meshes, origins and ``meshScale`` give the real
size) or, where pybullet ships no URDF, at an OBJ with a chosen real-world scale. Meshes that
were modelled y-up (duck, teddy, bunny, torus) are turned upright so +z is up, like the world:
an identity orientation then stands them on the ground. ``random:NNN`` are the 1,000 procedural
objects of ``random_urdfs``.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthcv.assets import primitives
from synthcv.assets._common import (
    AssetError,
    check_keys,
    describe,
    did_you_mean,
    finalize,
    positive,
)
from synthcv.assets.kinds import AssetKind
from synthcv.assets.meshfile import RawMesh, load_raw, mtl_texture
from synthcv.scene import Mesh

NUM_RANDOM = 1000
# random_urdfs/168/168.obj ships with NaN vertices (pybullet_data 3.2.7): never listed.
BROKEN_RANDOM = frozenset({168})


@dataclass(frozen=True)
class _Entry:
    file: str  # relative to the pybullet_data root: a .urdf, or an .obj with ``scale``
    scale: float = 1.0  # only for bare OBJ files (URDFs carry their own meshScale)
    upright: bool = False  # modelled y-up: rotate +90° about x so +y becomes +z
    primitive: str | None = None  # a box or ball: physics may use the exact shape


# Sizes: what the URDF says (the bare OBJs: bunny ≈ 0.2 m, torus ≈ 0.15 m, toys as modelled).
_REGISTRY: dict[str, _Entry] = {
    "duck": _Entry("duck_vhacd.urdf", upright=True),
    "teddy": _Entry("teddy_vhacd.urdf", upright=True),
    "bunny": _Entry("bunny.obj", scale=0.1, upright=True),
    "soccerball": _Entry("soccerball.urdf", primitive="sphere"),
    "sphere": _Entry("sphere2.urdf", primitive="sphere"),
    "sphere_small": _Entry("sphere_small.urdf", primitive="sphere"),
    "cube": _Entry("cube.urdf", primitive="cube"),
    "cube_small": _Entry("cube_small.urdf", primitive="cube"),
    "block": _Entry("block.urdf", primitive="cube"),
    "torus": _Entry("torus/torus_textured.obj", scale=0.1, upright=True),
    "table": _Entry("table/table.urdf"),
    "table_square": _Entry("table_square/table_square.urdf"),
    "tray": _Entry("tray/traybox.urdf"),
    "mug": _Entry("objects/mug.urdf"),
    "lego": _Entry("lego/lego.urdf"),
    "jenga": _Entry("jenga/jenga.urdf", primitive="cube"),
    "domino": _Entry("domino/domino.urdf"),
    "toy_cube": _Entry("toys/cube.obj"),
    "toy_cylinder": _Entry("toys/cylinder.obj"),
    "toy_prism": _Entry("toys/prism.obj"),
    "shape_sorter": _Entry("toys/shape_sorter.obj"),
    "concave_box": _Entry("toys/concave_box.urdf"),
}


@functools.cache
def data_root() -> Path:
    """The ``pybullet_data`` directory (importing it is cheap: it only knows its own path)."""
    import pybullet_data

    return Path(pybullet_data.getDataPath())


def available_pybullet_assets(include_random: bool = True) -> list[str]:
    """Names accepted by ``{"pybullet": NAME}``: the curated objects, then ``random:000..999``.

    Every listed name builds (one broken random object is left out, see ``BROKEN_RANDOM``).
    """
    names = sorted(_REGISTRY)
    if include_random:
        names += [f"random:{i:03d}" for i in range(NUM_RANDOM) if i not in BROKEN_RANDOM]
    return names


def _entry(asset: Mapping[str, Any]) -> tuple[str, _Entry]:
    """Canonical name and registry entry of a pybullet asset, or a helpful error."""
    name = asset["pybullet"]
    if not isinstance(name, str):
        raise AssetError(
            f"{describe(asset, 'pybullet')}: expected a name such as 'duck' or 'random:042'"
        )
    m = re.fullmatch(r"random[:_/](\d+)", name)
    if m:
        n = int(m.group(1))
        if n >= NUM_RANDOM:
            raise AssetError(
                f"{describe(asset, 'pybullet')}: random objects are numbered 0..{NUM_RANDOM - 1}"
            )
        if n in BROKEN_RANDOM:
            raise AssetError(
                f"{describe(asset, 'pybullet')}: pybullet_data's random_urdfs/{n:03d} is broken"
            )
        return f"random:{n:03d}", _Entry(f"random_urdfs/{n:03d}/{n:03d}.urdf")
    if name not in _REGISTRY:
        raise AssetError(
            f"{describe(asset, 'pybullet')}: unknown pybullet_data asset {name!r}"
            f"{did_you_mean(name, _REGISTRY)}; expected one of {sorted(_REGISTRY)} "
            "or 'random:NNN' (0..999)"
        )
    return name, _REGISTRY[name]


def _floats(text: str | None, n: int, default: float) -> np.ndarray:
    if not text:
        return np.full(n, default)
    values = np.array([float(x) for x in text.split()], dtype=np.float64)
    return np.full(n, values[0]) if values.size == 1 else values[:n]


def _rpy_matrix(rpy: np.ndarray) -> np.ndarray:
    """URDF fixed-axis roll-pitch-yaw: R = Rz(yaw) · Ry(pitch) · Rx(roll)."""
    cr, cp, cy = np.cos(rpy)
    sr, sp, sy = np.sin(rpy)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _visual_parts(urdf: Path, where: str) -> list[tuple[RawMesh, np.ndarray]]:
    """Every visual of every link as (mesh, 4x4 transform in the URDF frame).

    Joints are not followed: fine for the curated entries, which are one rigid body (the
    table_square's extra "world" link is fixed at the origin and has no visual).
    """
    try:
        root = ET.parse(urdf).getroot()
    except (OSError, ET.ParseError) as exc:
        raise AssetError(f"{where}: cannot parse {urdf}: {exc}") from exc
    parts = []
    for visual in root.iter("visual"):
        origin = visual.find("origin")
        xyz = _floats(origin.get("xyz") if origin is not None else None, 3, 0.0)
        rpy = _floats(origin.get("rpy") if origin is not None else None, 3, 0.0)
        geom = visual.find("geometry")
        shape = None if geom is None else next(iter(geom), None)
        scale = np.ones(3)
        if shape is None:
            continue
        if shape.tag == "mesh":
            raw = load_raw((urdf.parent / shape.get("filename", "")).resolve(), where)
            scale = _floats(shape.get("scale"), 3, 1.0)
        elif shape.tag == "box":
            v, f, uv = primitives._cube(_floats(shape.get("size"), 3, 1.0))
            raw = RawMesh(v, f, uv)
        elif shape.tag == "sphere":
            raw = RawMesh(*primitives._sphere(float(shape.get("radius", 0.5))))
        elif shape.tag == "cylinder":
            r, h = float(shape.get("radius", 0.5)), float(shape.get("length", 1.0))
            raw = RawMesh(*primitives._cylinder(r, h))
        else:
            raise AssetError(f"{where}: unsupported URDF geometry <{shape.tag}> in {urdf}")
        t = np.eye(4)
        t[:3, :3] = _rpy_matrix(rpy) @ np.diag(scale)
        t[:3, 3] = xyz
        parts.append((raw, t))
    if not parts:
        raise AssetError(f"{where}: {urdf} has no visual geometry")
    return parts


def _parts(entry: _Entry, where: str) -> list[tuple[RawMesh, np.ndarray]]:
    path = data_root() / entry.file
    if not path.is_file():
        raise AssetError(f"{where}: pybullet_data file missing: {path}")
    if path.suffix == ".urdf":
        return _visual_parts(path, where)
    t = np.diag([entry.scale, entry.scale, entry.scale, 1.0])
    return [(load_raw(path, where), t)]


def build_pybullet(asset: Mapping[str, Any]) -> Mesh:
    """Mesh of ``{"pybullet": NAME, "size": m}``: native size unless ``size`` is given."""
    check_keys(asset, ("pybullet", "size", "keypoints"))
    name, entry = _entry(asset)
    size = positive(asset, "size") if asset.get("size") is not None else None
    where = describe(asset, "pybullet")
    verts, faces, uvs = [], [], []
    offset = 0
    for raw, t in _parts(entry, where):
        v = raw.vertices @ t[:3, :3].T + t[:3, 3]
        f = raw.faces
        if np.linalg.det(t[:3, :3]) < 0:  # a mirroring scale flips the winding back
            f = f[:, ::-1]
        verts.append(v)
        faces.append(f + offset)
        uvs.append(raw.uv)
        offset += len(v)
    v = np.vstack(verts)
    if entry.upright:
        v = v @ np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]).T  # +y becomes +z
    uv = None if any(u is None for u in uvs) else np.vstack(uvs)
    return finalize(
        asset,
        v,
        np.vstack(faces),
        f"pybullet_data:{name}",
        uv=uv,
        primitive=entry.primitive,
        size=size,
    )


def pybullet_texture(asset: Mapping[str, Any]) -> str | None:
    """The image texture a bundled object's OBJ material uses (e.g. the duck's duckCM.png)."""
    _, entry = _entry(asset)
    path = data_root() / entry.file
    objs = [path] if path.suffix == ".obj" else []
    if path.suffix == ".urdf":
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError):
            return None
        objs = [
            path.parent / m.get("filename", "") for v in root.iter("visual") for m in v.iter("mesh")
        ]
    for obj in objs:
        tex = mtl_texture(obj)
        if tex is not None:
            return str(tex)
    return None


KIND = AssetKind(key="pybullet", build=build_pybullet, native_texture=pybullet_texture)
