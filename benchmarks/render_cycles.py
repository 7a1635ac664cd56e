"""Benchmark the Cycles backend against a bare ``bpy`` script and the tiny backend.

What is timed, per sample, on the same Scenes with the same Cycles settings (samples, pixel
filter, seed, threads, CPU):

- ``synthcv``: ``CyclesRenderer.render`` (one render writing Combined + Depth + Normal + Object
  Index, read back and converted) + ``compute_labels`` + writing every output file (RGB PNG, depth
  TIFF, instance/semantic PNG, normals PNG) — what ``synthcv generate`` does per sample;
- ``bare bpy``: a hand-written script (separate process, so both get a fresh Blender) that builds
  the same objects, sun, world and camera and renders RGB only to a PNG — what a user would
  otherwise write, with no labels at all;
- ``tiny``: the PyBullet TinyRenderer backend + the same labels and files;
- ``synthcv.generate``: the whole pipeline (sampling, physics, render, labels, shards,
  manifest) with one worker, renderer start-up included, for both backends.

Scenes come from the spec pipeline (tabletop-like spec, physics settled) when
``synthcv.sampler`` can build them, else from hand-built tabletop scenes (pybullet_data duck
and primitives); the output says which. Run briefly and niced::

    nice -n 10 .venv/bin/python benchmarks/render_cycles.py --n 4
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

TABLETOP: dict[str, Any] = {
    "count": 64,
    "seed": 7,
    "camera": {
        "distance": {"uniform": [0.9, 1.3]},
        "elevation": {"uniform": [25, 65]},
        "azimuth": {"uniform": [0, 360]},
        "look_at": [0, 0, 0.05],
        "fov": 45,
    },
    "ground": {"texture": {"choice": ["checker_blue", "none"]}, "texture_scale": 2.0},
    "objects": {
        "count": {"randint": [2, 5]},
        "pose": {
            "x": {"uniform": [-0.2, 0.2]},
            "y": {"uniform": [-0.2, 0.2]},
            "rotation": "random",
        },
        "classes": {
            "duck": {"asset": {"pybullet": "duck"}},
            "teddy": {"asset": {"pybullet": "teddy"}},
            "cube": {"asset": {"primitive": "cube", "size": 0.08}},
            "torus": {"asset": {"primitive": "torus", "major_radius": 0.05, "minor_radius": 0.018}},
        },
    },
    "physics": {"enabled": True, "steps": 240},
}


def spec_scenes(n: int, size: int) -> list[Any] | None:
    """Scenes from the spec pipeline, or None when it cannot build them yet."""
    try:
        from synthcv.physics import settle
        from synthcv.sampler import sample_scene
        from synthcv.spec import load_spec

        spec = load_spec({**TABLETOP, "image": {"width": size, "height": size}})
        return [settle(sample_scene(spec, i), spec.physics)[0] for i in range(n)]
    except Exception as e:  # the lead's modules may not be there yet
        print(f"[spec pipeline unavailable: {type(e).__name__}: {e}]")
        return None


def hand_scenes(n: int, size: int) -> list[Any]:
    """Tabletop-like scenes built directly from the scene dataclasses."""
    import pybullet_data
    import trimesh
    from scipy.spatial.transform import Rotation

    from synthcv.scene import (
        Camera,
        Ground,
        Material,
        Mesh,
        Scene,
        SceneObject,
        Sun,
        matrix_to_quat,
    )

    def mesh(tm: Any, source: str) -> Mesh:
        v = np.asarray(tm.vertices, dtype=np.float64)
        v = v - (v.min(0) + v.max(0)) / 2
        uv = getattr(tm.visual, "uv", None)
        faces = np.asarray(tm.faces, dtype=np.int32)
        return Mesh(v, faces, source, uv=None if uv is None else np.asarray(uv, float))

    data = pybullet_data.getDataPath()
    duck = trimesh.load(os.path.join(data, "duck.obj"), force="mesh")
    duck.apply_scale(0.12 / duck.extents.max())
    meshes = [
        mesh(duck, "pybullet_data:duck"),
        mesh(trimesh.creation.box((0.08, 0.08, 0.08)), "primitive:cube"),
        mesh(trimesh.creation.torus(0.05, 0.018), "primitive:torus"),
        mesh(trimesh.creation.icosphere(3, radius=0.05), "primitive:sphere"),
    ]
    rng = np.random.default_rng(0)
    scenes = []
    for index in range(n):
        objects = []
        for k in range(int(rng.integers(2, 6))):
            m = meshes[int(rng.integers(len(meshes)))]
            q = matrix_to_quat(Rotation.random(random_state=rng).as_matrix())
            pos = np.array([*rng.uniform(-0.2, 0.2, 2), m.extents.max() / 2])
            tex = os.path.join(data, "duckCM.png") if m.source.endswith("duck") else None
            mat = Material(color=tuple(rng.uniform(0.2, 0.9, 3)), texture=tex)
            objects.append(SceneObject(k + 1, "thing", 1, m, pos, q, mat))
        az, el = rng.uniform(0, 2 * np.pi), np.radians(rng.uniform(25, 65))
        eye = rng.uniform(0.9, 1.3) * np.array(
            [np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)]
        )
        cam = Camera(
            size,
            size,
            Camera.intrinsics_from_fov(size, size, 45),
            Camera.look_at(eye, [0, 0, 0.05]),
        )
        gtex = os.path.join(data, "checker_blue.png") if index % 2 == 0 else None
        ground = Ground(size=6.0, material=Material(color=(0.55, 0.45, 0.35), texture=gtex))
        scenes.append(Scene(index, 1000 + index, objects, cam, Sun((0.3, 0.2, 0.9)), 0.4, ground))
    return scenes


def write_outputs(scene: Any, result: Any, out: Path) -> None:
    """Labels + every output file, as the pipeline writes them per sample."""
    from synthcv.format.codecs import encode_normals, write_depth, write_png
    from synthcv.labels import compute_labels

    labels = compute_labels(scene, result)
    i = scene.index
    write_png(out / f"{i:06d}.rgb.png", result.rgb)
    write_depth(out / f"{i:06d}.depth.tiff", result.depth)
    write_png(out / f"{i:06d}.instance.png", result.instance)
    write_png(out / f"{i:06d}.semantic.png", labels.semantic)
    write_png(out / f"{i:06d}.normals.png", encode_normals(labels.normals))


def time_backend(
    renderer: Any, scenes: list[Any], out: Path, label: str
) -> tuple[list[float], list[float], list[float]]:
    """Per-sample wall seconds, the part of it spent on labels + files, and CPU seconds
    (all threads): CPU time is what to compare on a machine shared with other jobs."""
    from rich.progress import track

    renderer.render(scenes[0])  # warm-up: kernels, texture cache
    times, post, cpu = [], [], []
    for sc in track(scenes, description=label, transient=True):
        t0, c0 = time.perf_counter(), time.process_time()
        result = renderer.render(sc)
        t1 = time.perf_counter()
        write_outputs(sc, result, out)
        t2 = time.perf_counter()
        times.append(t2 - t0)
        post.append(t2 - t1)
        cpu.append(time.process_time() - c0)
    return times, post, cpu


# --------------------------------------------------------------------------- bare bpy script
def bare_bpy(scenes: list[Any], samples: int, threads: int, out: Path) -> list[tuple[float, float]]:
    """What a user would hand-write: build the scene with bpy, render RGB to PNG. No labels.

    Returns (wall, CPU) seconds per sample."""
    import math

    import bpy
    from mathutils import Matrix

    bpy.ops.wm.read_factory_settings(use_empty=True)
    sc = bpy.context.scene
    sc.render.engine = "CYCLES"
    sc.cycles.device = "CPU"
    sc.cycles.samples = samples
    sc.cycles.use_denoising = False
    sc.cycles.filter_width = 0.01
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

    def material(m: Any) -> Any:
        mat = bpy.data.materials.new("m")
        bsdf = mat.node_tree.nodes["Principled BSDF"]
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in m.color]
        bsdf.inputs["Base Color"].default_value = (*lin, 1.0)  # same albedo as synthcv
        bsdf.inputs["Roughness"].default_value = m.roughness
        if m.texture:
            tex = mat.node_tree.nodes.new("ShaderNodeTexImage")
            tex.image = bpy.data.images.load(m.texture, check_existing=True)
            mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
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
        me.materials.append(material(m))
        ob = bpy.data.objects.new(name, me)
        ob.matrix_world = Matrix(mw.tolist())
        sc.collection.objects.link(ob)

    times = []
    for k, scene in enumerate([scenes[0], *scenes]):  # first one is a warm-up
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
        bg = world.node_tree.nodes["Background"]
        bg.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)  # same light as synthcv
        bg.inputs["Strength"].default_value = scene.ambient
        g = scene.ground
        if g.enabled:
            s = g.size / 2
            gv = np.array(
                [[-s, -s, g.height], [s, -s, g.height], [s, s, g.height], [-s, s, g.height]]
            )
            guv = np.array([[0, 0], [g.size, 0], [g.size, g.size], [0, g.size]], float)
            add("ground", gv, np.array([[0, 1, 2], [0, 2, 3]]), guv, g.material, np.eye(4))
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


def _bare_main(argv: list[str]) -> None:
    path, samples, threads, out = argv[0], int(argv[1]), int(argv[2]), Path(argv[3])
    with open(path, "rb") as fh:
        scenes = pickle.load(fh)
    # Blender's progress chatter goes to fd 1; keep our JSON on a private copy of stdout
    real = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    times = bare_bpy(scenes, samples, threads, out)
    os.write(real, (json.dumps(times) + "\n").encode())


def rate(times: list[float]) -> str:
    return f"{1 / np.mean(times):7.3f} samples/s ({1000 * np.mean(times):7.1f} ms/sample)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4, help="scenes to time (after one warm-up)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="Cycles threads (0 = all cores)")
    args = ap.parse_args()

    scenes = spec_scenes(args.n, args.size)
    source = "spec pipeline (sample_scene + physics)"
    if scenes is None:
        scenes = hand_scenes(args.n, args.size)
        source = "hand-built tabletop scenes (spec pipeline not importable)"
    print(f"{len(scenes)} scenes at {args.size}², {args.samples} samples, threads={args.threads}")
    print(f"scenes from: {source}")

    import synthcv
    from synthcv.render.cycles import CyclesRenderer
    from synthcv.render.tiny import TinyRenderer

    with tempfile.TemporaryDirectory(prefix="synthcv-bench-") as tmp:
        out = Path(tmp)
        pk = out / "scenes.pkl"
        pk.write_bytes(pickle.dumps(scenes))
        bare_cmd = [sys.executable, __file__, "--bare", str(pk), str(args.samples)]
        bare_cmd += [str(args.threads), str(out)]
        # bare before and after ours, so drifting load on a shared machine hits both alike
        bare_pairs = _run_bare(bare_cmd)
        r = CyclesRenderer(samples=args.samples, threads=args.threads)
        ours, post, ours_cpu = time_backend(r, scenes, out, "synthcv cycles")
        r.close()
        bare_pairs += _run_bare(bare_cmd)
        tiny = TinyRenderer()
        tiny_t, _, _ = time_backend(tiny, scenes, out, "tiny")
        tiny.close()

        full = {}
        if source.startswith("spec"):  # the real thing: synthcv.generate, one worker
            for backend in ("cycles", "tiny"):
                spec = {**TABLETOP, "count": args.n, "image": {"width": args.size}}
                spec["image"]["height"] = args.size
                spec["renderer"] = {"backend": backend}
                if backend == "cycles":
                    spec["renderer"].update(samples=args.samples, threads=args.threads)
                t0 = time.perf_counter()
                synthcv.generate(spec, out / f"gen-{backend}", workers=1, progress=False)
                full[backend] = [(time.perf_counter() - t0) / args.n] * args.n

    for backend, times in full.items():
        print(f"synthcv.generate ({backend:6s})   : {rate(times)}  [incl. start-up, physics]")
    bare, bare_cpu = [w for w, _ in bare_pairs], [c for _, c in bare_pairs]
    print(f"synthcv cycles, all outputs : {rate(ours)}")
    print(f"bare bpy script, RGB only   : {rate(bare)}")
    print(f"tiny backend, all outputs   : {rate(tiny_t)}")
    ratio = np.mean(ours) / np.mean(bare)
    print(f"ratio synthcv / bare = {ratio:.3f} (overhead {100 * (ratio - 1):+.1f}%; target <= 15%)")
    cpu_ratio = np.mean(ours_cpu) / np.mean(bare_cpu)
    print(
        f"CPU seconds/sample (all threads): synthcv {np.mean(ours_cpu):.2f}, bare "
        f"{np.mean(bare_cpu):.2f} -> ratio {cpu_ratio:.3f} (overhead {100 * (cpu_ratio - 1):+.1f}%)"
    )
    render_only = np.mean(ours) - np.mean(post)
    print(
        f"  render + pass read-back {1000 * render_only:.1f} ms/sample "
        f"(ratio to bare {render_only / np.mean(bare):.3f}); "
        f"labels + files {1000 * np.mean(post):.1f} ms/sample"
    )


def _run_bare(cmd: list[str]) -> list[tuple[float, float]]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"bare bpy script failed:\n{proc.stderr[-2000:]}")
    return [tuple(t) for t in json.loads(proc.stdout.strip().splitlines()[-1])]


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--bare":
        _bare_main(sys.argv[2:])
    else:
        main()
