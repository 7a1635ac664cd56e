"""spec → dataset directory: sample, settle, render, label, write — one task per shard.

Resumable by construction: a shard is rendered into a temporary directory and renamed into
place only when complete, so after a Ctrl-C or ``kill -9`` a re-run skips finished shards and
redoes the rest. Sample ``i`` depends only on (spec hash, i), so the result is byte-identical
to an uninterrupted run for any worker count.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from synthcv._version import __version__
from synthcv.scene import Camera, RenderResult, Scene
from synthcv.spec import Spec, SpecError, load_spec
from synthcv.writer import (
    concat_tables,
    encode_normals,
    sha256_file,
    to_gray,
    write_depth,
    write_json_atomic,
    write_parquet_atomic,
    write_png,
    write_table,
)

FORMAT_VERSION = 1
RUN_FILE = ".synthcv-run.json"


class GenerationError(RuntimeError):
    """A sample failed to render; names the sample index and the spec."""


@dataclass
class RenderedSample:
    scene: Scene
    result: RenderResult
    labels: Any  # synthcv.labels.SampleLabels
    physics: dict[str, Any]


def downsample(scene: Scene, result: RenderResult, s: int) -> tuple[Scene, RenderResult]:
    """Box-filter RGB by ``s``; take labels at each block's centre pixel (exact for odd s)."""
    if s == 1:
        return scene, result
    cam = scene.camera
    w, h = cam.width // s, cam.height // s
    rgb = result.rgb[: h * s, : w * s].reshape(h, s, w, s, 3).mean(axis=(1, 3))
    c = (s - 1) // 2
    pick = (slice(c, h * s, s), slice(c, w * s, s))
    k = cam.K.copy()
    k[0, :] /= s
    k[1, :] /= s
    k[0, 2] = (cam.K[0, 2] - c) / s
    k[1, 2] = (cam.K[1, 2] - c) / s
    small = Camera(w, h, k, cam.world_to_camera, cam.near, cam.far)
    res = RenderResult(
        rgb=np.round(rgb).astype(np.uint8),
        depth=result.depth[pick].copy(),
        instance=result.instance[pick].copy(),
        normals=None if result.normals is None else result.normals[pick].copy(),
        normals_source=result.normals_source,
    )
    return replace(scene, camera=small), res


def render_sample(
    spec: Spec, index: int, renderer: Any, scene_hash: str | None = None
) -> RenderedSample:
    """Everything for one sample, in memory: the function tests and benchmarks call."""
    from synthcv.labels import compute_labels
    from synthcv.physics import settle
    from synthcv.sampler import sample_scene

    scene = sample_scene(spec, index, scene_hash=scene_hash)
    scene, phys = settle(scene, spec.physics)
    result = renderer.render(scene)
    scene, result = downsample(scene, result, spec.image.supersample)
    return RenderedSample(scene, result, compute_labels(scene, result), phys)


# --------------------------------------------------------------------------- worker side

_WORKER: dict[str, Any] = {}


def _worker_renderer(spec: Spec, threads: int = 0) -> Any:
    """One renderer per worker process, reused for every shard it renders."""
    from synthcv.render import make_renderer

    options = spec.renderer.options()
    if "threads" in options and options["threads"] == 0 and threads:
        options["threads"] = threads  # share the cores between workers
    key = (spec.renderer.backend, json.dumps(options, sort_keys=True))
    if _WORKER.get("key") != key:
        if _WORKER.get("renderer") is not None:
            _WORKER["renderer"].close()
        _WORKER["renderer"] = make_renderer(spec.renderer.backend, options)
        _WORKER["key"] = key
    return _WORKER["renderer"]


def _worker_init(queue: Any) -> None:
    """Fresh per-process state: a forked worker must not reuse its parent's clients."""
    from synthcv import physics

    _WORKER.clear()
    physics._CLIENT.clear()
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


def _sample_files(i: int) -> dict[str, str]:
    return {
        m: f"{i:06d}.{m}.{'tiff' if m == 'depth' else 'png'}"
        for m in ("rgb", "depth", "instance", "semantic", "normals")
    }


