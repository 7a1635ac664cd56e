"""What worlds and rooms cost on Cycles (issue #24): samples/s and render noise.

Three scene sets, the same objects, the same Cycles sample count:

- ``tabletop``: today's tabletop (ground plane, sun, uniform ambient world);
- ``hdri``: the same scenes under a bundled HDRI world (the map lights them and is seen);
  ``hdri, automatic map`` with Blender's automatic importance map instead of synthcv's 512 one;
- ``room``: the objects on a table in a room with windows, daylight from the HDRI and a spot.

Per set it prints the time per sample (render + labels, after a warm-up), samples/s and their
ratio to the tabletop measured in the same run. The render noise is the PSNR of the
``--samples`` render, raw and denoised (OpenImageDenoise), against a 1,024-sample render of
the same scene: indoor light comes through windows and bounces, which is harder to sample.
Run niced on a quiet machine::

    nice -n 10 .venv/bin/python benchmarks/environment_cycles.py --n 3 --size 128 --samples 32
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_line

OBJECTS = {
    "count": {"randint": [3, 5]},
    "pose": {"x": {"uniform": [-0.2, 0.2]}, "y": {"uniform": [-0.15, 0.15]}, "rotation": "random"},
    "classes": {
        "duck": {"asset": {"pybullet": "duck"}, "material": {"texture": "native"}},
        "cube": {"asset": {"primitive": "cube", "size": 0.08}},
        "torus": {"asset": {"primitive": "torus", "major_radius": 0.05, "minor_radius": 0.018}},
    },
}
CAMERA = {
    "distance": {"uniform": [0.9, 1.2]},
    "elevation": {"uniform": [25, 50]},
    "azimuth": {"uniform": [0, 360]},
    "fov": 50,
}


def specs(size: int) -> dict[str, dict[str, Any]]:
    base = {
        "count": 64,
        "seed": 3,
        "image": {"width": size, "height": size},
        "objects": OBJECTS,
        "physics": {"steps": 480},
    }
    tabletop = {**base, "camera": {**CAMERA, "look_at": [0, 0, 0.05]}}
    hdri = {**tabletop, "world": {"hdri": {"choice": ["courtyard", "forest"]}, "strength": 0.6}}
    room = {
        **base,
        "camera": {**CAMERA, "look_at": [0, 0, 0.8]},
        "world": {"hdri": {"choice": ["courtyard", "forest"]}, "strength": 1.0},
        "room": {"windows": {"count": 2}, "furniture": {"count": 2}},
        "lights": {
            "lamps": [
                {
                    "type": "spot",
                    "power": 300,
                    "temperature": 3000,
                    "position": {"x": 0, "y": 0, "z": 2.3},
                    "spot_angle": 70,
                }
            ]
        },
    }
    return {"tabletop": tabletop, "hdri": hdri, "hdri, automatic map": hdri, "room": room}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3, help="scenes per set")
    ap.add_argument("--size", type=int, default=128, help="image side, pixels")
    ap.add_argument("--samples", type=int, default=32, help="Cycles samples per pixel")
    ap.add_argument("--reference", type=int, default=1024, help="reference samples per pixel")
    args = ap.parse_args()

    import bpy  # noqa: F401  (the version is printed below)

    from synthcv.physics import settle
    from synthcv.pipeline.sample import render_scene
    from synthcv.render import _blender_compat as compat
    from synthcv.render import cycles as cycles_backend
    from synthcv.render.cycles import CyclesRenderer
    from synthcv.sampler import sample_scene
    from synthcv.spec import load_spec

    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"{machine_line()}, Blender {compat.version_string()}")
    fast = CyclesRenderer(samples=args.samples)
    denoised = CyclesRenderer(samples=args.samples, denoise=True)
    reference = CyclesRenderer(samples=args.reference)
    rows = []
    default_map = cycles_backend.WORLD_MAP_RESOLUTION
    for name, raw in specs(args.size).items():
        # "automatic map": Blender's own importance map for the world, which synthcv replaces
        cycles_backend.WORLD_MAP_RESOLUTION = None if "automatic" in name else default_map
        spec = load_spec(raw)
        scenes = [settle(sample_scene(spec, i), spec.physics)[0] for i in range(args.n)]
        render_scene(spec, scenes[0], fast, {})  # warm-up: kernels, textures, the map
        times, noisy, clean = [], [], []
        for sc in scenes:
            t0 = time.perf_counter()
            out = render_scene(spec, sc, fast, {})
            times.append(time.perf_counter() - t0)
            ref = render_scene(spec, sc, reference, {}).result.rgb
            den = render_scene(spec, sc, denoised, {}).result.rgb
            noisy.append(psnr(out.result.rgb, ref))
            clean.append(psnr(den, ref))
        rows.append((name, float(np.median(times)), float(np.mean(noisy)), float(np.mean(clean))))
        print(f"  {name}: {rows[-1][1]:.2f} s/sample", flush=True)
    for r in (fast, denoised, reference):
        r.close()
    base = rows[0][1]
    print(
        f"\n{args.n} scenes per set, {args.size}² px, {args.samples} samples "
        f"(reference {args.reference})"
    )
    print("| set | s/sample | samples/s | vs tabletop | PSNR raw (dB) | PSNR denoised (dB) |")
    print("|---|---|---|---|---|---|")
    for name, t, p_raw, p_den in rows:
        print(f"| {name} | {t:.2f} | {1 / t:.2f} | {base / t:.2f}× | {p_raw:.1f} | {p_den:.1f} |")


if __name__ == "__main__":
    main()
