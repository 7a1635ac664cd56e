"""Render shards as Ray tasks: ``synthcv generate --executor ray``.

One task per shard, the same function the local pool runs (the runner hands its
``_worker_shard`` in), so the output is byte-identical to a local run for any cluster size:
each sample is a pure function of (scene hash, index) and each shard is published whole by
the one shard writer. Ray retries a task whose worker process dies (``max_retries``), and a
killed driver leaves only whole shards behind, which the next run skips (resume). Ray reuses a
worker process for later tasks, and the renderer is cached per process (``worker_renderer``),
so Blender is imported once per worker, not once per shard.

What a cluster needs: ``--out`` on storage every node sees under the same path (NFS, a mounted
bucket), and the same synthcv version on every node — each task checks, and a mismatch stops
the run naming both versions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthcv._version import __version__
from synthcv.spec import Spec

#: Retries of a shard whose worker died (a crash or an out-of-memory kill).
MAX_RETRIES = 3


class VersionMismatch(RuntimeError):
    """A Ray worker runs another synthcv than the driver."""


def _ray_shard(driver_version: str, render: Callable[..., Any], *args: Any) -> Any:
    """The Ray task: refuse a synthcv other than the driver's, then ``render(*args)`` (the
    local pool's shard function, handed in by the runner)."""
    if driver_version != __version__:
        raise VersionMismatch(
            f"a Ray worker on {os.uname().nodename} runs synthcv {__version__}, the driver "
            f"{driver_version}: install the same synthcv on every node"
        )
    return render(*args)


def run_on_ray(
    render: Callable[..., int],
    spec: Spec,
    spec_hash: str,
    label: str,
    todo: list[int],
    out: Path,
    advance: Any,
    on_empty: str,
    *,
    address: str | None = None,
    num_cpus_per_task: int = 1,
) -> None:
    """Render shards ``todo`` as Ray tasks of ``render(spec_json, spec_hash, label, shard,
    out, threads, on_empty)``; ``advance(result)`` with each finished shard's result. Joins the
    cluster at ``address`` (None: ``RAY_ADDRESS`` or a new local one, which is shut down
    afterwards). A task's error is raised as itself."""
    try:
        import ray
    except ImportError as e:
        raise ImportError("--executor ray needs Ray: pip install synthcv[ray]") from e
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level="warning",
            log_to_driver=False,
            configure_logging=False,
        )
    remote = ray.remote(num_cpus=num_cpus_per_task, max_retries=MAX_RETRIES)(_ray_shard)
    spec_json = spec.resolved()
    pending: list[Any] = []
    try:
        pending = [
            remote.remote(
                __version__,
                render,
                spec_json,
                spec_hash,
                label,
                k,
                str(out),
                num_cpus_per_task,
                on_empty,
            )
            for k in todo
        ]
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
            for ref in done:
                try:
                    advance(ray.get(ref))
                except ray.exceptions.RayTaskError as exc:
                    raise exc.as_instanceof_cause() from None
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()
