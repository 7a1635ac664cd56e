"""``(spec, index) → Scene``: a pure function seeded only by the scene hash and the index.

Each section (camera, lights, ground, objects, distractors) draws from its own random stream,
so editing one section of a spec leaves the others' draws unchanged. A sweep re-uses the same
base scenes for every step and overrides only the swept field's realized value (the draw is
still made, so every other draw stays aligned).
"""

from __future__ import annotations

import colorsys
import hashlib
import math
from typing import Any

import numpy as np

from synthcv.distributions import Distribution
from synthcv.scene import Camera, Ground, Material, Scene, SceneObject, Sun, quat_to_matrix
from synthcv.spec import AssetSpec, HSVColor, MaterialSpec, Spec

STREAMS = ("camera", "lights", "ground", "objects", "distractors")


def sample_seed(scene_hash: str, base_index: int) -> int:
    """The 63-bit seed of base sample ``base_index``, recorded in the index."""
    digest = hashlib.sha256(f"{scene_hash}:{base_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class _Drawer:
    """Draws named fields, applying the sweep override and recording realized factors."""

    def __init__(self, override: tuple[str, Any] | None) -> None:
        self.override = override

    def __call__(self, path: str, dist: Distribution, rng: np.random.Generator) -> Any:
        value = dist.sample(rng)
        if self.override is not None and self.override[0] == path:
            return self.override[1]
        return value


def _hsv(
    draw: _Drawer, path: str, c: HSVColor, rng: np.random.Generator
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    h = float(draw(f"{path}.h", c.h, rng)) % 1.0
    s = float(np.clip(draw(f"{path}.s", c.s, rng), 0, 1))
    v = float(np.clip(draw(f"{path}.v", c.v, rng), 0, 1))
    return (h, s, v), colorsys.hsv_to_rgb(h, s, v)


def _texture(name: Any, asset: dict[str, Any] | None = None) -> str | None:
    """Resolve a texture name; ``native`` means the asset's own image (e.g. the duck's)."""
    if name is None or (isinstance(name, str) and name.lower() in ("", "none")):
        return None
    from synthcv.assets import native_texture, texture_path

    if name == "native":
        return native_texture(asset) if asset is not None else None

    return texture_path(str(name))


def _material(
    draw: _Drawer,
    path: str,
    m: MaterialSpec,
    rgb: tuple[float, float, float],
    rng: np.random.Generator,
    asset: dict[str, Any] | None = None,
) -> tuple[Material, dict[str, Any]]:
    rough = float(np.clip(draw(f"{path}.roughness", m.roughness, rng), 0, 1))
    metal = float(np.clip(draw(f"{path}.metallic", m.metallic, rng), 0, 1))
    tex_name = draw(f"{path}.texture", m.texture, rng)
    proc = draw(f"{path}.procedural", m.procedural, rng)
    proc = None if proc in (None, "none") else str(proc)
    mat = Material(
        color=tuple(rgb),
        roughness=rough,
        metallic=metal,
        texture=_texture(tex_name, asset),
        procedural=proc,
    )
    attrs = {
        "roughness": rough,
        "metallic": metal,
        "texture": "none" if mat.texture is None else str(tex_name),
    }
    if proc:
        attrs["procedural"] = proc
    return mat, attrs


def realize_asset(
    draw: _Drawer, path: str, a: AssetSpec, rng: np.random.Generator
) -> dict[str, Any]:
    """Realize an AssetSpec into the plain dict ``synthcv.assets.build_mesh`` takes."""
    out: dict[str, Any] = {}
    for name in type(a).model_fields:
        value = getattr(a, name)
        if value is None:
            continue
        if isinstance(value, Distribution):
            value = draw(f"{path}.{name}", value, rng)
        elif isinstance(value, dict):
            value = {k: list(v) for k, v in value.items()}
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def _random_quaternion(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def _euler_quat(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Quaternion (x, y, z, w) of R = Rz(yaw) Ry(pitch) Rx(roll), angles in degrees."""
    r, p, y = (math.radians(v) / 2 for v in (roll, pitch, yaw))
    cr, sr, cp, sp, cy, sy = (
        math.cos(r),
        math.sin(r),
        math.cos(p),
        math.sin(p),
        math.cos(y),
        math.sin(y),
    )
    return np.array(
        [
            sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
            cr * cp * cy + sr * sp * sy,
        ]
    )


def sample_scene(spec: Spec, index: int, *, scene_hash: str | None = None) -> Scene:
    """Build sample ``index`` (0 ≤ index < spec.total_count) of ``spec``."""
    from synthcv.assets import build_mesh, scale_mesh

    if not 0 <= index < spec.total_count:
        raise IndexError(f"sample index {index} outside 0..{spec.total_count - 1}")
    scene_hash = scene_hash or spec.scene_hash
    steps = spec.sweep_steps
    step, base = divmod(index, spec.count)
    override = (spec.sweep.field, steps[step]) if spec.sweep else None
    draw = _Drawer(override)
    seed = sample_seed(scene_hash, base)
    rngs = dict(
        zip(
            STREAMS,
            (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(STREAMS))),
            strict=True,
        )
    )
    factors: dict[str, Any] = {}
    if spec.sweep:
        factors["sweep.step"] = step
        factors["sweep.value"] = steps[step]

    # camera
    cs, r = spec.camera, rngs["camera"]
    dist = float(draw("camera.distance", cs.distance, r))
    elev = float(draw("camera.elevation", cs.elevation, r))
    azim = float(draw("camera.azimuth", cs.azimuth, r))
    jitter = float(draw("camera.look_at_jitter", cs.look_at_jitter, r))
    fov = float(draw("camera.fov", cs.fov, r))
    target = np.array(cs.look_at, dtype=np.float64) + r.uniform(-1, 1, size=3) * jitter
    e, a = math.radians(elev), math.radians(azim)
    eye = target + dist * np.array(
        [math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)]
    )
    ss = spec.image.supersample
    w, h = spec.image.width * ss, spec.image.height * ss
    camera = Camera(
        w,
        h,
        Camera.intrinsics_from_fov(w, h, fov),
        Camera.look_at(eye, target),
        near=cs.near,
        far=cs.far,
    )
    factors.update(
        {
            "camera.distance": dist,
            "camera.elevation": elev,
            "camera.azimuth": azim,
            "camera.fov": fov,
            "camera.look_at_x": float(target[0]),
            "camera.look_at_y": float(target[1]),
            "camera.look_at_z": float(target[2]),
        }
    )

    # lights
    ls, r = spec.lights, rngs["lights"]
    sel = float(draw("lights.sun.elevation", ls.sun.elevation, r))
    saz = float(draw("lights.sun.azimuth", ls.sun.azimuth, r))
    sint = float(draw("lights.sun.intensity", ls.sun.intensity, r))
    _, scol = _hsv(draw, "lights.sun.color", ls.sun.color, r)
    amb = float(draw("lights.ambient", ls.ambient, r))
    e, a = math.radians(sel), math.radians(saz)
    sun = Sun(
        direction=(math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)),
        intensity=sint,
        color=tuple(scol),
    )
    factors.update(
        {
            "light.elevation": sel,
            "light.azimuth": saz,
            "light.intensity": sint,
            "light.color_r": scol[0],
            "light.color_g": scol[1],
            "light.color_b": scol[2],
            "light.ambient": amb,
        }
    )

    # ground and background
    gs, r = spec.ground, rngs["ground"]
    _, gcol = _hsv(draw, "ground.color", gs.color, r)
    gtex = draw("ground.texture", gs.texture, r)
    gscale = float(draw("ground.texture_scale", gs.texture_scale, r))
    grough = float(draw("ground.roughness", gs.roughness, r))
    _, bg = _hsv(draw, "background", spec.background, r)
    ground = Ground(
        enabled=gs.enabled,
        height=gs.height,
        size=gs.size,
        material=Material(
            color=tuple(gcol), roughness=grough, texture=_texture(gtex), texture_scale=gscale
        ),
    )
    factors.update(
        {
            "ground.texture": "none" if ground.material.texture is None else str(gtex),
            "ground.color_r": gcol[0],
            "ground.color_g": gcol[1],
            "ground.color_b": gcol[2],
        }
    )

    # objects
    objects: list[SceneObject] = []
    os_, r = spec.objects, rngs["objects"]
    n_obj = max(0, round(float(draw("objects.count", os_.count, r))))
    names = list(os_.classes)
    weights = np.array([os_.classes[n].weight for n in names], dtype=np.float64)
    weights /= weights.sum()
    stack_top = 0.0
    for _ in range(n_obj):
        ci = int(r.choice(len(names), p=weights))
        name = names[ci]
        cspec = os_.classes[name]
        path = f"objects.classes.{name}"
        asset = realize_asset(draw, f"{path}.asset", cspec.asset, r)
        scale = float(draw(f"{path}.scale", cspec.scale, r))
        hsv, rgb = _hsv(draw, f"{path}.color", cspec.color, r)
        material, mattrs = _material(draw, f"{path}.material", cspec.material, rgb, r, asset)
        mesh = scale_mesh(build_mesh(asset), scale)
        attrs = _object_attrs(mesh, asset, scale, hsv) | mattrs
        obj, stack_top = _place(spec, draw, r, mesh, stack_top)
        objects.append(
            SceneObject(
                instance_id=len(objects) + 1,
                class_name=name,
                class_id=ci + 1,
                mesh=mesh,
                position=obj[0],
                orientation=obj[1],
                material=material,
                mass=cspec.mass,
                attributes=attrs,
            )
        )

    ds, r = spec.distractors, rngs["distractors"]
    n_dis = max(0, round(float(draw("distractors.count", ds.count, r))))
    for _ in range(n_dis):
        ai = int(r.integers(len(ds.assets)))
        asset = realize_asset(draw, f"distractors.assets[{ai}]", ds.assets[ai], r)
        scale = float(draw("distractors.scale", ds.scale, r))
        hsv, rgb = _hsv(draw, "distractors.color", ds.color, r)
        material, mattrs = _material(draw, "distractors.material", ds.material, rgb, r, asset)
        mesh = scale_mesh(build_mesh(asset), scale)
        attrs = _object_attrs(mesh, asset, scale, hsv) | mattrs
        obj, stack_top = _place(spec, draw, r, mesh, stack_top)
        objects.append(
            SceneObject(
                instance_id=len(objects) + 1,
                class_name="distractor",
                class_id=0,
                mesh=mesh,
                position=obj[0],
                orientation=obj[1],
                material=material,
                is_distractor=True,
                attributes=attrs,
            )
        )
    factors["objects.count"] = n_obj
    factors["distractors.count"] = n_dis

    return Scene(
        index=index,
        seed=seed,
        objects=objects,
        camera=camera,
        sun=sun,
        ambient=amb,
        ground=ground,
        background=tuple(bg),
        factors=factors,
    )


def _object_attrs(
    mesh: Any, asset: dict[str, Any], scale: float, hsv: tuple[float, float, float]
) -> dict[str, Any]:
    """The generic per-object attributes, then the ones the asset's kind records."""
    from synthcv.assets import kinds

    attrs: dict[str, Any] = {
        "asset": mesh.source,
        "scale": scale,
        "color_h": hsv[0],
        "color_s": hsv[1],
        "color_v": hsv[2],
    }
    return attrs | kinds.kind_of(asset).factors(asset, mesh)


def _place(
    spec: Spec, draw: _Drawer, r: np.random.Generator, mesh: Any, stack_top: float
) -> tuple[tuple[np.ndarray, np.ndarray], float]:
    """Initial pose. With physics, objects are stacked in the air so none start overlapping."""
    ps = spec.objects.pose
    x = float(draw("objects.pose.x", ps.x, r))
    y = float(draw("objects.pose.y", ps.y, r))
    z = float(draw("objects.pose.z", ps.z, r))
    drop = float(draw("objects.pose.drop_height", ps.drop_height, r))
    roll = float(draw("objects.pose.roll", ps.roll, r))
    pitch = float(draw("objects.pose.pitch", ps.pitch, r))
    yaw = float(draw("objects.pose.yaw", ps.yaw, r))
    if ps.rotation == "random":
        q = _random_quaternion(r)
    elif ps.rotation == "upright":
        q = _euler_quat(0.0, 0.0, yaw)
    else:
        q = _euler_quat(roll, pitch, yaw)
    zs = (mesh.vertices @ quat_to_matrix(q).T)[:, 2]
    lo, hi = float(zs.min()), float(zs.max())
    base = spec.ground.height - lo + z
    if spec.physics.enabled:
        pz = base + stack_top + drop
        stack_top += (hi - lo) + drop + 0.01
    else:
        pz = base
    return (np.array([x, y, pz]), q), stack_top
