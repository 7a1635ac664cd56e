"""Does a Cycles worker's memory stay flat over many samples? (issue #21)

BlenderProc's users report Blender growing from 2.7 to 12 GB over a run and restart it per
scene; a synthcv worker renders every sample in one Blender. This renders ``--count`` samples
of the tabletop (every sample a new set of meshes, materials and textures) through the
pipeline's own per-sample path (render, labels, sensor) in one process and prints the
resident set size every ``--every`` samples, and its change from the first reading (taken after
``--warmup`` samples, once caches are full) to the last:

    nice -n 10 .venv/bin/python benchmarks/cycles_memory.py --count 500 --size 64
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine_line

TABLETOP = Path(__file__).parents[1] / "examples" / "tabletop.yaml"


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--size", type=int, default=64, help="image side, pixels")
    ap.add_argument("--samples", type=int, default=4, help="Cycles samples per pixel")
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args()

    from synthcv.pipeline import render_sample
    from synthcv.render.cycles import CyclesRenderer
    from synthcv.spec import load_spec

    print(f"command: python {' '.join(sys.argv)}")
    print(machine_line())
    spec = load_spec(
        TABLETOP,
        overrides={"image": {"width": args.size, "height": args.size, "supersample": 1}},
    ).with_count(args.count)
    renderer = CyclesRenderer(samples=args.samples)
    first = None
    t0 = time.perf_counter()
    readings = []
    for i in range(args.count):
        render_sample(spec, i, renderer)
        done = i + 1
        if done == args.warmup:
            first = rss_mb()
            print(f"  after {done:4d} samples: {first:7.1f} MB (reference)", flush=True)
        elif done % args.every == 0 or done == args.count:
            readings.append(rss_mb())
            print(f"  after {done:4d} samples: {readings[-1]:7.1f} MB", flush=True)
    renderer.close()
    wall = time.perf_counter() - t0
    assert first is not None, "--warmup must be below --count"
    last, peak = readings[-1], max(readings)
    print(
        f"\n{args.count} samples in {wall:.0f} s; RSS {first:.1f} MB after {args.warmup} → "
        f"{last:.1f} MB at the end ({100 * (last - first) / first:+.1f} %), peak "
        f"{peak:.1f} MB ({100 * (peak - first) / first:+.1f} %; target ±10 %)"
    )


if __name__ == "__main__":
    main()