def render_shard(
    spec_json: dict[str, Any],
    spec_hash: str,
    label: str,
    shard: int,
    out: str,
    tick: Callable[[], None] | None = None,
    threads: int = 0,
) -> int:
    """Render shard ``shard`` into ``out/shards/shard-NNNNNN`` atomically; returns its size."""
    spec = Spec.model_validate(spec_json)
    renderer = _worker_renderer(spec, threads)
    queue = _WORKER.get("queue")
    scene_hash = spec.scene_hash
    outputs = spec.outputs
    first = shard * outputs.shard_size
    last = min(first + outputs.shard_size, spec.total_count)
    shards_dir = Path(out) / "shards"
    name = f"shard-{shard:06d}"
    tmp = shards_dir / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    sample_rows, object_rows = [], []
    for i in range(first, last):
        try:
            rs = render_sample(spec, i, renderer, scene_hash)
        except Exception as exc:
            raise GenerationError(
                f"sample {i} of {label} (spec {spec_hash[:12]}) failed in "
                f"{spec.renderer.backend}: {type(exc).__name__}: {exc}"
            ) from exc
        files = _sample_files(i)
        enabled = outputs.model_dump()
        arrays = {
            "rgb": rs.result.rgb if spec.image.channels == 3 else to_gray(rs.result.rgb),
            "depth": rs.result.depth,
            "instance": rs.result.instance,
            "semantic": rs.labels.semantic,
            "normals": encode_normals(rs.labels.normals) if outputs.normals else None,
        }
        row: dict[str, Any] = {"sample_index": i, "shard": f"shards/{name}"}
        for modality, array in arrays.items():
            row[modality] = None
            if enabled[modality]:
                (write_depth if modality == "depth" else write_png)(tmp / files[modality], array)
                row[modality] = f"shards/{name}/{files[modality]}"
        cam = rs.scene.camera
        row.update(
            {
                "width": cam.width,
                "height": cam.height,
                "K": cam.K.reshape(-1).tolist(),
                "world_to_camera": cam.world_to_camera.reshape(-1).tolist(),
                "seed": rs.scene.seed,
                "num_objects": len(rs.scene.objects),
                "num_visible": rs.labels.num_visible,
                **rs.scene.factors,
                **rs.physics,
            }
        )
        sample_rows.append(row)
        object_rows += [{"sample_index": i, **o} for o in rs.labels.objects]
        if tick is not None:
            tick()
        elif queue is not None:
            queue.put(1)
    write_table(sample_rows, tmp / "samples.parquet")
    write_table(object_rows, tmp / "objects.parquet")
    checksums = {p.name: sha256_file(p) for p in sorted(tmp.iterdir())}
    write_json_atomic(
        tmp / "shard.json",
        {"shard": shard, "first": first, "last": last, "spec_hash": spec_hash, "files": checksums},
    )
    try:
        os.rename(tmp, shards_dir / name)
    except OSError:
        # another process (an orphan of a killed run) finished this shard first; its content is
        # identical by construction, so keep it and drop ours
        if not (shards_dir / name / "shard.json").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return last - first


# --------------------------------------------------------------------------- driver


def _prepare_out(out: Path, spec: Spec, spec_hash: str, overwrite: bool) -> bool:
    """Check/initialise the output dir; returns True if the dataset is already complete."""
    run = {"spec_hash": spec_hash, "count": spec.count, "shard_size": spec.outputs.shard_size}
    run_file = out / RUN_FILE
    if out.exists() and overwrite:
        shutil.rmtree(out)
    if out.exists() and any(out.iterdir()):
        if not run_file.exists():
            raise GenerationError(
                f"{out} exists and is not a synthcv output directory; choose another --out"
            )
        previous = json.loads(run_file.read_text())
        if previous != run:
            raise GenerationError(
                f"{out} holds a dataset of another spec or count (spec {previous['spec_hash'][:12]}"
                f", count {previous['count']}); use another --out or --overwrite"
            )
        if (out / "manifest.json").exists():
            return True
    (out / "shards").mkdir(parents=True, exist_ok=True)
    for stale in (out / "shards").glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    write_json_atomic(run_file, run)
    return False


