"""Environments (issue #24): world maps, lamps and rooms, on the tiny backend (Cycles parity is
in test_environments_cycles.py)."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy.ndimage import map_coordinates

from synthcv.environment.kelvin import chromaticity, kelvin_to_rgb
from synthcv.format import open_dataset
from synthcv.pipeline import generate, render_sample
from synthcv.render import environment_map as em
from synthcv.render.tiny import TinyRenderer
from synthcv.sampler import sample_scene
from synthcv.spec import Spec, SpecError, load_spec

DOCS = Path(__file__).resolve().parents[1] / "docs" / "environments.md"
CLASSES = {"cube": {"asset": {"primitive": "cube", "size": 0.08}}}


def tabletop(**over) -> dict:
    spec = {
        "count": 3,
        "seed": 5,
        "image": {"width": 64, "height": 48},
        "camera": {
            "distance": 1.0,
            "elevation": {"uniform": [20, 50]},
            "azimuth": {"uniform": [0, 360]},
            "fov": 50,
        },
        "objects": {"count": 3, "classes": CLASSES},
    }
    spec.update(over)
    return spec


def room_spec(**over) -> dict:
    spec = tabletop(
        camera={
            "distance": {"uniform": [1.2, 1.6]},
            "elevation": {"uniform": [15, 45]},
            "azimuth": {"uniform": [0, 360]},
            "look_at": [0, 0, 0.75],
            "fov": 70,
        },
        room={"windows": {"count": 0}, "furniture": {"count": 3}},
    )
    spec.update(over)
    return spec


def _ray_directions(camera) -> np.ndarray:
    h, w = camera.height, camera.width
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    k = camera.K
    rays = np.stack([(xs - k[0, 2]) / k[0, 0], (ys - k[1, 2]) / k[1, 1], np.ones_like(xs)], -1)
    d = rays @ camera.camera_to_world[:3, :3].T
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def _srgb8(linear: np.ndarray) -> np.ndarray:
    c = np.clip(linear, 0.0, 1.0)
    enc = np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)
    return np.rint(enc * 255)


# ------------------------------------------------------------------ world maps


def test_a_world_changes_pixels_never_labels(tmp_path):
    """The same spec with and without an HDRI: the same scenes, byte-identical label files and
    objects table; only the RGB and the world's factors differ."""
    plain = Spec.model_validate(tabletop())
    lit = Spec.model_validate(
        tabletop(world={"hdri": "forest", "rotation": {"uniform": [0, 360]}, "strength": 0.5})
    )
    assert plain.scene_hash == lit.scene_hash
    generate(plain, tmp_path / "plain", workers=1)
    generate(lit, tmp_path / "lit", workers=1)
    a, b = open_dataset(tmp_path / "plain"), open_dataset(tmp_path / "lit")
    for i in range(len(a)):
        for mod in ("depth", "instance", "semantic", "normals"):
            assert np.array_equal(a[i][mod], b[i][mod]), (i, mod)
        assert not np.array_equal(a[i]["rgb"], b[i]["rgb"])
    assert a.objects.equals(b.objects)
    extra = set(b.samples.column_names) - set(a.samples.column_names)
    assert {"world.hdri", "world.rotation", "world.strength", "world.sun.elevation"} <= extra
    assert not [c for c in extra if not c.startswith("world.")]
    for c in a.samples.column_names:
        if not c.startswith("lights."):  # the map replaces the sun and ambient
            assert a.samples.column(c).equals(b.samples.column(c)), c


def _sky_spec(rotation: float, azimuth: float, visible: bool = True) -> Spec:
    return Spec.model_validate(
        {
            "count": 1,
            "image": {"width": 96, "height": 64},
            "camera": {"distance": 1.0, "elevation": 10, "azimuth": azimuth, "fov": 80},
            "ground": {"enabled": False},
            "objects": {"count": 0, "classes": CLASSES},
            "world": {
                "hdri": "sunset",
                "rotation": rotation,
                "strength": 2.0,
                "visible_background": visible,
            },
            "physics": {"enabled": False},
        }
    )


