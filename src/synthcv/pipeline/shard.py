"""One shard of a spec's dataset: render its samples and write them through the format's
:class:`~synthcv.format.writer.ShardWriter` (published whole, or not at all)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from synthcv.format import codecs, layout
from synthcv.format.writer import ShardWriter
from synthcv.pipeline.profile import stage
from synthcv.pipeline.sample import RenderedSample, render_sample
from synthcv.spec import Spec


class GenerationError(RuntimeError):
    """A sample failed to render; names the sample index and the spec."""


#: What to do with a sample in which no labelled object is visible (camera or light ranges
#: that miss the scene, a far plane too close...): warn at the end, stop the run, or accept it
#: (background-only samples on purpose).
ON_EMPTY = ("warn", "fail", "allow")


def shows_a_labelled_object(rs: RenderedSample) -> bool:
    return any(o["status"] == "visible" and not o["is_distractor"] for o in rs.labels.objects)


def shard_range(spec: Spec, shard: int) -> tuple[int, int]:
    """Sample indices ``[first, last)`` of ``shard``."""
    first = shard * spec.outputs.shard_size
    return first, min(first + spec.outputs.shard_size, spec.total_count)


def sample_row(rs: RenderedSample, shard: str, files: dict[str, str | None]) -> dict[str, Any]:
    """The sample's samples.parquet row: file paths, camera, seed, counts, realized factors."""
    cam = rs.scene.camera
    return {
        "sample_index": rs.scene.index,
        "shard": shard,
        **files,
        "width": cam.width,
        "height": cam.height,
        "K": cam.K.reshape(-1).tolist(),
        "world_to_camera": cam.world_to_camera.reshape(-1).tolist(),
        **(
            {}
            if rs.scene.sensor is None
            else {"distortion": _coefficients(rs.scene.sensor.distortion)}
        ),
        "seed": rs.scene.seed,
        "num_objects": len(rs.scene.objects),
        "num_visible": rs.labels.num_visible,
        **rs.scene.factors,
        **rs.physics,
    }


def _coefficients(distortion: Any) -> list[float]:
    """OpenCV's (k1, k2, p1, p2) of the sample's lens, zeros for a pinhole."""
    return [0.0] * 4 if distortion is None else distortion.coefficients()


def modality_arrays(spec: Spec, rs: RenderedSample) -> dict[str, Any]:
    """The arrays of every modality the spec's ``outputs`` switch on, ready to encode."""
    enabled = spec.outputs.model_dump()
    enabled["parts"] = enabled.get("parts") is not False and rs.labels.parts is not None
    enabled["clean"] = bool(enabled.get("pairs")) and spec.outputs.rgb

    def image(rgb: np.ndarray) -> np.ndarray:
        return rgb if spec.image.channels == 3 else codecs.to_gray(rgb)

    arrays = {
        "rgb": lambda: image(rs.result.rgb),
        "clean": lambda: image(rs.clean if rs.clean is not None else rs.result.rgb),
        "depth": lambda: rs.result.depth,
        "instance": lambda: rs.result.instance,
        "semantic": lambda: rs.labels.semantic,
        "normals": lambda: codecs.encode_normals(rs.labels.normals),
        "parts": lambda: rs.labels.parts,
    }
    return {
        m: (arrays[m]() if enabled[m] else None)
        for m in layout.MODALITIES
        if m not in layout.FLOW_OUTPUTS
    }


def _sample_rows(
    spec: Spec,
    i: int,
    writer: ShardWriter,
    rs: RenderedSample,
    frame: Any = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Write one sample's (or one clip frame's) files; its samples row and object rows."""
    frames = spec.sequence.frames if spec.sequence is not None else 1
    t = None if frame is None else frame.frame
    row_index = i if t is None else i * frames + t
    arrays = modality_arrays(spec, rs)
    if frame is not None and spec.outputs.flow is not False:
        arrays |= {m: getattr(frame, m) for m in layout.FLOW_OUTPUTS}
    files: dict[str, str | None] = {}
    with stage("write"):
        for modality, array in arrays.items():
            name = layout.sample_file(i, modality, t)
            files[modality] = None if array is None else writer.write(name, modality, array)
    row = sample_row(rs, writer.rel, files)
    row["sample_index"] = row_index
    clip = {} if t is None else {"clip": i, "frame": t, "time": frame.time}
    objects = [{"sample_index": row_index, **clip, **o} for o in rs.labels.objects]
    return {**row, **clip}, objects


def render_shard(
    spec: Spec,
    spec_hash: str,
    label: str,
    shard: int,
    out: Path,
    renderer: Any,
    tick: Callable[[], None] | None = None,
    on_empty: str = "warn",
) -> int:
    """Render shard ``shard`` into ``out/shards/shard-NNNNNN``; returns its sample count.

    ``on_empty="fail"`` stops at the first sample that shows no labelled object.
    """
    first, last = shard_range(spec, shard)
    scene_hash = spec.scene_hash
    sample_rows, object_rows = [], []
    with ShardWriter(out, shard) as writer:
        for i in range(first, last):
            try:
                if spec.sequence is not None:
                    from synthcv.pipeline.clip import render_clip

                    clip = render_clip(spec, i, renderer, scene_hash)
                    rs = clip[0].sample
                else:
                    clip, rs = None, render_sample(spec, i, renderer, scene_hash)
            except Exception as exc:
                raise GenerationError(
                    f"sample {i} of {label} (spec {spec_hash[:12]}) failed in "
                    f"{spec.renderer.backend}: {type(exc).__name__}: {exc}"
                ) from exc
            if on_empty == "fail" and not shows_a_labelled_object(rs):
                raise GenerationError(
                    f"sample {i} of {label} shows no labelled object ({len(rs.scene.objects)} "
                    "placed, none visible): check the camera, lights and near/far ranges, or "
                    "pass on_empty='allow' (--on-empty allow) if empty samples are intended"
                )
            for frame in clip or [None]:
                row, objects = _sample_rows(
                    spec, i, writer, rs if frame is None else frame.sample, frame
                )
                sample_rows.append(row)
                object_rows += objects
            if tick is not None:
                tick()
        meta = {"shard": shard, "first": first, "last": last, "spec_hash": spec_hash}
        with stage("shard tables"):
            writer.finish(sample_rows, object_rows, meta)
    return last - first
