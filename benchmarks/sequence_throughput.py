"""Frames/s of clip generation against single-frame samples/s, measured in the same run.

    .venv/bin/python benchmarks/sequence_throughput.py [--frames 120] [--clip-length 24]

Both write every output at 256² on the tiny backend with one worker: the single-frame run
``--frames`` samples of ``examples/tabletop.yaml``; the sequence run the same spec as clips of
``--clip-length`` frames (objects given velocities, an orbiting camera), ``--frames`` frames
in all, with optical flow both ways. A clip samples, builds and settles its scene once, so a
frame should cost less than a single sample (issue #23's target: >= 1.5x per frame).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import announce

os.environ.setdefault("SYNTHCV_TRACKING", "0")
ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "examples/tabletop.yaml"))
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--clip-length", type=int, default=24)
    args = ap.parse_args()
    announce()

    import numpy as np

    from synthcv.pipeline import generate
    from synthcv.spec import Spec, load_spec

    base = load_spec(args.spec)
    clips = max(1, args.frames // args.clip_length)
    data = base.model_dump(mode="json")
    data["sequence"] = {
        "frames": args.clip_length,
        "fps": 12,
        "objects": {"linear": {"uniform": [0, 0.4]}, "angular": {"uniform": [0, 180]}},
        "camera": {"orbit": {"uniform": [-20, 20]}},
    }
    data["outputs"]["shard_size"] = 1
    seq = Spec.model_validate(data).with_count(clips)
    single = base.with_count(clips * args.clip_length)
    tmp = Path(tempfile.mkdtemp(prefix="synthcv-seq-bench-"))
    try:
        t0 = time.perf_counter()
        generate(single, tmp / "single", workers=1, progress=False)
        t_single = time.perf_counter() - t0
        t0 = time.perf_counter()
        generate(seq, tmp / "clips", workers=1, progress=False)
        t_seq = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = clips * args.clip_length
    single_rate, seq_rate = n / t_single, n / t_seq
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, numpy {np.__version__}"
    )
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"single frames : {n} samples in {t_single:.1f} s = {single_rate:.2f} samples/s")
    print(
        f"clips         : {clips} x {args.clip_length} frames in {t_seq:.1f} s = "
        f"{seq_rate:.2f} frames/s (with flow both ways)"
    )
    print(f"ratio         : {seq_rate / single_rate:.2f}x per frame (target >= 1.5)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