def test_the_background_is_the_map_along_each_camera_ray(tiny):
    """Every background pixel equals a direct lookup of its ray in the map (the documented
    equirectangular convention, bilinear, wrapping in azimuth) × strength, sRGB-displayed."""
    spec = _sky_spec(rotation=35.0, azimuth=20.0)
    out = render_sample(spec, 0, tiny)
    assert (out.result.depth == 0).all()
    env = em.load(em.resolve("sunset"))
    d = _ray_directions(out.scene.camera)
    t = math.radians(-35.0)  # the map turned by +35°: look up the ray turned back
    x = math.cos(t) * d[..., 0] - math.sin(t) * d[..., 1]
    y = math.sin(t) * d[..., 0] + math.cos(t) * d[..., 1]
    u = (0.5 - np.arctan2(y, x) / (2 * math.pi)) % 1.0
    v = np.arccos(np.clip(d[..., 2], -1, 1)) / math.pi
    h, w = env.shape[:2]
    col, row = u * w - 0.5, v * h - 0.5
    padded = np.concatenate([env, env[:, :1]], axis=1)  # wrap the right edge
    expect = np.stack(
        [
            map_coordinates(padded[..., c], [row, col % w], order=1, mode="nearest")
            for c in range(3)
        ],
        axis=-1,
    )
    got = out.result.rgb.astype(np.float64)
    assert np.abs(got - _srgb8(expect * 2.0)).max() <= 1


def test_turning_the_map_turns_the_background(tiny):
    """A map turned by 90° seen by a camera turned by 90° gives the same image; the same
    camera sees a different one."""
    base = render_sample(_sky_spec(0.0, 30.0), 0, tiny).result.rgb.astype(int)
    both = render_sample(_sky_spec(90.0, 120.0), 0, tiny).result.rgb.astype(int)
    map_only = render_sample(_sky_spec(90.0, 30.0), 0, tiny).result.rgb.astype(int)
    assert np.abs(base - both).max() <= 1
    assert np.abs(base - map_only).mean() > 5


def test_hidden_background_shows_the_background_colour(tiny):
    rgb = render_sample(_sky_spec(0.0, 0.0, visible=False), 0, tiny).result.rgb
    assert (rgb == 0).all()  # the default background: black


def test_a_users_map_file_resolves_against_the_spec_and_reads_as_hdr(tmp_path, tiny):
    """A relative .hdr path is resolved against the spec file's directory, recorded as written,
    and reads back (Radiance RGBE, through bpy's OpenImageIO) like the EXR it came from."""
    from synthcv.render import _blender_compat as compat

    oiio = compat.oiio()
    env = em.load(em.resolve("forest"))
    (tmp_path / "maps").mkdir()
    hdr = tmp_path / "maps" / "sky.hdr"
    out = oiio.ImageOutput.create(str(hdr))
    assert out.open(str(hdr), oiio.ImageSpec(env.shape[1], env.shape[0], 3, "float"))
    assert out.write_image(np.ascontiguousarray(env))
    out.close()
    back = em.load(str(hdr))
    # RGBE: 8 bits of mantissa under one exponent shared by a pixel's three channels
    assert (np.abs(back - env) <= env.max(axis=-1, keepdims=True) / 64 + 1e-6).all()
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(json.dumps(tabletop(count=1, world={"hdri": "maps/sky.hdr"})))
    spec = load_spec(spec_file)
    assert spec.world.hdri.params[0] == str(hdr.resolve())
    scene = sample_scene(spec, 0)
    assert scene.world.hdri == str(hdr.resolve())
    assert scene.factors["world.hdri"] == "maps/sky.hdr"  # as written: portable


def test_the_map_sun_is_its_brightest_region():
    """The estimated sun points at the brightest pixel of the map, and turning the map turns
    the recorded sun azimuth with it."""
    path = em.resolve("sunrise")
    env = em.load(path)
    lum = env @ np.array([0.2126, 0.7152, 0.0722])
    row, col = np.unravel_index(np.argmax(lum), lum.shape)
    peak = em.pixel_directions(env.shape[1], env.shape[0])[row, col]
    light = em.estimate_lighting(path)
    assert np.degrees(np.arccos(np.clip(np.dot(peak, light.sun_direction), -1, 1))) < 12
    az = []
    for rot in (0.0, 90.0):
        spec = Spec.model_validate(tabletop(world={"hdri": "sunrise", "rotation": rot}))
        az.append(sample_scene(spec, 0).factors["world.sun.azimuth"])
    assert abs(((az[1] - az[0]) % 360) - 90) < 1e-6


