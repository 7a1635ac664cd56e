"""Throughput of the full `tiny` pipeline vs a bare getCameraImage loop over the same scenes.

    ./run python benchmarks/render_throughput.py [--count 48] [--spec examples/tabletop.yaml]

Prints samples/s for:
  bare       pybullet getCameraImage only, scenes pre-built (the floor any pipeline pays)
  bare+build the same plus creating the scene's bodies (what a hand-written script does)
  full 1w    synthcv generate, all outputs written, 1 worker
  full 2w    the same with 2 workers
and the ratios full-1w / bare and full-2w / full-1w (targets, issue #21: >= 0.5 and >= 1.8).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_line

os.environ.setdefault("SYNTHCV_TRACKING", "0")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(Path(__file__).parents[1] / "examples/tabletop.yaml"))
    ap.add_argument("--count", type=int, default=48)
    args = ap.parse_args()

    from synthcv.physics import settle
    from synthcv.pipeline import generate
    from synthcv.render.tiny import CV_TO_GL, TinyRenderer, gl_projection
    from synthcv.sampler import sample_scene
    from synthcv.spec import load_spec

    spec = load_spec(args.spec).with_count(args.count)
    scenes = [settle(sample_scene(spec, i), spec.physics)[0] for i in range(args.count)]

    r = TinyRenderer()
    p, c = r._p, r._client

    def camera_args(scene):
        cam = scene.camera
        return dict(
            width=cam.width,
            height=cam.height,
            viewMatrix=(CV_TO_GL @ cam.world_to_camera).T.reshape(-1).tolist(),
            projectionMatrix=gl_projection(cam).T.reshape(-1).tolist(),
            lightDirection=list(scene.sun.direction),
            shadow=1,
            renderer=p.ER_TINY_RENDERER,
            physicsClientId=c,
        )

    # bare+build: build bodies and render, per scene
    t0 = time.perf_counter()
    for s in scenes:
        r.render(s)
    t_build = time.perf_counter() - t0
    # bare: getCameraImage only, on the last built scene's bodies replaced per scene
    t_bare = 0.0
    for s in scenes:
        r.render(s)  # build (untimed below)
        kw = camera_args(s)
        t0 = time.perf_counter()
        p.getCameraImage(**kw)
        t_bare += time.perf_counter() - t0
    r.close()

    # where the full pipeline's time goes, per sample (same scenes, one process)
    from synthcv.format.codecs import encode_normals, write_depth, write_png
    from synthcv.labels import compute_labels

    stages = dict.fromkeys(("sample", "physics", "render", "labels", "encode+write"), 0.0)
    r = TinyRenderer()
    stage_dir = Path(tempfile.mkdtemp(prefix="synthcv-stages-"))
    for i in range(args.count):
        t0 = time.perf_counter()
        scene = sample_scene(spec, i)
        t1 = time.perf_counter()
        scene, _ = settle(scene, spec.physics)
        t2 = time.perf_counter()
        res = r.render(scene)
        t3 = time.perf_counter()
        lab = compute_labels(scene, res)
        t4 = time.perf_counter()
        write_png(stage_dir / "rgb.png", res.rgb)
        write_depth(stage_dir / "depth.tiff", res.depth)
        write_png(stage_dir / "instance.png", res.instance)
        write_png(stage_dir / "semantic.png", lab.semantic)
        write_png(stage_dir / "normals.png", encode_normals(lab.normals))
        t5 = time.perf_counter()
        for k, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            stages[k] += dt
    r.close()
    shutil.rmtree(stage_dir, ignore_errors=True)

    tmp = Path(tempfile.mkdtemp(prefix="synthcv-bench-"))
    try:
        t0 = time.perf_counter()
        generate(spec, tmp / "w1", workers=1, progress=False)
        t_full1 = time.perf_counter() - t0
        t0 = time.perf_counter()
        generate(spec, tmp / "w2", workers=2, progress=False)
        t_full2 = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    n = args.count
    rate = {
        k: n / v
        for k, v in [
            ("bare", t_bare),
            ("bare+build", t_build),
            ("full 1w", t_full1),
            ("full 2w", t_full2),
        ]
    }
    print(f"command: python {' '.join(sys.argv)}")
    print(machine_line())
    print(
        f"spec {args.spec}  {spec.image.width}x{spec.image.height}  {n} samples  "
        f"cores {os.cpu_count()}"
    )
    for k, v in rate.items():
        print(f"  {k:<11} {v:8.1f} samples/s")
    print(f"full 1w / bare       = {rate['full 1w'] / rate['bare']:.2f}  (target >= 0.5)")
    print(f"full 1w / bare+build = {rate['full 1w'] / rate['bare+build']:.2f}")
    print(f"full 2w / full 1w    = {rate['full 2w'] / rate['full 1w']:.2f}  (target >= 1.8)")
    print(
        "per-sample stage times (ms): "
        + ", ".join(f"{k} {1000 * v / n:.1f}" for k, v in stages.items())
    )


if __name__ == "__main__":
    main()
