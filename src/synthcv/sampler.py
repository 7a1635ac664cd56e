"""``(spec, index) → Scene``: a pure function seeded only by the scene hash and the index.

Each section (camera, lights, ground, objects, distractors) draws from its own random stream,
in its own function (:func:`sample_camera` ... :func:`sample_distractors`), so editing one
section of a spec leaves the others' draws unchanged. Class instances and distractors share one
per-object draw (:func:`draw_object`). A sweep re-uses the same base scenes for every step and
overrides only the swept field's realized value (the draw is still made, so every other draw
stays aligned). Realized factors are recorded under the spec path they were drawn from
(``lights.sun.elevation``, ``camera.look_at.x``, ``ground.color.r``; version-1 datasets used
the names in :data:`synthcv.format.layout.V1_FACTOR_RENAMES`).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from synthcv.distributions import Distribution
from synthcv.environment import room as room_geo
from synthcv.environment.kelvin import kelvin_to_rgb
from synthcv.fileio import sha256_bytes
from synthcv.motion import SHAKE_HZ, SHAKE_TERMS, MotionPlan
from synthcv.scene import (
    Camera,
    Ground,
    Lamp,
    Material,
    Mesh,
    Scene,
    SceneObject,
    StuffPart,
    Sun,
    World,
    quat_to_matrix,
)
from synthcv.sensor.lens import Distortion
from synthcv.sensor.params import BASE_ISO, Defocus, Noise, SensorParams
from synthcv.spec import AssetSpec, ClassSpec, DistractorsSpec, HSVColor, MaterialSpec, Spec

if TYPE_CHECKING:
    from synthcv.assets.kinds import AssetKind

# A new section's stream goes last: SeedSequence.spawn gives the first children the same
# seeds whatever their number, so existing sections keep their draws.
STREAMS = (
    "camera",
    "lights",
    "ground",
    "objects",
    "distractors",
    "people",
    "sensor",
    "sequence",
    "world",
    "room",
)

Factors = dict[str, Any]  # realized scene factors, named by the spec path they were drawn from


def sample_seed(scene_hash: str, base_index: int) -> int:
    """The 63-bit seed of base sample ``base_index``, recorded in the index."""
    digest = sha256_bytes(f"{scene_hash}:{base_index}".encode())
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


def stream_rngs(seed: int) -> dict[str, np.random.Generator]:
    """One independent generator per section of the spec (:data:`STREAMS`), from the seed."""
    children = np.random.SeedSequence(seed).spawn(len(STREAMS))
    return dict(zip(STREAMS, (np.random.default_rng(s) for s in children), strict=True))


def sample_scene(spec: Spec, index: int, *, scene_hash: str | None = None) -> Scene:
    """Build sample ``index`` (0 ≤ index < spec.total_count) of ``spec``."""
    if not 0 <= index < spec.total_count:
        raise IndexError(f"sample index {index} outside 0..{spec.total_count - 1}")
    scene_hash = scene_hash or spec.scene_hash
    steps = spec.sweep_steps
    step, base = divmod(index, spec.count)
    draw = _Drawer((spec.sweep.field, steps[step]) if spec.sweep else None)
    seed = sample_seed(scene_hash, base)
    rngs = stream_rngs(seed)
    factors: dict[str, Any] = {}
    if spec.sweep:
        factors["sweep.step"] = step
        factors["sweep.value"] = steps[step]

    camera, f = sample_camera(spec, draw, rngs["camera"])
    factors |= f
    look_at = np.array([factors[f"camera.look_at.{a}"] for a in "xyz"])
    (sun, ambient, lamps), f = sample_lights(spec, draw, rngs["lights"], look_at)
    factors |= f
    world = None
    if spec.world is not None:
        (world, sun, ambient), f = sample_world(spec, draw, rngs["world"])
        factors |= f
    (ground, background), f = sample_ground(spec, draw, rngs["ground"])
    factors |= f
    stuff: tuple[StuffPart, ...] = ()
    support = 0.0
    if spec.room is not None:
        (stuff, support), f = sample_room(spec, draw, rngs["room"])
        factors |= f
        ground = replace(ground, enabled=False)  # the room's floor replaces the ground
    # Objects are stacked for the drop in the order drawn: classes first, then distractors.
    objects, stack_top, f = sample_objects(spec, draw, rngs["objects"], support)
    factors |= f
    distractors, _, f = sample_distractors(spec, draw, rngs["distractors"], len(objects), stack_top)
    factors |= f
    people: list[SceneObject] = []
    if spec.people is not None:
        people, f = sample_people(spec, draw, rngs["people"], camera, objects + distractors, stuff)
        factors |= f

    sensor = None
    if spec.sensor is not None:
        sensor, f = sample_sensor(spec, draw, rngs["sensor"])
        factors |= f
    motion = None
    if spec.sequence is not None:
        target = np.array([factors[f"camera.look_at.{a}"] for a in "xyz"])
        motion, f = sample_motion(spec, draw, rngs["sequence"], target, objects + distractors)
        factors |= f

    if spec.written_paths:  # record files as the spec wrote them, not where this machine has them
        factors = _as_written(factors, spec.written_paths)
        objects = [
            replace(o, attributes=_as_written(o.attributes, spec.written_paths)) for o in objects
        ]
        distractors = [
            replace(o, attributes=_as_written(o.attributes, spec.written_paths))
            for o in distractors
        ]
    return Scene(
        index=index,
        seed=seed,
        objects=objects + distractors + people,
        camera=camera,
        sun=sun,
        ambient=ambient,
        ground=ground,
        background=background,
        factors=factors,
        sensor=sensor,
        motion=motion,
        world=world,
        lamps=lamps,
        stuff=stuff,
    )


#: Each sensor stage draws from its own child of the sensor stream (keyed by this order), so
#: switching one stage on or off leaves every other stage's draws, and the noise, unchanged.
SENSOR_STAGES = (
    "distortion",
    "chromatic_aberration",
    "vignetting",
    "defocus",
    "motion_blur",
    "exposure_ev",
    "iso",
    "noise",
    "white_balance",
    "response",
    "jpeg_quality",
    "noise_seed",
)


def sample_sensor(
    spec: Spec, draw: _Drawer, r: np.random.Generator
) -> tuple[SensorParams, Factors]:
    """The sensor stream (docs/sensor.md): every set stage's values, and the noise seed."""
    ss = spec.sensor
    assert ss is not None
    base = int(r.integers(0, 2**63))
    stage = {
        name: np.random.default_rng(np.random.SeedSequence([base, k]))
        for k, name in enumerate(SENSOR_STAGES)
    }
    f: Factors = {}

    def d(path: str, dist: Distribution, name: str) -> float:
        value = float(draw(f"sensor.{path}", dist, stage[name]))
        f[f"sensor.{path}"] = value
        return value

    distortion = None
    if ss.distortion is not None:
        distortion = Distortion(
            *(
                d(f"distortion.{c}", getattr(ss.distortion, c), "distortion")
                for c in ("k1", "k2", "p1", "p2")
            )
        )
    ca = (
        None
        if ss.chromatic_aberration is None
        else d("chromatic_aberration", ss.chromatic_aberration, "chromatic_aberration")
    )
    vignetting = None if ss.vignetting is None else d("vignetting", ss.vignetting, "vignetting")
    defocus = None
    if ss.defocus is not None:
        defocus = Defocus(
            d("defocus.focus_distance", ss.defocus.focus_distance, "defocus"),
            d("defocus.f_number", ss.defocus.f_number, "defocus"),
            d("defocus.focal_length_mm", ss.defocus.focal_length_mm, "defocus"),
        )
    blur = None
    if ss.motion_blur is not None:
        blur = (
            d("motion_blur.length", ss.motion_blur.length, "motion_blur"),
            d("motion_blur.angle", ss.motion_blur.angle, "motion_blur"),
        )
    ev = None if ss.exposure_ev is None else d("exposure_ev", ss.exposure_ev, "exposure_ev")
    if ss.iso == "auto":
        iso = BASE_ISO * 2.0 ** -(ev or 0.0)  # derived: the camera compensates the exposure
        f["sensor.iso"] = iso
    else:
        iso = d("iso", ss.iso, "iso")
    noise = None
    if ss.noise is not None:
        noise = Noise(
            d("noise.full_well", ss.noise.full_well, "noise"),
            d("noise.read_noise", ss.noise.read_noise, "noise"),
            ss.noise.bit_depth,
        )
    wb = None
    if ss.white_balance is not None:
        wb = (
            d("white_balance.red", ss.white_balance.red, "white_balance"),
            d("white_balance.blue", ss.white_balance.blue, "white_balance"),
        )
    gamma = 2.2
    if ss.response.curve == "gamma":
        gamma = d("response.gamma", ss.response.gamma, "response")
    quality = None
    if ss.jpeg_quality is not None:
        quality = round(d("jpeg_quality", ss.jpeg_quality, "jpeg_quality"))
        f["sensor.jpeg_quality"] = quality
    params = SensorParams(
        distortion=distortion,
        chromatic_aberration=ca,
        vignetting=vignetting,
        defocus=defocus,
        motion_blur=blur,
        exposure_ev=ev,
        iso=iso,
        noise=noise,
        white_balance=wb,
        response=ss.response.curve,
        gamma=gamma,
        jpeg_quality=quality,
        seed=int(stage["noise_seed"].integers(0, 2**63)),
    )
    return params, f


