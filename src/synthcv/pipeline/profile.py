"""Where generation time goes: wall seconds per pipeline stage, summed per process.

Every stage of a sample (drawing the scene, physics, rendering, labels, the sensor, flow,
encoding and writing files) runs inside :func:`stage`; the totals cost two ``perf_counter``
calls per stage and are always kept. A worker hands its totals back with each shard
(:func:`take`), and ``synthcv generate --profile`` prints them (docs: README "Benchmarks").
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

#: Stages in pipeline order (the table's rows).
STAGES = ("sample", "physics", "render", "labels", "sensor", "flow", "write", "shard tables")

_totals: dict[str, float] = {}


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Add the wall time of the block to stage ``name`` of this process."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        _totals[name] = _totals.get(name, 0.0) + time.perf_counter() - t0


def take() -> dict[str, float]:
    """This process's totals since the last call (seconds per stage), then reset."""
    out = dict(_totals)
    _totals.clear()
    return out


def merge(into: dict[str, float], more: dict[str, float]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0.0) + v
