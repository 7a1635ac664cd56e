"""One line saying what a benchmark ran on: CPU model, cores, and the versions that matter."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line() -> str:
    """``machine: <CPU> × N cores, Python x, numpy x, torch x, bpy x, pybullet x``."""
    parts = [
        f"machine: {cpu_model()} × {os.cpu_count()} cores",
        f"Python {platform.python_version()}",
    ]
    for pkg in ("numpy", "torch", "bpy", "pybullet"):
        try:
            parts.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            parts.append(f"{pkg} absent")
    return ", ".join(parts)


def announce() -> None:
    """Print the exact command and the machine, first thing in a benchmark's output."""
    import sys

    print(f"command: python {' '.join(sys.argv)}", flush=True)
    print(machine_line(), flush=True)