def sample_motion(
    spec: Spec,
    draw: _Drawer,
    r: np.random.Generator,
    target: np.ndarray,
    movable: list[SceneObject],
) -> tuple[MotionPlan, Factors]:
    """The sequence stream: the camera path, the shake's waves, and each object's initial
    linear and angular velocity (random directions; a throw never points down)."""
    seq = spec.sequence
    assert seq is not None
    orbit = float(draw("sequence.camera.orbit", seq.camera.orbit, r))
    dolly = float(draw("sequence.camera.dolly", seq.camera.dolly, r))
    shake = float(draw("sequence.camera.shake", seq.camera.shake, r))
    hz = r.uniform(*SHAKE_HZ, size=(3, SHAKE_TERMS))
    phase = r.uniform(0, 2 * np.pi, size=(3, SHAKE_TERMS))
    velocities = {}
    for obj in movable:
        speed = float(draw("sequence.objects.linear", seq.objects.linear, r))
        spin = math.radians(float(draw("sequence.objects.angular", seq.objects.angular, r)))
        direction = r.normal(size=3)
        direction[2] = abs(direction[2])
        axis = r.normal(size=3)
        velocities[obj.instance_id] = (
            direction / np.linalg.norm(direction) * speed,
            axis / np.linalg.norm(axis) * spin,
        )
    plan = MotionPlan(
        frames=seq.frames,
        fps=seq.fps,
        start=seq.start,
        target=target,
        orbit=orbit,
        dolly=dolly,
        shake=shake,
        shake_hz=hz,
        shake_phase=phase,
        velocities=velocities,
    )
    factors = {
        "sequence.camera.orbit": orbit,
        "sequence.camera.dolly": dolly,
        "sequence.camera.shake": shake,
    }
    return plan, factors


