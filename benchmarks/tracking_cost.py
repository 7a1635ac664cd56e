"""What MLflow tracking adds to a small ``synthcv generate``: wall time with ``--track`` minus
wall time with ``--no-track``, same spec and count, measured in one run.

The first tracked run in a new folder creates the SQLite store (tables, migrations) and is
reported on its own; the figure that matters is the median over the repeats after it (target:
≤ 0.5 s). Runs alternate tracked / untracked so machine load hits both alike.

Example::

    ./run python benchmarks/tracking_cost.py
    ./run python benchmarks/tracking_cost.py --spec examples/digits.yaml --count 16 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import announce

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--spec", type=Path, default=REPO / "examples" / "digits.yaml")
    p.add_argument("--count", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    announce()
    return args


def _generate(spec: Path, out: Path, count: int, track: bool, cwd: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.pop("SYNTHCV_TRACKING", None)
    cmd = [sys.executable, "-m", "synthcv", "generate", str(spec), "--out", str(out)]
    cmd += ["--count", str(count), "--track" if track else "--no-track"]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    spec = args.spec.resolve()
    with tempfile.TemporaryDirectory(prefix="synthcv-tracking-cost-") as tmp:
        root = Path(tmp)
        first = _generate(spec, root / "first", args.count, True, root)
        tracked, untracked = [], []
        for i in range(args.repeats):
            untracked.append(_generate(spec, root / f"off{i}", args.count, False, root))
            tracked.append(_generate(spec, root / f"on{i}", args.count, True, root))
    off, on = statistics.median(untracked), statistics.median(tracked)
    print(f"synthcv generate {spec.name} --count {args.count}, {args.repeats} repeats each")
    print("| runs | median wall s | all |")
    print("|---|---|---|")
    print(f"| --no-track | {off:.2f} | {', '.join(f'{t:.2f}' for t in untracked)} |")
    print(f"| --track | {on:.2f} | {', '.join(f'{t:.2f}' for t in tracked)} |")
    print(
        f"tracking cost after the first run: {on - off:+.2f} s (tracked / untracked {on / off:.2f})"
    )
    print(f"first tracked run in a new folder (creates mlflow.db): {first:.2f} s")
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")


if __name__ == "__main__":
    main()
