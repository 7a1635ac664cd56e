"""spec → dataset directory: the driver, the worker pool and each worker's state.

Resumable by construction: a shard is rendered into a temporary directory and published only
when complete (synthcv.format.writer), so after a Ctrl-C or ``kill -9`` a re-run skips finished
shards and redoes the rest. Sample ``i`` depends only on (spec hash, i), so the result is
byte-identical to an uninterrupted run for any worker count.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np

from synthcv.format import codecs, layout
from synthcv.format.writer import OutputError, claim_output, unfinished_shards, write_manifest
from synthcv.interrupts import InterruptGuard
from synthcv.pipeline import profile
from synthcv.pipeline.shard import ON_EMPTY, GenerationError, render_shard, shard_range
from synthcv.render import Renderer, get_backend
from synthcv.spec import Spec, SpecError, load_spec

# --------------------------------------------------------------------------- worker side

_WORKER: dict[str, Any] = {}


def worker_renderer(spec: Spec, threads: int = 0) -> Renderer:
    """One renderer per worker process, reused for every shard it renders."""
    backend = get_backend(spec.renderer.backend)
    key = (backend.name, json.dumps(spec.renderer.renderer_kwargs(threads), sort_keys=True))
    if _WORKER.get("key") != key:
        if _WORKER.get("renderer") is not None:
            _WORKER["renderer"].close()
        _WORKER["renderer"] = backend.make(spec.renderer, threads)
        _WORKER["key"] = key
    return _WORKER["renderer"]


def _worker_init(queue: Any) -> None:
    """Fresh per-process state: a forked worker must not reuse its parent's clients.

    Workers ignore SIGINT: Ctrl-C reaches the whole process group, and a worker interrupted
    halfway through a render could leave a half-built scene behind. The driver alone handles
    the interrupt and terminates its workers.
    """
    import signal

    from synthcv import physics

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by the driver (below)
    _WORKER.clear()
    physics.reset_worker()
    _WORKER["queue"] = queue
    _die_with_parent()


def _die_with_parent() -> None:
    """Linux: have the kernel stop this worker if the driver dies (e.g. ``kill -9``), so no
    orphan keeps rendering next to a resumed run."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux/glibc: orphans finish their shard, which resume tolerates
        pass


def _worker_shard(
    spec_json: dict[str, Any],
    spec_hash: str,
    label: str,
    shard: int,
    out: str,
    threads: int,
    on_empty: str,
) -> tuple[int, dict[str, float]]:
    """Pool task: render one shard, reporting each finished sample to the driver's queue;
    returns its sample count and where the time went (seconds per stage)."""
    spec = Spec.model_validate(spec_json)
    queue = _WORKER.get("queue")
    tick = (lambda: queue.put(1)) if queue is not None else None
    renderer = worker_renderer(spec, threads)
    codecs.load_table_support()
    profile.take()  # a worker's set-up is not the shard's
    n = render_shard(spec, spec_hash, label, shard, Path(out), renderer, tick, on_empty)
    return n, profile.take()


# --------------------------------------------------------------------------- driver


def manifest_fields(spec: Spec, spec_hash: str) -> dict[str, Any]:
    """What a generated dataset's manifest says about its spec, classes and backend."""
    return {
        "spec": spec.resolved(),
        "spec_hash": spec_hash,
        "scene_hash": spec.scene_hash,
        "count": spec.total_count * (spec.sequence.frames if spec.sequence else 1),
        **(
            {
                "sequence": {
                    "clips": spec.total_count,
                    "frames": spec.sequence.frames,
                    "fps": spec.sequence.fps,
                }
            }
            if spec.sequence
            else {}
        ),
        "shard_size": spec.outputs.shard_size,
        "backend": get_backend(spec.renderer.backend).describe(),
        "classes": [
            {"id": i + 1, "name": n, **({"isthing": 0} if n in spec.stuff_class_names else {})}
            for i, n in enumerate(spec.class_names)
        ],
        "keypoints": class_keypoints(spec),
        **_people_manifest(spec),
        "image": {
            "channels": spec.image.channels,
            "width": spec.image.width,
            "height": spec.image.height,
        },
    }


def _people_manifest(spec: Spec) -> dict[str, Any]:
    """With people: COCO's person skeleton (1-based pairs, as COCO writes it) and the names of
    the body-part map's values."""
    if spec.people is None:
        return {}
    from synthcv.people.body import PARTS
    from synthcv.people.keypoints import COCO_SKELETON
    from synthcv.people.person import PERSON_CLASS

    return {
        "skeletons": {PERSON_CLASS: [list(pair) for pair in COCO_SKELETON]},
        "parts": list(PARTS),
    }