def _as_written(values: Factors, written: dict[str, str]) -> Factors:
    """String values with every resolved asset path replaced by the path as written (also
    inside labels such as ``file:/abs/chair.obj``)."""

    def one(v: Any) -> Any:
        if not isinstance(v, str):
            return v
        for full, as_written in written.items():
            v = v.replace(full, as_written)
        return v

    return {k: one(v) for k, v in values.items()}


def sample_camera(spec: Spec, draw: _Drawer, r: np.random.Generator) -> tuple[Camera, Factors]:
    """The camera stream: distance, elevation, azimuth, look-at jitter and fov."""
    cs = spec.camera
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
    return camera, {
        "camera.distance": dist,
        "camera.elevation": elev,
        "camera.azimuth": azim,
        "camera.fov": fov,
        "camera.look_at.x": float(target[0]),
        "camera.look_at.y": float(target[1]),
        "camera.look_at.z": float(target[2]),
    }


def sample_lights(
    spec: Spec, draw: _Drawer, r: np.random.Generator, look_at: np.ndarray
) -> tuple[tuple[Sun, float, tuple[Lamp, ...]], Factors]:
    """The lights stream: the sun (direction, intensity, colour) and the ambient level (none
    with a world map: it lights the scene), then the lamps."""
    ls = spec.lights
    if spec.world is not None:
        lamps, f = sample_lamps(spec, draw, r, look_at)
        return (Sun(direction=(0.0, 0.0, 1.0), intensity=0.0), 0.0, lamps), f
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
    lamps, f = sample_lamps(spec, draw, r, look_at)
    return (sun, amb, lamps), f | {
        "lights.sun.elevation": sel,
        "lights.sun.azimuth": saz,
        "lights.sun.intensity": sint,
        "lights.sun.color.r": scol[0],
        "lights.sun.color.g": scol[1],
        "lights.sun.color.b": scol[2],
        "lights.ambient": amb,
    }


def sample_lamps(
    spec: Spec, draw: _Drawer, r: np.random.Generator, look_at: np.ndarray
) -> tuple[tuple[Lamp, ...], Factors]:
    """Each lamp group's shared settings, then each lamp's position (drawn after the sun and
    ambient, so adding lamps leaves those draws unchanged)."""
    lamps: list[Lamp] = []
    f: Factors = {}
    for g, ls in enumerate(spec.lights.lamps):
        path = f"lights.lamps.{g}"
        count = max(0, round(float(draw(f"{path}.count", ls.count, r))))
        power = float(draw(f"{path}.power", ls.power, r))
        kelvin = float(draw(f"{path}.temperature", ls.temperature, r))
        size = float(draw(f"{path}.size", ls.size, r))
        angle = float(draw(f"{path}.spot_angle", ls.spot_angle, r))
        blend = float(draw(f"{path}.spot_blend", ls.spot_blend, r))
        color = kelvin_to_rgb(kelvin)
        target = np.asarray(ls.target if ls.target is not None else look_at, dtype=np.float64)
        for _ in range(count):
            pos = np.array(
                [float(draw(f"{path}.position.{a}", getattr(ls.position, a), r)) for a in "xyz"]
            )
            aim = target - pos
            n = float(np.linalg.norm(aim))
            aim = aim / n if n > 1e-9 else np.array([0.0, 0.0, -1.0])
            lamps.append(
                Lamp(
                    kind=ls.type,
                    position=tuple(float(c) for c in pos),
                    direction=tuple(float(c) for c in aim),
                    power=power,
                    color=color,
                    size=size,
                    spot_angle=angle,
                    spot_blend=blend,
                )
            )
        f |= {
            f"{path}.count": count,
            f"{path}.power": power,
            f"{path}.temperature": kelvin,
            f"{path}.size": size,
        }
        if ls.type == "spot":
            f |= {f"{path}.spot_angle": angle, f"{path}.spot_blend": blend}
    return tuple(lamps), f


def sample_world(
    spec: Spec, draw: _Drawer, r: np.random.Generator
) -> tuple[tuple[World, Sun, float], Factors]:
    """The world stream: which map, its strength and turn, whether the camera sees it; and the
    sun and ambient level the map amounts to (what the tiny backend lights with)."""
    from synthcv.render.environment_map import estimate_lighting, resolve, rotate_z

    ws = spec.world
    assert ws is not None
    name = draw("world.hdri", ws.hdri, r)
    strength = float(draw("world.strength", ws.strength, r))
    rotation = float(draw("world.rotation", ws.rotation, r))
    visible = bool(draw("world.visible_background", ws.visible_background, r))
    path = resolve(str(name))
    light = estimate_lighting(path)
    sun_dir = rotate_z(np.asarray(light.sun_direction), rotation)
    sun = Sun(
        direction=tuple(float(v) for v in sun_dir),
        intensity=light.sun_intensity * strength,
        color=light.sun_color,
    )
    ambient = light.ambient * strength
    world = World(hdri=path, strength=strength, rotation=rotation, visible_background=visible)
    return (world, sun, ambient), {
        "world.hdri": str(name),
        "world.strength": strength,
        "world.rotation": rotation,
        "world.visible_background": visible,
        "world.sun.elevation": math.degrees(math.asin(max(-1.0, min(1.0, sun_dir[2])))),
        "world.sun.azimuth": math.degrees(math.atan2(sun_dir[1], sun_dir[0])) % 360.0,
        "world.sun.intensity": sun.intensity,
        "world.ambient": ambient,
    }