# ------------------------------------------------------------------ colour temperature


def test_colour_temperature_maps_to_the_documented_rgb():
    """kelvin_to_rgb reproduces the table in docs/environments.md, and the chromaticities are
    the CIE's Planckian locus (published values)."""
    rows = re.findall(
        r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$",
        DOCS.read_text(),
        flags=re.M,
    )
    assert len(rows) >= 10
    for k, r, g, b, x, y in rows:
        assert np.allclose(kelvin_to_rgb(float(k)), [float(r), float(g), float(b)], atol=6e-4)
        assert np.allclose(chromaticity(float(k)), [float(x), float(y)], atol=6e-5)
    published = {2856: (0.44757, 0.40745), 4000: (0.3805, 0.3768), 10000: (0.2806, 0.2883)}
    for k, xy in published.items():
        assert np.allclose(chromaticity(k), xy, atol=0.0015), k
    ratios = [kelvin_to_rgb(k)[2] / kelvin_to_rgb(k)[0] for k in range(1500, 20001, 500)]
    assert all(a < b for a, b in itertools.pairwise(ratios))  # bluer when hotter
    with pytest.raises(ValueError, match="colour temperature"):
        kelvin_to_rgb(500)


# ------------------------------------------------------------------ lamps


def _lamp_floor(kind: str, **lamp) -> Spec:
    return Spec.model_validate(
        {
            "count": 1,
            "image": {"width": 65, "height": 65},
            "camera": {"distance": 2.0, "elevation": 90, "azimuth": 0, "fov": 60},
            "ground": {"color": {"h": 0, "s": 0, "v": 1.0}},
            "lights": {
                "sun": {"intensity": 0.0},
                "ambient": 0.0,
                "lamps": [
                    {"type": kind, "power": 10.0, "position": {"x": 0, "y": 0, "z": 1.0}, **lamp}
                ],
            },
            "objects": {"count": 0, "classes": CLASSES},
            "physics": {"enabled": False},
        }
    )


def test_a_point_lamp_lights_a_white_floor_as_blender_does(tiny):
    """10 W one metre above a white floor: radiance 10 / 4π² straight below, falling off with
    cos θ / r² elsewhere (Blender's point-light units), displayed as sRGB."""
    out = render_sample(_lamp_floor("point"), 0, tiny)
    rgb, cam = out.result.rgb.astype(float), out.scene.camera
    ys, xs = np.mgrid[0:65, 0:65]
    pts = cam.unproject(np.column_stack([xs.ravel(), ys.ravel()]), out.result.depth.ravel())
    r2 = pts[:, 0] ** 2 + pts[:, 1] ** 2 + 1.0
    expect = 10.0 / (4 * math.pi**2) * (1.0 / np.sqrt(r2)) / r2
    # red: 6500 K (the default temperature) is (1, 0.944, 0.993) in linear sRGB
    assert np.abs(rgb[..., 0].ravel() - _srgb8(expect)).max() <= 1
    assert rgb[32, 32, 0] == pytest.approx(_srgb8(np.array(10 / (4 * math.pi**2))), abs=1)


def test_a_spot_lights_only_its_cone_and_temperature_colours_it(tiny):
    spec = _lamp_floor(
        "spot", spot_angle=40.0, spot_blend=0.0, temperature=2700.0, target=[0, 0, 0]
    )
    out = render_sample(spec, 0, tiny)
    cam, rgb = out.scene.camera, out.result.rgb.astype(int)
    ys, xs = np.mgrid[0:65, 0:65]
    pts = cam.unproject(np.column_stack([xs.ravel(), ys.ravel()]), out.result.depth.ravel())
    off_axis = np.degrees(np.arctan2(np.hypot(pts[:, 0], pts[:, 1]), 1.0)).reshape(65, 65)
    assert (rgb[off_axis > 20.5] == 0).all()
    lit = rgb[off_axis < 19.5]
    assert (lit[:, 0] > 0).all()
    assert (lit[:, 0] >= lit[:, 1]).all() and (lit[:, 1] >= lit[:, 2]).all()  # warm white


