"""Export a dataset in the Hugging Face ``datasets`` layout: parquet shards with embedded image
bytes and a dataset card, so ``datasets.load_dataset(OUT)`` gives typed features offline.

Columns: one ``Image()`` per modality the dataset has (``image`` = RGB; ``instance`` 16-bit
ids, ``semantic``, ``parts``, ``normals`` as PNG; ``depth`` as the float32 TIFF, which PIL reads
back as mode ``F``) holding the dataset's own file bytes (no re-encode), ``sample_index``,
``objects`` (the non-distractor objects with a visible box, as a COCO-like struct of lists:
``bbox`` [x, y, w, h] of the visible part, ``category`` a ``ClassLabel`` of the class names,
``instance_id``, ``status``, ``visibility``, ``area`` visible pixels, ``keypoints`` flat x, y,
v), the camera (``K`` 3×3 intrinsics in pixels, ``world_to_camera`` 4×4 in OpenCV's camera
frame and, for specs with a lens, ``distortion`` [k1, k2, p1, p2]: what a 3D or pose user
needs to lift labels back into the scene), and every scalar factor column of
``samples.parquet`` under its spec path. The card
(``README.md``) carries ``configs:`` pointing at ``data/train-TAG-*.parquet`` and the feature
types, as the Hub's parquet datasets do. Written through ``datasets`` itself
(``Dataset.from_generator`` and ``to_parquet``) into a temporary directory that becomes ``out``
only when complete.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from synthcv.fileio import atomic_dir, write_text_atomic
from synthcv.format import Dataset, open_dataset
from synthcv.format.codecs import read_flow
from synthcv.format.layout import FLOW_MODALITIES, MODALITIES, SAMPLE_ID_COLUMNS

DEFAULT_SHARD_SIZE = 1000
#: Column name per modality (``image`` is the RGB, as Hub datasets name it).
COLUMN = {m: ("image" if m == "rgb" else m) for m in MODALITIES}
_NOT_FACTORS = SAMPLE_ID_COLUMNS
#: The camera's list columns of ``samples.parquet`` (row-major there) and their matrix shapes.
CAMERA = {"K": (3, 3), "world_to_camera": (4, 4), "distortion": (4,)}


def _value_type(t: pa.DataType) -> str | None:
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int64"
    if pa.types.is_floating(t):
        return "float64"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    return None


def _camera_columns(ds: Dataset) -> tuple[str, ...]:
    return tuple(c for c in CAMERA if c in ds.samples.column_names)


def _matrix(flat: list[float] | None, shape: tuple[int, ...]) -> Any:
    if flat is None:
        return None
    values = [float(v) for v in flat]
    return values if len(shape) == 1 else [values[r * shape[1] : (r + 1) * shape[1]]
                                           for r in range(shape[0])]  # fmt: skip


def _features(ds: Dataset, modalities: list[str], factors: dict[str, str]) -> Any:
    from datasets import Array3D, ClassLabel, Features, Image, List, Value

    names = [c["name"] for c in sorted(ds.classes, key=lambda c: c["id"])]
    size = ds.manifest.get("image") or {}
    flow = Array3D(shape=(size.get("height"), size.get("width"), 2), dtype="float32")
    spec: dict[str, Any] = {
        COLUMN[m]: flow if m in FLOW_MODALITIES else Image() for m in modalities
    }
    spec["sample_index"] = Value("int64")
    spec["objects"] = {
        "bbox": List(List(Value("float32"), length=4)),
        "category": List(ClassLabel(names=names)),
        "instance_id": List(Value("int64")),
        "status": List(Value("string")),
        "visibility": List(Value("float32")),
        "area": List(Value("int64")),
        "keypoints": List(List(Value("float32"))),
    }
    for c in _camera_columns(ds):
        shape = CAMERA[c]
        row = List(Value("float64"), length=shape[-1])
        spec[c] = row if len(shape) == 1 else List(row, length=shape[0])
    spec.update({name: Value(kind) for name, kind in factors.items()})
    return Features(spec)


def _rows(ds: Dataset, modalities: tuple[str, ...], factors: dict[str, str]) -> Iterator[dict]:
    for j in range(len(ds)):
        row: dict[str, Any] = {}
        for m in modalities:
            p = ds.path(j, m)
            if p is None:
                row[COLUMN[m]] = None
            elif m in FLOW_MODALITIES:  # float32 (H, W, 2), NaN where no surface
                row[COLUMN[m]] = read_flow(p)
            else:
                row[COLUMN[m]] = {"bytes": p.read_bytes(), "path": p.name}
        facts = ds.factors_of(j)
        row["sample_index"] = int(ds.samples.column("sample_index")[j].as_py())
        objects = [
            o for o in ds.objects_of(j) if not o.get("is_distractor") and o.get("bbox") is not None
        ]
        row["objects"] = {
            "bbox": [[float(v) for v in o["bbox"]] for o in objects],
            "category": [int(o["class_id"]) - 1 for o in objects],
            "instance_id": [int(o["instance_id"]) for o in objects],
            "status": [str(o["status"]) for o in objects],
            "visibility": [float(o.get("visibility") or 0.0) for o in objects],
            "area": [int(o.get("visible_pixels") or 0) for o in objects],
            "keypoints": [[float(v) for v in (o.get("keypoints") or [])] for o in objects],
        }
        for c in _camera_columns(ds):
            row[c] = _matrix(facts.get(c), CAMERA[c])
        row.update({name: facts.get(name) for name in factors})
        yield row


def _tag(ds: Dataset) -> str:
    """12 hex digits of the dataset's content digest, in every data file name: ``datasets``
    caches a local directory by its name and data-file pattern, so two exports in folders
    of the same name (``a/hf``, ``b/hf``) would otherwise load each other's cached rows."""
    from synthcv.format import content_digest

    return str(ds.manifest.get("manifest_digest") or content_digest(ds.root))[:12]