def _surface(draw: _Drawer, path: str, ss: Any, r: np.random.Generator) -> tuple[Material, Factors]:
    """A room surface's material; its texture tiles ``texture_scale`` times per metre."""
    _, rgb = _hsv(draw, f"{path}.color", ss.color, r)
    tex = draw(f"{path}.texture", ss.texture, r)
    scale = float(draw(f"{path}.texture_scale", ss.texture_scale, r))
    rough = float(draw(f"{path}.roughness", ss.roughness, r))
    texture = _texture(tex)
    mat = Material(color=tuple(rgb), roughness=rough, texture=texture, texture_scale=scale)
    return mat, {
        f"{path}.color.r": rgb[0],
        f"{path}.color.g": rgb[1],
        f"{path}.color.b": rgb[2],
        f"{path}.texture": "none" if texture is None else str(tex),
        f"{path}.texture_scale": scale,
        f"{path}.roughness": rough,
    }


def _openings(
    r: np.random.Generator, lengths: list[float], wanted: list[tuple[str, float, float, float]]
) -> list[tuple[str, room_geo.Opening]]:
    """Place each wanted opening (kind, width, bottom, top) on a random wall, away from the
    corners (0.2 m) and the openings placed before it (0.1 m); one that fits nowhere after 50
    tries is left out."""
    placed: list[tuple[str, room_geo.Opening]] = []
    for kind, width, z0, z1 in wanted:
        for _ in range(50):
            wall = int(r.integers(0, 4))
            room_left = lengths[wall] - width - 0.4
            if room_left <= 0:
                continue
            u0 = 0.2 + float(r.uniform(0.0, room_left))
            o = room_geo.Opening(wall, u0, u0 + width, z0, z1)
            if all(p.wall != wall or o.u1 + 0.1 <= p.u0 or p.u1 + 0.1 <= o.u0 for _, p in placed):
                placed.append((kind, o))
                break
    return placed


TRAY_LOOK = Material(color=(0.55, 0.57, 0.6), roughness=0.4)