def test_a_sun_of_intensity_zero_is_no_sun():
    """Night scenes: a zero-intensity sun leaves neither highlights nor (shadowed) highlights;
    it once kept a specular term, so shadows still moved pixels by up to 5 levels."""
    spec = Spec.model_validate(
        {
            "count": 1,
            "image": {"width": 64, "height": 64},
            "camera": {"distance": 1.0, "elevation": 50},
            "lights": {"sun": {"intensity": 0.0}, "ambient": 0.5},
            "objects": {
                "count": 1,
                "classes": {"c": {"asset": {"primitive": "cube", "size": 0.3}}},
            },
            "physics": {"enabled": False},
        }
    )
    shadowed, plain = TinyRenderer(shadows=True), TinyRenderer(shadows=False)
    try:
        a = render_sample(spec, 0, shadowed).result.rgb
        b = render_sample(spec, 0, plain).result.rgb
    finally:
        shadowed.close()
        plain.close()
    assert np.array_equal(a, b)


def test_an_area_lamp_falls_off_with_its_own_cosine(tiny):
    from synthcv.environment.lamps import lamp_radiance
    from synthcv.scene import Lamp

    lamp = Lamp("area", (0.0, 0.0, 1.0), (0.0, 0.0, -1.0), 100.0, (1.0, 1.0, 1.0), size=0.01)
    up = np.array([[0.0, 0.0, 1.0]] * 2)
    below, aside = lamp_radiance(np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), up, [lamp])
    assert below[0] == pytest.approx(100 / math.pi**2)  # Cycles measured 10.03
    cos = 1 / math.sqrt(2)
    assert aside[0] == pytest.approx(100 / math.pi**2 * cos * cos / 2)


# ------------------------------------------------------------------ rooms


def test_a_closed_room_shows_no_background(tiny):
    spec = Spec.model_validate(room_spec(count=6))
    for i in range(spec.count):
        out = render_sample(spec, i, tiny)
        assert (out.result.depth > 0).all(), i


def test_windows_show_the_world_and_only_through_their_openings(tiny):
    """With windows, the pixels that see the map are rays leaving the room through a wall
    between the sill and the window's top."""
    spec = Spec.model_validate(
        room_spec(
            count=8,
            room={"windows": {"count": 4, "height": 1.2, "sill": 0.8}, "door": None},
            world={"hdri": "forest", "strength": 0.5},
            camera={
                "distance": 1.3,
                "elevation": 5,
                "azimuth": {"uniform": [0, 360]},
                "look_at": [0, 0, 1.3],
                "fov": 90,
            },
        )
    )
    seen = 0
    for i in range(spec.count):
        out = render_sample(spec, i, tiny)
        miss = out.result.depth == 0
        if not miss.any():
            continue
        seen += 1
        f, cam = out.scene.factors, out.scene.camera
        d = _ray_directions(cam)[miss]
        eye = cam.position
        half = np.array([f["room.width"] / 2, f["room.depth"] / 2])
        with np.errstate(divide="ignore"):
            t_wall = np.min((np.sign(d[:, :2]) * half - eye[:2]) / d[:, :2], axis=1)
        z = eye[2] + t_wall * d[:, 2]
        assert z.min() >= 0.8 - 0.02 and z.max() <= 0.8 + 1.2 + 0.02
    assert seen >= 3


def _world_boxes(part) -> np.ndarray:
    from synthcv.scene import quat_to_matrix

    rot = quat_to_matrix(part.orientation)
    corners = []
    for centre, size in part.boxes:
        offs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        corners.append((centre + offs * size / 2) @ rot.T + part.position)
    return np.array(corners)  # (N, 8, 3)


