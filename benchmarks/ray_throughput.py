"""Generation rate on Ray against the local worker pool, same spec, same machine, one run.

``local``: ``generate(..., workers=W)`` (a process pool). ``ray``: ``generate(...,
executor="ray")`` on a local Ray started beforehand with ``num_cpus=W`` (its start-up, reported
apart, is paid once per cluster, not per dataset). Both render the same samples; the datasets
are compared byte for byte. Target: ray ≥ 0.9× local.

Where Ray's time goes is measured in the same run from ``/proc`` (Linux): CPU-seconds of the
local pool's workers, of Ray's workers, and of Ray's own daemons (GCS, raylet, agents, log
monitor) while the dataset renders. On a machine with few cores the daemons' share is CPU
the renders do not get.

Example::

    ./run python benchmarks/ray_throughput.py --count 96 --workers 2
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import announce

os.environ.setdefault("SYNTHCV_TRACKING", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
REPO = Path(__file__).resolve().parents[1]


def _files(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".synthcv")
    }


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_DAEMONS = ("gcs_server", "raylet", "agent", "log_monitor", "monitor.py")


def _ray_cpu() -> dict[str, float]:
    """CPU-seconds so far of every live Ray process, split into workers and daemons."""
    out = {"workers": 0.0, "daemons": 0.0}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
        if cmd.startswith("ray::"):
            out["workers"] += cpu
        elif "ray" in cmd and any(k in cmd for k in _DAEMONS):
            out["daemons"] += cpu
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", type=Path, default=REPO / "examples" / "tabletop.yaml")
    ap.add_argument("--count", type=int, default=96)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    announce()

    import ray

    from synthcv.pipeline import generate
    from synthcv.spec import load_spec

    spec = load_spec(args.spec).with_count(args.count)
    with tempfile.TemporaryDirectory(prefix="synthcv-ray-bench-") as tmp:
        root = Path(tmp)
        import resource

        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        generate(spec, root / "local", workers=args.workers, progress=False, on_empty="allow")
        local = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        local_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        t0 = time.perf_counter()
        ray.init(
            num_cpus=args.workers,
            include_dashboard=False,
            log_to_driver=False,
            _node_ip_address="127.0.0.1",
            logging_level="warning",
        )
        startup = time.perf_counter() - t0
        try:
            cpu0 = _ray_cpu()
            t0 = time.perf_counter()
            generate(spec, root / "ray", progress=False, on_empty="allow", executor="ray")
            on_ray = time.perf_counter() - t0
            cpu1 = _ray_cpu()  # the workers stay alive until shutdown: their times are here
        finally:
            ray.shutdown()
        same = _files(root / "local") == _files(root / "ray")
    n = spec.total_count
    print(f"{args.spec.name}, {n} samples, {args.workers} workers / Ray CPUs")
    print("| executor | seconds | samples/s | vs local |")
    print("|---|---|---|---|")
    print(f"| local pool | {local:.1f} | {n / local:.2f} | 1.00 |")
    print(f"| ray | {on_ray:.1f} | {n / on_ray:.2f} | {local / on_ray:.2f} |")
    print(f"Ray start-up (once per cluster): {startup:.1f} s; byte-identical datasets: {same}")
    workers = cpu1["workers"] - cpu0["workers"]
    daemons = cpu1["daemons"] - cpu0["daemons"]
    print(
        f"CPU-seconds while rendering: local pool workers {local_cpu:.1f}; Ray workers "
        f"{workers:.1f}, Ray daemons {daemons:.1f} ({daemons / on_ray:.2f} of a core, "
        f"{100 * daemons / (on_ray * args.workers):.0f}% of the {args.workers} CPUs)"
    )
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, ray {ray.__version__}"
    )
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")


if __name__ == "__main__":
    main()