def sample_room(
    spec: Spec, draw: _Drawer, r: np.random.Generator
) -> tuple[tuple[tuple[StuffPart, ...], float], Factors]:
    """The room stream: the room's size and surfaces, its windows and door, the table in the
    middle (and its tray), and the furniture by the walls. Returns the parts and the height
    the objects are dropped from (the table's top, or the tray's bottom)."""
    rs = spec.room
    assert rs is not None
    ids = {name: k + 1 for k, name in enumerate(spec.class_names)}
    floor_z = spec.ground.height
    width = float(draw("room.width", rs.width, r))
    depth = float(draw("room.depth", rs.depth, r))
    height = float(draw("room.height", rs.height, r))
    f: Factors = {"room.width": width, "room.depth": depth, "room.height": height}
    looks = {}
    for part in ("floor", "walls", "ceiling"):
        looks[part], ff = _surface(draw, f"room.{part}", getattr(rs, part), r)
        f |= ff
    n_win = max(0, round(float(draw("room.windows.count", rs.windows.count, r))))
    win_w = float(draw("room.windows.width", rs.windows.width, r))
    win_h = float(draw("room.windows.height", rs.windows.height, r))
    sill = float(draw("room.windows.sill", rs.windows.sill, r))
    win_top = min(sill + win_h, height - 0.05)
    f |= {
        "room.windows.count": n_win,
        "room.windows.width": win_w,
        "room.windows.height": win_h,
        "room.windows.sill": sill,
    }
    wanted = []
    door_look = None
    if rs.door is not None:
        dw = float(draw("room.door.width", rs.door.width, r))
        dh = min(float(draw("room.door.height", rs.door.height, r)), height - 0.05)
        _, door_rgb = _hsv(draw, "room.door.color", rs.door.color, r)
        door_look = Material(color=tuple(door_rgb), roughness=0.5)
        f |= {
            "room.door.width": dw,
            "room.door.height": dh,
            "room.door.color.r": door_rgb[0],
            "room.door.color.g": door_rgb[1],
            "room.door.color.b": door_rgb[2],
        }
        wanted.append(("door", dw, 0.0, dh))
    if win_top > sill + 0.05:
        wanted += [("window", win_w, sill, win_top)] * n_win
    lengths = [depth, width, depth, width]
    openings = _openings(r, lengths, wanted)
    f["room.windows.placed"] = sum(kind == "window" for kind, _ in openings)
    holes = [o for _, o in openings]

    origin, identity = np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0])

    def part(name: str, stuff: str, boxes: np.ndarray, mat: Material, pos=origin, q=identity):
        mesh = room_geo.box_mesh(boxes, f"room:{name}", mat.texture_scale)
        mat = replace(mat, texture_scale=1.0)  # tiled in the UVs already
        return StuffPart(name, stuff, ids[stuff], mesh, pos, q, mat, boxes)

    shell = room_geo.shell_boxes(width, depth, height, floor_z)
    parts = [
        part("floor", "floor", shell["floor"], looks["floor"]),
        part("ceiling", "ceiling", shell["ceiling"], looks["ceiling"]),
    ]
    for k in range(4):
        boxes = room_geo.wall_boxes(k, width, depth, height, floor_z, holes)
        if len(boxes):
            parts.append(part(f"wall-{k}", "wall", boxes, looks["walls"]))
    for kind, o in openings:
        if kind == "door" and door_look is not None:
            boxes = room_geo.door_boxes(o, width, depth, floor_z)
            parts.append(part("door", "door", boxes, door_look))

    # furniture keeps clear of the door's swing, and of each other
    footprints = [
        room_geo.door_clearance(o, width, depth) for kind, o in openings if kind == "door"
    ]
    support = 0.0
    if rs.table is not None:
        ts = rs.table
        tw = float(draw("room.table.width", ts.width, r))
        td = float(draw("room.table.depth", ts.depth, r))
        th = float(draw("room.table.height", ts.height, r))
        yaw = float(draw("room.table.yaw", ts.yaw, r))
        look, ff = _surface(draw, "room.table.surface", ts.surface, r)
        tray = bool(draw("room.table.tray", ts.tray, r))
        f |= ff | {
            "room.table.width": tw,
            "room.table.depth": td,
            "room.table.height": th,
            "room.table.yaw": yaw,
            "room.table.tray": tray,
        }
        q = _euler_quat(0.0, 0.0, yaw)
        pos = np.array([0.0, 0.0, floor_z])
        boxes = room_geo.table_boxes(tw, td, th)
        parts.append(part("table", "furniture", boxes, look, pos, q))
        footprints.append(room_geo.footprint(pos, yaw, boxes))
        support = th
        if tray:
            tray_boxes = room_geo.tray_boxes(min(0.6, 0.8 * tw), min(0.45, 0.8 * td))
            top = np.array([0.0, 0.0, floor_z + th])
            parts.append(part("tray", "furniture", tray_boxes, TRAY_LOOK, top, q))
            support = th + room_geo.TRAY_FLOOR
    n_furn = max(0, round(float(draw("room.furniture.count", rs.furniture.count, r))))
    placed = 0
    for k in range(n_furn):
        kind = str(draw("room.furniture.kind", rs.furniture.kind, r))
        scale = float(draw("room.furniture.scale", rs.furniture.scale, r))
        look, _ = _surface(draw, "room.furniture.surface", rs.furniture.surface, r)
        boxes = room_geo.furniture_boxes(kind, scale, height)
        for _ in range(50):  # a random wall and place along it, until it fits
            wall = int(r.integers(0, 4))
            pose = room_geo.against_wall(boxes, wall, float(r.uniform()), width, depth, floor_z)
            if pose is None:
                continue
            pos, yaw = pose
            fp = room_geo.footprint(pos, yaw, boxes)
            if room_geo.inside_room(fp, width, depth) and not any(
                room_geo.rectangles_overlap(fp, other, 0.05) for other in footprints
            ):
                q = _euler_quat(0.0, 0.0, yaw)
                parts.append(part(f"furniture-{k}", "furniture", boxes, look, pos, q))
                footprints.append(fp)
                placed += 1
                break
    f |= {"room.furniture.count": n_furn, "room.furniture.placed": placed}
    return (tuple(parts), support), f


def sample_ground(
    spec: Spec, draw: _Drawer, r: np.random.Generator
) -> tuple[tuple[Ground, tuple[float, float, float]], Factors]:
    """The ground stream: the ground's colour, texture and roughness, then the background."""
    gs = spec.ground
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
    return (ground, tuple(bg)), {
        "ground.texture": "none" if ground.material.texture is None else str(gtex),
        "ground.color.r": gcol[0],
        "ground.color.g": gcol[1],
        "ground.color.b": gcol[2],
        "ground.texture_scale": gscale,
        "ground.roughness": grough,
        "background.r": bg[0],
        "background.g": bg[1],
        "background.b": bg[2],
    }


def sample_objects(
    spec: Spec, draw: _Drawer, r: np.random.Generator, support: float = 0.0
) -> tuple[list[SceneObject], float, Factors]:
    """The objects stream: how many, then per object its class and :func:`draw_object`.

    ``support``: how far above the ground the drop stack starts (a room's table top).
    Returns the objects, the top of the drop stack (distractors stack on it) and the factors.
    """
    os_ = spec.objects
    n_obj = max(0, round(float(draw("objects.count", os_.count, r))))
    names = list(os_.classes)
    weights = np.array([os_.classes[n].weight for n in names], dtype=np.float64)
    weights /= max(weights.sum(), 1e-300)  # no classes only with count 0 (a people-only spec)
    objects: list[SceneObject] = []
    stack_top = support
    # Ground footprints of the objects placed so far, when placement limits their overlap.
    footprints: list[np.ndarray] | None = None if os_.pose.max_overlap is None else []
    for _ in range(n_obj):
        ci = int(r.choice(len(names), p=weights))
        name = names[ci]
        cspec = os_.classes[name]
        path = f"objects.classes.{name}"
        d, stack_top = draw_object(
            spec,
            draw,
            r,
            stack_top,
            asset=cspec.asset,
            asset_path=f"{path}.asset",
            look=cspec,
            path=path,
            footprints=footprints,
        )
        if d is None:
            continue  # no room for it within max_overlap
        objects.append(
            SceneObject(
                instance_id=len(objects) + 1,
                class_name=name,
                class_id=ci + 1,
                mass=cspec.mass,
                **d._asdict(),
            )
        )
    if footprints is None:
        return objects, stack_top, {"objects.count": n_obj}
    # With a placement limit the scene holds what was placed; what found no room is recorded.
    left_out = n_obj - len(objects)
    return objects, stack_top, {"objects.count": len(objects), "objects.left_out": left_out}