def test_furniture_rests_on_the_floor_without_interpenetration():
    import pybullet as p

    from synthcv.scene import quat_to_matrix

    spec = Spec.model_validate(
        room_spec(count=12, room={"furniture": {"count": 5}, "table": {"tray": True}})
    )
    client = p.connect(p.DIRECT)
    try:
        for i in range(spec.count):
            scene = sample_scene(spec, i)
            f = scene.factors
            half = np.array([f["room.width"], f["room.depth"]]) / 2
            furniture = [part for part in scene.stuff if part.stuff == "furniture"]
            assert len(furniture) == 2 + f["room.furniture.placed"]  # table, tray, pieces
            p.resetSimulation(physicsClientId=client)
            bodies = {}
            for part in furniture:
                pts = _world_boxes(part)
                bottom = pts[..., 2].min()
                if part.name == "tray":  # on the table's top
                    assert bottom == pytest.approx(f["room.table.height"], abs=1e-9)
                else:
                    assert bottom == pytest.approx(0.0, abs=1e-9), part.name
                assert (np.abs(pts[..., :2]) <= half + 1e-9).all(), part.name  # inside
                rot = quat_to_matrix(part.orientation)
                bodies[part.name] = [
                    p.createMultiBody(
                        0,
                        p.createCollisionShape(
                            p.GEOM_BOX, halfExtents=(size / 2).tolist(), physicsClientId=client
                        ),
                        basePosition=(part.position + rot @ centre).tolist(),
                        baseOrientation=part.orientation.tolist(),
                        physicsClientId=client,
                    )
                    for centre, size in part.boxes
                ]
            names = list(bodies)
            for a in range(len(names)):
                for b in range(a + 1, len(names)):
                    for ba in bodies[names[a]]:
                        for bb in bodies[names[b]]:
                            for c in p.getClosestPoints(ba, bb, 0.0, physicsClientId=client):
                                assert c[8] >= -1e-4, (i, names[a], names[b], c[8])
    finally:
        p.disconnect(client)


def test_objects_land_on_the_table_or_in_the_tray(tiny):
    spec = Spec.model_validate(
        room_spec(count=4, room={"table": {"tray": True}, "windows": {"count": 0}})
    )
    for i in range(spec.count):
        out = render_sample(spec, i, tiny)
        f = out.scene.factors
        assert out.physics["physics.max_penetration"] < 0.005
        tray_bottom = f["room.table.height"] + 0.01
        on_tray = 0
        for obj in out.scene.objects:
            lowest = (obj.mesh.vertices @ _rot(obj).T + obj.position)[:, 2].min()
            assert lowest >= -0.005  # never through the floor
            if abs(obj.position[0]) < 0.2 and abs(obj.position[1]) < 0.15:
                assert lowest >= tray_bottom - 0.005  # in the tray: never through its bottom
                on_tray += abs(lowest - tray_bottom) < 0.005
        assert on_tray >= 1, i  # something rests on the tray's bottom


def _rot(obj):
    from synthcv.scene import quat_to_matrix

    return quat_to_matrix(obj.orientation)


def test_people_in_a_room_stand_clear_of_walls_and_furniture():
    from synthcv.sampler import _footprint, _stuff_footprint

    spec = Spec.model_validate(
        room_spec(
            count=6,
            objects={"count": 0, "classes": CLASSES},
            people={
                "count": 3,
                "placement": {"x": {"uniform": [-2, 2]}, "y": {"uniform": [-2, 2]}},
            },
            room={"width": 4.5, "depth": 4.5, "windows": {"count": 0}, "furniture": {"count": 4}},
        )
    )
    for i in range(spec.count):
        scene = sample_scene(spec, i)
        blocked = [_stuff_footprint(p) for p in scene.stuff if p.stuff not in ("floor", "ceiling")]
        for person in scene.objects:
            a = _footprint(person)
            for b in blocked:
                gap = max(b[0] - a[2], a[0] - b[2], b[1] - a[3], a[1] - b[3])
                assert gap >= 0.05 - 1e-9, (i, gap)


def test_room_labels_stuff_classes_and_exports_them_as_stuff(tmp_path):
    from synthcv.tasks.coco_data import load_synthcv
    from synthcv.tools.coco import build_coco

    spec = Spec.model_validate(room_spec(count=3))
    generate(spec, tmp_path / "room", workers=1)
    ds = open_dataset(tmp_path / "room")
    classes = {c["name"]: c for c in ds.classes}
    assert [c["name"] for c in ds.classes] == [
        "cube",
        "floor",
        "wall",
        "ceiling",
        "furniture",
        "door",
    ]
    assert all(
        classes[n].get("isthing") == 0 for n in ("floor", "wall", "ceiling", "furniture", "door")
    )
    assert "isthing" not in classes["cube"]
    sem = np.concatenate([ds[i]["semantic"].ravel() for i in range(len(ds))])
    inst = np.concatenate([ds[i]["instance"].ravel() for i in range(len(ds))])
    for name in ("floor", "wall", "furniture"):
        assert (sem == classes[name]["id"]).any(), name
    stuff_ids = [classes[n]["id"] for n in ("floor", "wall", "ceiling", "furniture", "door")]
    assert (inst[np.isin(sem, stuff_ids)] == 0).all()  # no instances on room geometry
    assert set(ds.objects.column("class_name").to_pylist()) <= {"cube"}
    coco = build_coco(ds)
    cats = {c["name"]: c for c in coco["categories"]}
    assert cats["wall"]["isthing"] == 0 and cats["wall"]["supercategory"] == "room"
    assert {a["category_id"] for a in coco["annotations"]} == {classes["cube"]["id"]}
    assert load_synthcv(tmp_path / "room").categories == ["cube"]


