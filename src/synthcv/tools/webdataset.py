"""Export a dataset as WebDataset tar shards, the streaming layout for training at scale.

A training job that reads millions of small files spends its time listing and opening them;
WebDataset reads a few large tar files sequentially instead (from disk, object storage or HTTP)
and shuffles within a buffer. One sample is a group of tar members sharing the key
``%08d`` (the sample index):

- ``KEY.rgb.png``, ``KEY.instance.png`` (16-bit ids), ``KEY.semantic.png``, ``KEY.normals.png``,
  ``KEY.parts.png``: the dataset's own PNG bytes, copied (lossless, no re-encode);
- ``KEY.depth.npy``: depth as float32 metres (``numpy.save``; 0 = no surface), which
  WebDataset's default decoder reads back;
- ``KEY.json``: ``{"index", "objects": [...objects.parquet rows...], "factors": {...}}``.

WebDataset's image decoders convert every PNG to 8-bit RGB/L, which would wrap 16-bit instance
ids; :func:`decode_labels` is the handler that keeps label images as stored::

    ds = wds.WebDataset(urls).decode(decode_labels, "rgb8")  # ids uint16, rgb HWC uint8

Shards are ``shard-000000.tar``, ``shard-000001.tar``, … of ``shard_size`` samples in sample
order, beside a ``manifest.json`` (the source manifest's classes, keypoints and skeletons,
spec hash, and the shard list with each shard's sha256 and sample count). Written through
``webdataset.TarWriter`` into a temporary directory that becomes ``out`` only when complete.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from synthcv.fileio import atomic_dir, sha256_file, write_json_atomic
from synthcv.format import Dataset, open_dataset
from synthcv.format.codecs import read_depth, read_flow
from synthcv.format.layout import FLOW_MODALITIES, MODALITIES

DEFAULT_SHARD_SIZE = 1000
#: Modalities copied as their PNG files (depth and a clip's optical flow are stored as float32
#: .npy instead).
PNG_MODALITIES = tuple(m for m in MODALITIES if m != "depth" and m not in FLOW_MODALITIES)


#: Label images, decoded without conversion (ids keep their 16 bits).
LABEL_IMAGES = ("instance.png", "semantic.png", "parts.png")


def decode_labels(key: str, data: bytes) -> np.ndarray | None:
    """A WebDataset decode handler for the label PNGs (``instance``/``semantic``/``parts``):
    their values as stored (uint16 ids, uint8 classes and parts); None for any other member, so
    the next handler (e.g. ``"rgb8"``) takes it."""
    if not key.endswith(LABEL_IMAGES):
        return None
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.array(im)


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not np.isfinite(v):
        return None  # JSON has no NaN/inf
    if isinstance(v, np.generic):
        return v.item()
    return v


def _sample(ds: Dataset, j: int) -> dict[str, Any]:
    """The tar members of sample position ``j`` (WebDataset's dict form: extension -> bytes)."""
    index = int(ds.samples.column("sample_index")[j].as_py())
    out: dict[str, Any] = {"__key__": f"{index:08d}"}
    for m in PNG_MODALITIES:
        p = ds.path(j, m)
        if p is not None:
            out[f"{m}.png"] = p.read_bytes()
    depth_path = ds.path(j, "depth")
    if depth_path is not None:
        buf = io.BytesIO()
        np.save(buf, read_depth(depth_path).astype(np.float32), allow_pickle=False)
        out["depth.npy"] = buf.getvalue()
    for m in FLOW_MODALITIES:
        if (flow_path := ds.path(j, m)) is not None:
            buf = io.BytesIO()
            np.save(buf, read_flow(flow_path), allow_pickle=False)
            out[f"{m}.npy"] = buf.getvalue()
    record = {
        "index": index,
        "objects": [{k: _json_value(v) for k, v in o.items()} for o in ds.objects_of(j)],
        "factors": {k: _json_value(v) for k, v in ds.factors_of(j).items()},
    }
    out["json"] = json.dumps(record, allow_nan=False).encode()
    return out


def export_webdataset(
    dataset: Dataset | str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    progress: bool = False,
) -> Path:
    """Write ``dataset`` as WebDataset shards into directory ``out`` (default
    ``DIR/webdataset``; it must not exist or be empty) and return ``out``."""
    try:
        import webdataset as wds
    except ImportError as e:
        raise ImportError(
            "the webdataset export needs the webdataset package: pip install synthcv[stream]"
        ) from e
    if shard_size < 1:
        raise ValueError(f"--shard-size must be positive, got {shard_size}")
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    final = Path(out) if out is not None else ds.root / "webdataset"
    positions: Any = range(len(ds))
    if progress and len(ds) > 50:
        from rich.progress import track

        positions = track(positions, description=f"webdataset {final}", transient=True)
    shards: list[dict[str, Any]] = []
    with atomic_dir(final) as tmp:
        writer = None
        try:
            for j in positions:
                if j % shard_size == 0:
                    if writer is not None:
                        writer.close()
                    name = f"shard-{len(shards):06d}.tar"
                    shards.append({"file": name, "samples": 0})
                    writer = wds.TarWriter(str(tmp / name))
                writer.write(_sample(ds, j))
                shards[-1]["samples"] += 1
        finally:
            if writer is not None:
                writer.close()
        for s in shards:
            s["sha256"] = sha256_file(tmp / s["file"])
        m = ds.manifest
        write_json_atomic(
            tmp / "manifest.json",
            {
                "format": "webdataset",
                "source": str(ds.root),
                "source_manifest_digest": m.get("manifest_digest"),
                "spec_hash": m.get("spec_hash"),
                "samples": len(ds),
                "shard_size": shard_size,
                "classes": m.get("classes", []),
                "keypoints": m.get("keypoints", {}),
                "skeletons": m.get("skeletons", {}),
                "depth": {"file": "npy-float32", "units": "m", "invalid": 0},
                "shards": shards,
            },
        )
    return final