def sample_distractors(
    spec: Spec, draw: _Drawer, r: np.random.Generator, first_id: int, stack_top: float
) -> tuple[list[SceneObject], float, Factors]:
    """The distractors stream: how many, then per distractor its asset and :func:`draw_object`.

    Instance ids continue after ``first_id`` objects; the drop stack continues at ``stack_top``.
    """
    ds = spec.distractors
    n_dis = max(0, round(float(draw("distractors.count", ds.count, r))))
    objects: list[SceneObject] = []
    for _ in range(n_dis):
        ai = int(r.integers(len(ds.assets)))
        d, stack_top = draw_object(
            spec,
            draw,
            r,
            stack_top,
            asset=ds.assets[ai],
            asset_path=f"distractors.assets[{ai}]",
            look=ds,
            path="distractors",
        )
        assert d is not None  # distractors are placed without an overlap limit
        objects.append(
            SceneObject(
                instance_id=first_id + len(objects) + 1,
                class_name="distractor",
                class_id=0,
                is_distractor=True,
                **d._asdict(),
            )
        )
    return objects, stack_top, {"distractors.count": n_dis}


class DrawnObject(NamedTuple):
    """One object's realized mesh, pose, material and recorded attributes (the fields of a
    :class:`SceneObject` that the shared draw makes; the caller adds class and instance id)."""

    mesh: Mesh
    position: np.ndarray
    orientation: np.ndarray
    material: Material
    attributes: dict[str, Any]


def draw_object(
    spec: Spec,
    draw: _Drawer,
    r: np.random.Generator,
    stack_top: float,
    *,
    asset: AssetSpec,
    asset_path: str,
    look: ClassSpec | DistractorsSpec,
    path: str,
    footprints: list[np.ndarray] | None = None,
) -> tuple[DrawnObject | None, float]:
    """Draw one object, a class instance or a distractor, from ``r`` in this order: the asset
    (drawn at ``asset_path``), then ``look``'s scale, colour and material (at ``path``), then
    the pose (:func:`_place`, which moves the drop stack's ``stack_top`` up). With
    ``footprints`` (placement with ``max_overlap``) the object is None when it found no room."""
    from synthcv.assets import build_mesh, kinds, scale_mesh

    realized = realize_asset(draw, asset_path, asset, r)
    scale = float(draw(f"{path}.scale", look.scale, r))
    hsv, rgb = _hsv(draw, f"{path}.color", look.color, r)
    material, mattrs = _material(draw, f"{path}.material", look.material, rgb, r, realized)
    mesh = scale_mesh(build_mesh(realized), scale)
    attrs = _object_attrs(mesh, realized, scale, hsv, kinds.kind_of(realized)) | mattrs
    pose, stack_top = _place(spec, draw, r, mesh, stack_top, footprints)
    if pose is None:
        return None, stack_top
    return DrawnObject(mesh, pose[0], pose[1], material, attrs), stack_top


def _object_attrs(
    mesh: Mesh,
    asset: dict[str, Any],
    scale: float,
    hsv: tuple[float, float, float],
    kind: AssetKind,
) -> dict[str, Any]:
    """The generic per-object attributes, then the ones the asset's kind records."""
    attrs: dict[str, Any] = {
        "asset": mesh.source,
        "scale": scale,
        "color_h": hsv[0],
        "color_s": hsv[1],
        "color_v": hsv[2],
    }
    return attrs | kind.factors(asset, mesh)


def _place(
    spec: Spec,
    draw: _Drawer,
    r: np.random.Generator,
    mesh: Any,
    stack_top: float,
    footprints: list[np.ndarray] | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray] | None, float]:
    """Initial pose. With physics, objects are stacked in the air so none start overlapping.

    With ``footprints`` (``pose.max_overlap`` set), x and y are redrawn until the object's
    ground footprint overlaps no earlier one by more than ``max_overlap`` (IoU of the xy
    boxes): rejection sampling, like the real digit scenes' layout; after
    ``placement_tries`` failures the pose is None and the object is left out."""
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
    posed = mesh.vertices @ quat_to_matrix(q).T
    if footprints is not None:
        placed = _find_room(ps, draw, r, posed, footprints, x, y)
        if placed is None:
            return None, stack_top
        x, y = placed
    zs = posed[:, 2]
    lo, hi = float(zs.min()), float(zs.max())
    base = spec.ground.height - lo + z
    if spec.physics.enabled:
        pz = base + stack_top + drop
        stack_top += (hi - lo) + drop + 0.01
    else:  # without physics the stack never rises: stack_top is the support (a table's top)
        pz = base + stack_top
    return (np.array([x, y, pz]), q), stack_top