def _card(ds: Dataset, features: Any, shards: int) -> str:
    import yaml

    tag = _tag(ds)
    info = features._to_yaml_list() if hasattr(features, "_to_yaml_list") else None
    front: dict[str, Any] = {
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": f"data/train-{tag}-*.parquet"}],
            }
        ],
    }
    if info is not None:
        front["dataset_info"] = {"features": info}
    m = ds.manifest
    body = (
        f"# {ds.root.name}\n\nSynthetic images rendered by synthcv {m.get('synthcv_version')} "
        f"({(m.get('backend') or {}).get('name')} backend), spec hash `{m.get('spec_hash')}`: "
        f"{len(ds)} samples in {shards} parquet shards. Every image is the dataset's own file; "
        "`objects.bbox` is [x, y, w, h] of the visible part in pixels, `objects.category` the "
        "class (0-based), `objects.keypoints` flat (x, y, v) with v = 2 visible, 1 labelled but "
        "occluded, 0 not labelled; `K` the 3×3 intrinsics in pixels, `world_to_camera` the 4×4 "
        "pose in OpenCV's camera frame (x right, y down, z forward), `distortion` (when the "
        "spec has a lens) OpenCV's [k1, k2, p1, p2]; the other columns are the realized scene "
        "factors under their spec paths. `depth` is float32 metres (0 = no surface).\n"
    )
    return "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n\n" + body


def export_hf(
    dataset: Dataset | str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
) -> Path:
    """Write ``dataset`` as a Hugging Face parquet dataset into directory ``out`` (default
    ``DIR/hf``; it must not exist or be empty) and return ``out``."""
    try:
        import datasets
    except ImportError as e:
        raise ImportError(
            "the hf export needs the datasets package: pip install synthcv[stream]"
        ) from e
    if shard_size < 1:
        raise ValueError(f"--shard-size must be positive, got {shard_size}")
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    final = Path(out) if out is not None else ds.root / "hf"
    modalities = [m for m in MODALITIES if m in ds.samples.column_names and
                  ds.samples.column(m).null_count < len(ds)]  # fmt: skip
    factors = {
        f.name: kind
        for f in ds.samples.schema
        if f.name not in _NOT_FACTORS and (kind := _value_type(f.type)) is not None
    }
    features = _features(ds, modalities, factors)
    with atomic_dir(final) as tmp, tempfile.TemporaryDirectory(prefix="synthcv-hf-") as cache:
        datasets.disable_progress_bars()
        table = datasets.Dataset.from_generator(
            _rows,
            # a list in gen_kwargs would be split into generator shards: pass a tuple
            gen_kwargs={"ds": ds, "modalities": tuple(modalities), "factors": factors},
            features=features,
            cache_dir=cache,
        )
        (tmp / "data").mkdir()
        shards = max(1, -(-len(table) // shard_size))
        for k in range(shards):
            part = table.shard(num_shards=shards, index=k, contiguous=True)
            name = f"train-{_tag(ds)}-{k:05d}-of-{shards:05d}.parquet"
            part.to_parquet(str(tmp / "data" / name))
        write_text_atomic(tmp / "README.md", _card(ds, features, shards))
    return final