def _finish(out: Path, spec: Spec, spec_hash: str, num_shards: int, backend_info: dict) -> dict:
    shard_dirs = [out / "shards" / f"shard-{k:06d}" for k in range(num_shards)]
    files: dict[str, str] = {}
    for d in shard_dirs:
        meta = json.loads((d / "shard.json").read_text())
        files.update({f"shards/{d.name}/{n}": h for n, h in meta["files"].items()})
        files[f"shards/{d.name}/shard.json"] = sha256_file(d / "shard.json")
    for table in ("samples", "objects"):
        write_parquet_atomic(
            concat_tables([d / f"{table}.parquet" for d in shard_dirs]), out / f"{table}.parquet"
        )
        files[f"{table}.parquet"] = sha256_file(out / f"{table}.parquet")
    keypoints = _class_keypoints(spec)
    manifest = {
        "format_version": FORMAT_VERSION,
        "synthcv_version": __version__,
        "spec": spec.resolved(),
        "spec_hash": spec_hash,
        "scene_hash": spec.scene_hash,
        "count": spec.total_count,
        "shard_size": spec.outputs.shard_size,
        "num_shards": num_shards,
        "backend": backend_info,
        "classes": [{"id": i + 1, "name": n} for i, n in enumerate(spec.class_names)],
        "keypoints": keypoints,
        "depth": {"file": "tiff-float32", "units": "m", "invalid": 0},
        "normals": {"file": "png-uint8", "frame": "camera", "decode": "v/255*2-1"},
        "image": {
            "channels": spec.image.channels,
            "width": spec.image.width,
            "height": spec.image.height,
        },
        "files": dict(sorted(files.items())),
    }
    write_json_atomic(out / "manifest.json", manifest)
    return manifest


def _class_keypoints(spec: Spec) -> dict[str, list[str]]:
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
    return keypoints


def backend_info(backend: str) -> dict[str, str]:
    if backend == "tiny":
        import pybullet as p

        return {
            "name": "tiny",
            "version": f"pybullet-{p.getAPIVersion()}",
            "normals_source": "depth-derived",
        }
    from importlib.metadata import version  # the bpy wheel's version is Blender's

    return {"name": "cycles", "version": f"blender-{version('bpy')}", "normals_source": "geometry"}


def generate(
    spec: Spec | str | Path | dict,
    out: str | Path,
    *,
    count: int | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Render the dataset for ``spec`` into ``out``; resumes an interrupted run.

    Returns the manifest. Raises :class:`synthcv.spec.SpecError` before writing anything if
    the spec is invalid.
    """
    label = str(spec) if isinstance(spec, str | Path) else "spec"
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
    if _prepare_out(out, spec, spec_hash, overwrite):
        return json.loads((out / "manifest.json").read_text())
    todo = [k for k in range(num_shards) if not (out / "shards" / f"shard-{k:06d}").exists()]
    done = total - sum(
        min((k + 1) * spec.outputs.shard_size, total) - k * spec.outputs.shard_size for k in todo
    )
    spec_json = spec.resolved()

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
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(str(out), total=total, completed=done)
        if workers <= 1 or len(todo) <= 1:
            for k in todo:
                render_shard(
                    spec_json, spec_hash, label, k, str(out), tick=lambda: bar.advance(task)
                )
        else:
            if spec.renderer.backend == "tiny":
                _class_keypoints(spec)  # warm the mesh cache that forked workers inherit
            _run_pool(
                spec_json, spec_hash, label, todo, out, workers, bar, task, spec.renderer.backend
            )
    return _finish(out, spec, spec_hash, num_shards, backend_info(spec.renderer.backend))


def _run_pool(
    spec_json: dict,
    spec_hash: str,
    label: str,
    todo: list[int],
    out: Path,
    workers: int,
    bar: Any,
    task: Any,
    backend: str,
) -> None:
    # tiny: fork, so workers start in milliseconds with the parent's warm mesh cache; other
    # backends (bpy is not fork-safe): spawn
    method = "fork" if backend == "tiny" and "fork" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    queue = ctx.Queue()
    with ProcessPoolExecutor(
        max_workers=min(workers, len(todo)),
        mp_context=ctx,
        initializer=_worker_init,
        initargs=(queue,),
    ) as pool:
        threads = max(1, (os.cpu_count() or 1) // workers)
        futures = {
            pool.submit(render_shard, spec_json, spec_hash, label, k, str(out), None, threads)
            for k in todo
        }
        try:
            pending = futures
            while pending:
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                while not queue.empty():
                    bar.advance(task, queue.get_nowait())
                for f in finished:
                    f.result()  # re-raise a worker's error here
        except BrokenProcessPool as exc:
            raise GenerationError(
                f"a worker process died while rendering {label} (a crash inside the renderer "
                f"or out of memory); finished shards are kept — run the same command again to "
                f"resume"
            ) from exc
        except BaseException:
            for f in futures:
                f.cancel()
            raise