def _find_room(
    ps: Any,
    draw: _Drawer,
    r: np.random.Generator,
    posed: np.ndarray,
    footprints: list[np.ndarray],
    x: float,
    y: float,
) -> tuple[float, float] | None:
    """A position (x, y) whose footprint overlaps every placed one by at most
    ``ps.max_overlap``, redrawing x and y from the pose's own distributions; None if none of
    ``ps.placement_tries`` (default 50) positions fits. The found footprint is recorded."""
    lo, hi = posed[:, :2].min(0), posed[:, :2].max(0)
    tries = ps.placement_tries or 50
    for attempt in range(tries):
        if attempt:
            x = float(draw("objects.pose.x", ps.x, r))
            y = float(draw("objects.pose.y", ps.y, r))
        box = np.array([x + lo[0], y + lo[1], x + hi[0], y + hi[1]])
        if all(_box_iou(box, other) <= ps.max_overlap for other in footprints):
            footprints.append(box)
            return x, y
    return None


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def sample_people(
    spec: Spec,
    draw: _Drawer,
    r: np.random.Generator,
    camera: Camera,
    others: list[SceneObject],
    stuff: tuple[StuffPart, ...] = (),
) -> tuple[list[SceneObject], Factors]:
    """The people stream: how many, then per person its look and pose
    (:func:`_draw_person`), then its place (:func:`_place_person`).

    Every person's values are drawn in one fixed order (so a sweep over one of them leaves the
    rest alone); placement redraws x and y until the person's ground footprint keeps
    ``placement.gap`` from every other person and object (objects where they start, before
    physics), or leaves the person out after ``placement.tries``.
    """
    from synthcv.people.person import PERSON_CLASS

    ps = spec.people
    assert ps is not None
    n = max(0, round(float(draw("people.count", ps.count, r))))
    taken = [_footprint(o) for o in others]
    # a room's walls, door and furniture (not its floor and ceiling) are in the way too
    taken += [_stuff_footprint(p) for p in stuff if p.stuff not in ("floor", "ceiling")]
    out: list[SceneObject] = []
    for _ in range(n):
        params, materials, attrs, facing, target = _draw_person(spec, draw, r, camera)
        placed = _place_person(spec, draw, r, camera, params, facing, target, taken)
        if placed is None:
            continue
        taken.append(placed.footprint)
        attrs["asset"] = placed.mesh.source
        attrs["people.distance"] = float(np.linalg.norm(placed.position - camera.position))
        out.append(
            SceneObject(
                instance_id=len(others) + len(out) + 1,
                class_name=PERSON_CLASS,
                class_id=len(spec.objects.classes) + 1,
                mesh=placed.mesh,
                position=placed.position,
                orientation=_euler_quat(0.0, 0.0, placed.yaw),
                material=materials[0],
                mass=0.0,
                attributes=attrs,
                region_materials=materials,
                person=placed.rig,
            )
        )
    return out, {"people.count": len(out), "people.left_out": n - len(out)}


