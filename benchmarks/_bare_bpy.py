"""A hand-written bpy script, the baseline the Cycles benchmarks compare synthcv with.

What a user would otherwise write: build each scene's objects, sun and world (uniform or an
HDRI) with bpy and render RGB to a PNG; no labels. It runs in its own process, so it gets a
fresh Blender::

    python benchmarks/_bare_bpy.py SCENES.pkl OUT_DIR SETTINGS_JSON THREADS

``SETTINGS_JSON`` holds ``scene.cycles`` attributes to set over Blender's factory defaults
(``{}`` keeps them all: 4,096 adaptive samples, OpenImageDenoise). Always set, so that both
scripts draw the same picture: the CPU device, the "Standard" view transform and no dither;
and the scene as synthcv describes it — meshes shaded smooth with edges sharper than 30° kept
sharp (``Mesh.set_sharp_from_angle``, what a user writes for "shade auto smooth" without its
modifier), image textures scaled by the material's ``texture_scale`` and tinted by its colour,
its metallic. ``--flat`` keeps Blender's defaults for new meshes instead (flat facets, the
texture as-is): the baseline before 2026-12-01, which drew a different picture.
Prints one JSON line: ``[[wall, cpu], ...]`` seconds per scene after a warm-up render; the
PNGs are ``OUT_DIR/bare-NNNNNN.png``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def bare_bpy(
    scenes: list[Any], out: Path, settings: dict[str, Any], threads: int, flat: bool = False
) -> list[tuple[float, float]]:
    """Render ``scenes`` the plain way; (wall, CPU) seconds per scene."""
    import bpy
    from mathutils import Matrix

    bpy.ops.wm.read_factory_settings(use_empty=True)
    sc = bpy.context.scene
    sc.render.engine = "CYCLES"
    sc.cycles.device = "CPU"
    for key, value in settings.items():
        setattr(sc.cycles, key, value)
    sc.render.threads_mode = "FIXED" if threads else "AUTO"
    if threads:
        sc.render.threads = threads
    sc.render.image_settings.file_format = "PNG"
    sc.render.dither_intensity = 0.0
    sc.view_settings.view_transform = "Standard"
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    sc.collection.objects.link(cam)
    sc.camera = cam
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sc.collection.objects.link(sun)
    world = bpy.data.worlds.new("w")
    sc.world = world
    nodes, links = world.node_tree.nodes, world.node_tree.links
    background = nodes["Background"]
    env = nodes.new("ShaderNodeTexEnvironment")
    mapping = nodes.new("ShaderNodeMapping")
    coords = nodes.new("ShaderNodeTexCoord")
    links.new(coords.outputs["Generated"], mapping.inputs["Vector"])
    links.new(mapping.outputs["Vector"], env.inputs["Vector"])

    def material(m: Any) -> Any:
        mat = bpy.data.materials.new("m")
        bsdf = mat.node_tree.nodes["Principled BSDF"]
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in m.color]
        bsdf.inputs["Base Color"].default_value = (*lin, 1.0)  # same albedo as synthcv
        bsdf.inputs["Roughness"].default_value = m.roughness
        if not flat:
            bsdf.inputs["Metallic"].default_value = m.metallic
        if m.texture:
            nodes, links = mat.node_tree.nodes, mat.node_tree.links
            tex = nodes.new("ShaderNodeTexImage")
            tex.image = bpy.data.images.load(m.texture, check_existing=True)
            if flat:
                links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
                return mat
            mapping = nodes.new("ShaderNodeMapping")
            mapping.inputs["Scale"].default_value = (m.texture_scale, m.texture_scale, 1.0)
            links.new(nodes.new("ShaderNodeTexCoord").outputs["UV"], mapping.inputs["Vector"])
            links.new(mapping.outputs["Vector"], tex.inputs["Vector"])
            tint = nodes.new("ShaderNodeMix")
            tint.data_type, tint.blend_type = "RGBA", "MULTIPLY"
            tint.inputs["Factor"].default_value = 1.0
            tint.inputs["A"].default_value = (*lin, 1.0)
            links.new(tex.outputs["Color"], tint.inputs["B"])
            links.new(tint.outputs["Result"], bsdf.inputs["Base Color"])
        return mat

    def add(name: str, v: np.ndarray, f: np.ndarray, uv: Any, m: Any, mw: np.ndarray) -> None:
        me = bpy.data.meshes.new(name)
        me.vertices.add(len(v))
        me.vertices.foreach_set("co", v.astype(np.float32).ravel())
        me.loops.add(3 * len(f))
        me.loops.foreach_set("vertex_index", f.astype(np.int32).ravel())
        me.polygons.add(len(f))
        me.polygons.foreach_set("loop_start", np.arange(0, 3 * len(f), 3, dtype=np.int32))
        if uv is not None:
            me.uv_layers.new().data.foreach_set("uv", uv[f.ravel()].astype(np.float32).ravel())
        me.update(calc_edges=True)
        if not flat:
            me.shade_smooth()
            me.set_sharp_from_angle(angle=math.radians(30.0))
        me.materials.append(material(m))
        ob = bpy.data.objects.new(name, me)
        ob.matrix_world = Matrix(mw.tolist())
        sc.collection.objects.link(ob)

    times = []
    for k, scene in enumerate([scenes[0], *scenes]):  # the first one is a warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        for coll in (bpy.data.objects, bpy.data.meshes, bpy.data.materials):
            for idb in [x for x in coll if x.name not in ("cam", "sun")]:
                coll.remove(idb)
        c = scene.camera
        sc.render.resolution_x, sc.render.resolution_y = c.width, c.height
        sc.cycles.seed = scene.seed % 2_147_483_647
        cam.data.sensor_fit = "HORIZONTAL"
        cam.data.lens = c.K[0, 0] * cam.data.sensor_width / c.width
        cam.data.shift_x = ((c.width - 1) / 2 - c.K[0, 2]) / c.width
        cam.data.shift_y = (c.K[1, 2] - (c.height - 1) / 2) / c.width
        cam.matrix_world = Matrix(
            (np.linalg.inv(c.world_to_camera) @ np.diag([1.0, -1, -1, 1])).tolist()
        )
        d = np.asarray(scene.sun.direction, float)
        sun.rotation_euler = (0.0, math.acos(d[2]), math.atan2(d[1], d[0]))
        sun.data.energy = 0.7 * scene.sun.intensity * math.pi
        for link in list(background.inputs["Color"].links):
            links.remove(link)
        if scene.world is None:
            background.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
            background.inputs["Strength"].default_value = scene.ambient
        else:  # the map lights the scene and is seen, turned as synthcv turns it
            env.image = bpy.data.images.load(scene.world.hdri, check_existing=True)
            mapping.inputs["Rotation"].default_value = (0, 0, -math.radians(scene.world.rotation))
            links.new(env.outputs["Color"], background.inputs["Color"])
            background.inputs["Strength"].default_value = scene.world.strength
        g = scene.ground
        if g.enabled:
            s = g.size / 2
            gv = np.array(
                [[-s, -s, g.height], [s, -s, g.height], [s, s, g.height], [-s, s, g.height]]
            )
            guv = np.array([[0, 0], [g.size, 0], [g.size, g.size], [0, g.size]], float)
            gm = g.material  # as synthcv draws it, a ground texture replaces the colour
            if gm.texture and not flat:
                gm = dataclasses.replace(gm, color=(1.0, 1.0, 1.0))
            add("ground", gv, np.array([[0, 1, 2], [0, 2, 3]]), guv, gm, np.eye(4))
        for o in scene.objects:
            add(
                f"o{o.instance_id}",
                o.mesh.vertices,
                o.mesh.faces,
                o.mesh.uv,
                o.material,
                o.object_to_world(),
            )
        sc.render.filepath = str(out / f"bare-{scene.index:06d}.png")
        bpy.ops.render.render(write_still=True)
        if k:
            times.append((time.perf_counter() - t0, time.process_time() - c0))
    return times


def run(
    scenes_pickle: Path, out: Path, settings: dict[str, Any], threads: int, flat: bool = False
) -> list[Any]:
    """Run the script in a fresh process; (wall, CPU) seconds per scene."""
    import subprocess

    cmd = [sys.executable, __file__, str(scenes_pickle), str(out), json.dumps(settings)]
    cmd += [str(threads), *(["--flat"] if flat else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"bare bpy script failed:\n{proc.stderr[-2000:]}")
    return [tuple(t) for t in json.loads(proc.stdout.strip().splitlines()[-1])]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
    with open(sys.argv[1], "rb") as fh:
        loaded = pickle.load(fh)
    # Blender's progress chatter goes to fd 1: keep the JSON on a private copy of stdout
    real = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    flat = sys.argv[5:] == ["--flat"]
    result = bare_bpy(loaded, Path(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4]), flat)
    os.write(real, (json.dumps(result) + "\n").encode())