def class_keypoints(spec: Spec) -> dict[str, list[str]]:
    """Keypoint names per class, from one realization of each class's asset."""
    from synthcv.assets import build_mesh
    from synthcv.sampler import realize_asset

    keypoints: dict[str, list[str]] = {}
    for name, c in spec.objects.classes.items():
        try:
            probe = realize_asset(
                lambda _p, d, r: d.sample(r), "", c.asset, np.random.default_rng(0)
            )
            keypoints[name] = build_mesh(probe).all_keypoints()[0]
        except Exception:  # informational only; a bad asset already failed its samples
            keypoints[name] = []
    if spec.people is not None:
        from synthcv.people.keypoints import COCO_KEYPOINTS
        from synthcv.people.person import PERSON_CLASS

        keypoints[PERSON_CLASS] = list(COCO_KEYPOINTS)
    return keypoints


#: Where shards are rendered: this machine's process pool, or Ray tasks.
EXECUTORS = ("local", "ray")


def generate(
    spec: Spec | str | Path | dict,
    out: str | Path,
    *,
    count: int | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    on_empty: str = "warn",
    label: str | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    num_cpus_per_task: int = 1,
    profile_into: dict[str, float] | None = None,
) -> dict:
    """Render the dataset for ``spec`` into ``out``; resumes an interrupted run.

    ``executor="ray"`` renders one Ray task per shard (:mod:`synthcv.pipeline.ray_executor`)
    on the cluster at ``ray_address`` (None: ``RAY_ADDRESS`` or a new local Ray), each task
    reserving ``num_cpus_per_task`` CPUs; the output is the same bytes as a local run.

    Returns the manifest. Raises :class:`synthcv.spec.SpecError` before writing anything if
    the spec is invalid, :class:`GenerationError` if rendering fails. Samples that show no
    labelled object give an :class:`EmptySamplesWarning` (``on_empty="warn"``), stop the run
    (``"fail"``), or pass (``"allow"``). ``label`` names the spec in messages (default: its
    path, or "spec"). ``profile_into``: a dict that receives the seconds each pipeline stage
    took, summed over workers (:mod:`synthcv.pipeline.profile`; ``generate --profile``).
    """
    if on_empty not in ON_EMPTY:
        raise ValueError(f"on_empty: got {on_empty!r}, expected one of {', '.join(ON_EMPTY)}")
    if executor not in EXECUTORS:
        raise ValueError(f"executor: got {executor!r}, expected one of {', '.join(EXECUTORS)}")
    label = label or (str(spec) if isinstance(spec, str | Path) else "spec")
    if not isinstance(spec, Spec):
        spec = load_spec(spec)
    if count is not None:
        spec = spec.with_count(count)
    from synthcv.preflight import check_resources

    problems = check_resources(spec)
    if problems:
        raise SpecError(problems, label)
    out = Path(out)
    spec_hash = spec.spec_hash
    total = spec.total_count
    num_shards = -(-total // spec.outputs.shard_size)
    run = {
        "spec_hash": spec_hash,
        "count": spec.count,
        "shard_size": spec.outputs.shard_size,
        # the spec hash sorts keys, but the classes' order gives their ids (and the draws):
        # a reordered spec must not resume, or extend, a dataset of the other order
        "classes": spec.class_names,
    }
    # Ctrl-C raises at once, as usual, and is also remembered: an interrupt that lands where
    # Python swallows exceptions (a weakref callback of importlib's module locks, a __del__)
    # still ends the run as interrupted instead of being lost
    with InterruptGuard() as guard:
        try:
            claim = claim_output(out, run, overwrite)
        except OutputError as exc:
            raise GenerationError(str(exc)) from None
        with claim:
            if claim.complete:
                return json.loads((out / layout.MANIFEST).read_text())
            todo = unfinished_shards(out, num_shards)
            done = total - sum(b - a for a, b in (shard_range(spec, k) for k in todo))
            with _progress(progress) as bar:
                task = bar.add_task(str(out), total=total, completed=done)
                times: dict[str, float] = {}

                def shard_done(result: tuple[int, dict[str, float]]) -> None:
                    profile.merge(times, result[1])

                if executor == "ray" and todo:
                    from synthcv.pipeline.ray_executor import run_on_ray

                    def advance(result: tuple[int, dict[str, float]]) -> None:
                        bar.advance(task, result[0])
                        shard_done(result)

                    run_on_ray(
                        _worker_shard,
                        spec,
                        spec_hash,
                        label,
                        todo,
                        out,
                        advance,
                        on_empty,
                        address=ray_address,
                        num_cpus_per_task=num_cpus_per_task,
                    )
                elif workers <= 1 or len(todo) <= 1:
                    tick = lambda: bar.advance(task)  # noqa: E731
                    _run_inline(spec, spec_hash, label, todo, out, tick, on_empty, guard)
                    profile.merge(times, profile.take())
                else:
                    _run_pool(
                        spec,
                        spec_hash,
                        label,
                        todo,
                        out,
                        workers,
                        bar,
                        task,
                        on_empty,
                        shard_done,
                        guard,
                    )
            if profile_into is not None:
                profile.merge(profile_into, times)
            guard.check()  # an interrupt Python swallowed on the way: no manifest, exit as one
            manifest = write_manifest(out, manifest_fields(spec, spec_hash), num_shards)
    if on_empty == "warn":
        _warn_empty(out, label)
    return manifest


class EmptySamplesWarning(UserWarning):
    """Some samples show no labelled object; the message says how many and which."""


def _warn_empty(out: Path, label: str) -> None:
    import warnings

    import pyarrow.parquet as pq

    samples = pq.read_table(out / layout.SAMPLES, columns=["sample_index"]).column(0)
    objects = pq.read_table(out / layout.OBJECTS)
    seen: set[int] = set()
    if objects.num_rows and {"status", "is_distractor"} <= set(objects.column_names):
        rows = zip(
            objects.column("sample_index").to_pylist(),
            objects.column("status").to_pylist(),
            objects.column("is_distractor").to_pylist(),
            strict=True,
        )
        seen = {i for i, status, distractor in rows if status == "visible" and not distractor}
    empty = [i for i in samples.to_pylist() if i not in seen]
    if empty:
        shown = ", ".join(map(str, empty[:8])) + (", ..." if len(empty) > 8 else "")
        warnings.warn(
            EmptySamplesWarning(
                f"{len(empty)} of {len(samples)} samples of {label} show no labelled object "
                f"(samples {shown}): check the camera, lights and near/far ranges; "
                "--on-empty fail stops at the first, --on-empty allow accepts them"
            ),
            stacklevel=3,
        )


def _progress(enabled: bool) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [
        TextColumn("[bold]generate[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    return Progress(*columns, disable=not enabled, transient=False)


def _run_inline(
    spec: Spec,
    spec_hash: str,
    label: str,
    todo: list[int],
    out: Path,
    tick: Callable[[], None],
    on_empty: str,
    guard: InterruptGuard,
) -> None:
    """Render the shards in this process, one after another (one worker, or one shard left);
    the stage times accumulate in :mod:`synthcv.pipeline.profile` from a fresh start."""
    renderer = worker_renderer(spec)
    codecs.load_table_support()
    profile.take()
    for k in todo:
        guard.check()
        render_shard(spec, spec_hash, label, k, out, renderer, tick, on_empty)


def _run_pool(
    spec: Spec,
    spec_hash: str,
    label: str,
    todo: list[int],
    out: Path,
    workers: int,
    bar: Any,
    task: Any,
    on_empty: str,
    shard_done: Callable[[Any], None],
    guard: InterruptGuard,
) -> None:
    backend = get_backend(spec.renderer.backend)
    # fork-safe backends: fork, so workers start in milliseconds with the parent's warm mesh
    # cache; the others (bpy) are spawned
    fork = backend.fork_safe and "fork" in mp.get_all_start_methods()
    if fork:
        class_keypoints(spec)  # warm the mesh cache that forked workers inherit
    ctx = mp.get_context("fork" if fork else "spawn")
    queue = ctx.Queue()
    spec_json = spec.resolved()
    # a Ctrl-C is acted on only in the polling loop below: raised anywhere else (inside
    # concurrent.futures.wait, holding the futures' locks) it deadlocks the pool's shutdown
    with (
        guard.deferred() as interrupt,
        ProcessPoolExecutor(
            max_workers=min(workers, len(todo)),
            mp_context=ctx,
            initializer=_worker_init,
            initargs=(queue,),
        ) as pool,
    ):
        threads = max(1, (os.cpu_count() or 1) // workers)
        # Workers are created during the submissions: block SIGINT meanwhile, so a Ctrl-C can
        # never reach a worker before it ignores the signal (children inherit the mask, across
        # exec too); the driver notes a pending interrupt as soon as the mask is restored.
        futures: set[Any] = set()
        try:
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                futures = {
                    pool.submit(
                        _worker_shard, spec_json, spec_hash, label, k, str(out), threads, on_empty
                    )
                    for k in todo
                }
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            pending = futures
            while pending:
                interrupt.check()
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                interrupt.check()
                while not queue.empty():
                    bar.advance(task, queue.get_nowait())
                for f in finished:
                    shard_done(f.result())  # re-raises a worker's error here
        except BrokenProcessPool as exc:
            # spawned workers re-import the caller's script: an unguarded generate() call in it
            # runs again inside every worker, which dies (Python's rule for spawn)
            hint = (
                ""
                if fork
                else "; a script that calls generate() must do so under "
                '`if __name__ == "__main__":`, since this backend\'s workers re-import it'
            )
            raise GenerationError(
                f"a worker process died while rendering {label} (a crash inside the renderer "
                f"or out of memory); finished shards are kept — run the same command again to "
                f"resume{hint}"
            ) from exc
        except KeyboardInterrupt:
            # stop now: a shard in progress is discarded, never half-published (the futures
            # are left to the executor, which marks them broken once its workers are gone)
            _terminate_workers(pool)
            raise
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    """Stop the pool's workers now (they ignore SIGINT); their temporary shards are removed
    by the next run in the same directory."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        if proc.is_alive():
            proc.terminate()
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.join(timeout=5)