def _draw_person(
    spec: Spec, draw: _Drawer, r: np.random.Generator, camera: Camera
) -> tuple[Any, tuple[Material, ...], dict[str, Any], float, np.ndarray | None]:
    """One person's pose, shape and look: (params, region materials, recorded attributes,
    facing, gaze target), drawn in a fixed order."""
    from synthcv.people.body import BodyShape
    from synthcv.people.person import REGIONS, PersonParams, skin_rgb

    ps = spec.people
    assert ps is not None

    def d(path: str, dist: Distribution) -> Any:
        return draw(f"people.{path}", dist, r)

    pose = str(d("pose", ps.pose))
    phase = float(d("phase", ps.phase))
    perturb = float(d("perturb", ps.perturb))
    height = float(d("height", ps.height))
    build = float(d("build", ps.build))
    leg, arm, torso = (
        float(d(k, getattr(ps, k))) for k in ("leg_ratio", "arm_ratio", "torso_ratio")
    )
    tone = float(d("skin_tone", ps.skin_tone))
    hair = str(d("hair.style", ps.hair.style))
    hair_hsv, hair_rgb = _hsv(draw, "people.hair.color", ps.hair.color, r)
    sleeves = str(d("top.sleeves", ps.top.sleeves))
    top_hsv, top_rgb = _hsv(draw, "people.top.color", ps.top.color, r)
    legs = str(d("bottom.length", ps.bottom.length))
    bottom_hsv, bottom_rgb = _hsv(draw, "people.bottom.color", ps.bottom.color, r)
    top_pattern = str(d("top.pattern", ps.top.pattern))
    bottom_pattern = str(d("bottom.pattern", ps.bottom.pattern))
    _, shoes_rgb = _hsv(draw, "people.shoes.color", ps.shoes.color, r)
    _, iris_rgb = _hsv(draw, "people.eyes.iris", ps.eyes.iris, r)
    opening = float(d("eyes.opening", ps.eyes.opening))
    gaze_yaw = float(d("gaze.yaw", ps.gaze.yaw))
    gaze_pitch = float(d("gaze.pitch", ps.gaze.pitch))
    head = [float(d(f"head.{k}", getattr(ps.head, k))) for k in ("yaw", "pitch", "roll")]
    facing = float(d("placement.facing", ps.placement.facing))
    blend: tuple[str, float, float] | None = None
    if ps.blend is not None:
        blend = (
            str(d("blend.pose", ps.blend.pose)),
            float(d("blend.phase", ps.blend.phase)),
            float(d("blend.weight", ps.blend.weight)),
        )
    target = camera.position if ps.gaze.target == "camera" else None
    if ps.gaze.point is not None:
        target = np.array([float(d(f"gaze.point.{k}", getattr(ps.gaze.point, k))) for k in "xyz"])

    params = PersonParams(
        pose=pose,
        phase=phase,
        perturb=perturb,
        height=height,
        shape=BodyShape(build=build, leg=leg, arm=arm, torso=torso, hair=hair),
        head_yaw=head[0],
        head_pitch=head[1],
        head_roll=head[2],
        sleeves=sleeves,
        legs=legs,
        gaze=ps.gaze.target,
        gaze_yaw=gaze_yaw,
        gaze_pitch=gaze_pitch,
        eyelid=opening,
        contact=ps.contact,
        blend_pose=None if blend is None else blend[0],
        blend_phase=0.0 if blend is None else blend[1],
        blend_weight=0.0 if blend is None else blend[2],
    )
    by_region = {
        "skin": Material(color=skin_rgb(tone), roughness=0.45),
        "top": Material(color=tuple(top_rgb), roughness=0.85, procedural=_pattern(top_pattern)),
        "bottom": Material(
            color=tuple(bottom_rgb), roughness=0.85, procedural=_pattern(bottom_pattern)
        ),
        "shoes": Material(color=tuple(shoes_rgb), roughness=0.6),
        "hair": Material(color=tuple(hair_rgb), roughness=0.55),
        "sclera": Material(color=(0.93, 0.92, 0.89), roughness=0.15),
        "iris": Material(color=tuple(iris_rgb), roughness=0.15),
        "pupil": Material(color=(0.02, 0.02, 0.02), roughness=0.1),
    }
    attrs: dict[str, Any] = {
        "people.pose": pose,
        "people.phase": phase,
        "people.perturb": perturb,
        "people.height": height,
        "people.build": build,
        "people.leg_ratio": leg,
        "people.arm_ratio": arm,
        "people.torso_ratio": torso,
        "people.skin_tone": tone,
        "people.hair.style": hair,
        "people.hair.color_v": hair_hsv[2],
        "people.top.sleeves": sleeves,
        "people.top.color_h": top_hsv[0],
        "people.bottom.length": legs,
        "people.bottom.color_h": bottom_hsv[0],
        "people.top.pattern": top_pattern,
        "people.bottom.pattern": bottom_pattern,
        "people.eyes.opening": opening,
        "people.gaze.yaw": gaze_yaw,
        "people.gaze.pitch": gaze_pitch,
        "people.head.yaw": head[0],
        "people.head.pitch": head[1],
        "people.head.roll": head[2],
        "people.placement.facing": facing,
    }
    if blend is not None:
        attrs |= dict(
            zip(
                ("people.blend.pose", "people.blend.phase", "people.blend.weight"),
                blend,
                strict=True,
            )
        )
    if ps.gaze.point is not None and target is not None:
        attrs |= {f"people.gaze.point.{k}": float(v) for k, v in zip("xyz", target, strict=True)}
    return params, tuple(by_region[name] for name in REGIONS), attrs, facing, target


def _place_person(
    spec: Spec,
    draw: _Drawer,
    r: np.random.Generator,
    camera: Camera,
    params: Any,
    facing: float,
    target: np.ndarray | None,
    taken: list[np.ndarray],
) -> Any:
    """The person built where x and y put it clear of ``taken`` footprints (facing the camera
    turned by ``facing``), or None after ``placement.tries``. Each try builds the person
    there: its footprint depends on the pose, and its eyes on where it stands."""
    from synthcv.people.person import PersonBuild, level_of_detail, person_at

    ps = spec.people
    assert ps is not None
    for _attempt in range(ps.placement.tries):
        x = float(draw("people.placement.x", ps.placement.x, r))
        y = float(draw("people.placement.y", ps.placement.y, r))
        to_camera = math.degrees(math.atan2(camera.position[1] - y, camera.position[0] - x))
        middle = np.array([x, y, spec.ground.height + params.height / 2])
        seen_at = camera.K[1, 1] / max(float(np.linalg.norm(camera.position - middle)), 1e-6)
        build = PersonBuild(
            replace(params, lod=level_of_detail(seen_at)),
            int(r.integers(2**63)),
            (x, y),
            to_camera + facing,
            spec.ground.height,
            target,
        )
        candidate = person_at(build, 0.0)
        if all(_gap(candidate.footprint, t) >= ps.placement.gap for t in taken):
            return candidate
    return None


def _pattern(name: str) -> str | None:
    return None if name == "none" else name


def _footprint(obj: SceneObject) -> np.ndarray:
    """World xy box [x0, y0, x1, y1] of an object where it starts."""
    xy = (obj.mesh.vertices @ quat_to_matrix(obj.orientation).T)[:, :2] + obj.position[:2]
    return np.array([*xy.min(0), *xy.max(0)])


def _stuff_footprint(part: StuffPart) -> np.ndarray:
    """World xy box [x0, y0, x1, y1] of a room part."""
    rot = quat_to_matrix(part.orientation)
    signs = np.array([[sx, sy, 0.0] for sx in (-1, 1) for sy in (-1, 1)])
    xy = (
        np.concatenate([(c + signs * s / 2) @ rot.T for c, s in part.boxes], axis=0)[:, :2]
        + np.asarray(part.position)[:2]
    )
    return np.array([*xy.min(0), *xy.max(0)])


def _gap(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between two xy boxes (negative: how deep they overlap, the smaller way)."""
    dx = max(b[0] - a[2], a[0] - b[2])
    dy = max(b[1] - a[3], a[1] - b[3])
    return max(dx, dy)