def test_every_new_factor_is_in_the_index_and_follows_its_spec(tmp_path):
    from synthcv.conformance import check_conformance

    spec = Spec.model_validate(
        room_spec(
            count=40,
            image={"width": 32, "height": 24},
            world={
                "hdri": {"choice": ["courtyard", "night"]},
                "strength": {"uniform": [0.3, 1.0]},
                "rotation": {"uniform": [0, 360]},
                "visible_background": {"choice": [True, False]},
            },
            room={
                "windows": {"count": {"randint": [0, 2]}},
                "table": {"tray": {"choice": [True, False]}},
            },
            lights={
                "lamps": [
                    {
                        "type": "spot",
                        "count": {"randint": [1, 2]},
                        "power": {"uniform": [50, 400]},
                        "temperature": {"uniform": [2700, 6500]},
                    }
                ]
            },
        )
    )
    generate(spec, tmp_path / "d", workers=1)
    cols = set(pq.read_table(tmp_path / "d" / "samples.parquet").column_names)
    expected = {
        "world.hdri", "world.strength", "world.rotation", "world.visible_background",
        "world.sun.elevation", "world.sun.azimuth", "world.sun.intensity", "world.ambient",
        "room.width", "room.depth", "room.height", "room.floor.color.r", "room.walls.texture",
        "room.ceiling.roughness", "room.windows.count", "room.windows.width",
        "room.windows.placed", "room.door.width", "room.table.width", "room.table.height",
        "room.table.tray", "room.table.surface.color.g", "room.furniture.count",
        "room.furniture.placed", "lights.lamps.0.count", "lights.lamps.0.power",
        "lights.lamps.0.temperature", "lights.lamps.0.size", "lights.lamps.0.spot_angle",
    }  # fmt: skip
    assert expected <= cols, expected - cols
    report = check_conformance(tmp_path / "d")
    tested = {r.factor for r in report.tested}
    assert {"world.rotation", "world.hdri", "room.width", "lights.lamps.0.power"} <= tested
    assert not report.flagged, [r.factor for r in report.flagged]
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["classes"][-1] == {"id": 6, "name": "door", "isthing": 0}


# ------------------------------------------------------------------ errors


def test_spec_errors_name_the_field():
    with pytest.raises(SpecError, match=r"lights\.sun: got a value beside world\.hdri"):
        load_spec(tabletop(world={"hdri": "city"}, lights={"sun": {"intensity": 2}}))
    with pytest.raises(SpecError, match=r"world\.hdri: .*did you mean 'forest'"):
        load_spec(tabletop(world={"hdri": "forst"}))
    with pytest.raises(
        SpecError,
        match=r"camera\.distance: the camera can be .* outside|camera\.distance: the camera can be",
    ):
        load_spec(room_spec(camera={"distance": 4.0, "look_at": [0, 0, 0.75]}))
    with pytest.raises(SpecError, match=r"camera\.elevation: the camera can reach heights"):
        load_spec(room_spec(camera={"distance": 1.0, "elevation": 80, "look_at": [0, 0, 2.0]}))
    with pytest.raises(SpecError, match=r"room\.windows\.count"):
        load_spec(room_spec(room={"windows": {"count": 20}}))


def test_a_missing_map_file_is_an_input_error_before_any_output(tmp_path):
    from typer.testing import CliRunner

    from synthcv.cli import _register, app

    if not app.registered_commands:
        _register()
    spec = tabletop(world={"hdri": "maps/missing.exr"})
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(spec))
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        ["generate", str(path), "--out", str(out)],
        env={"SYNTHCV_TRACKING": "0", "COLUMNS": "300"},
    )
    assert res.exit_code == 2, res.output
    assert "world.hdri" in res.output and "missing.exr" in res.output
    assert "Traceback" not in res.output
    assert not out.exists()
