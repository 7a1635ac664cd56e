"""A synthcv dataset as a Ray Data ``Dataset``, so training on a cluster reads shards in
parallel on the workers instead of through one process.

``read_dataset(DIR)`` reads ``samples.parquet`` with Ray Data and decodes each sample's images
on the workers (each opens the dataset once and keeps it). A row holds ``sample_index``, one
array per requested modality (``rgb`` uint8 H×W×3, ``depth`` float32 metres, ``instance``
uint16 ids, ...), the visible non-distractor objects as ``boxes`` (N×4 float32 xyxy),
``labels`` (N int64 class ids), ``instance_ids``, and ``objects`` (every object row as JSON,
for anything else), plus the scalar factor columns under their spec paths.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from synthcv.format import open_dataset
from synthcv.format.layout import MODALITIES, PATH_COLUMNS

_OPEN: dict[str, Any] = {}


def _dataset(root: str) -> Any:
    if root not in _OPEN:
        ds = open_dataset(root)
        _OPEN[root] = (ds, {int(i): j for j, i in enumerate(ds._sample_index)})
    return _OPEN[root]


def _json_default(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else str(v)


def _load(row: dict[str, Any], root: str, modalities: tuple[str, ...]) -> dict[str, Any]:
    ds, position = _dataset(root)
    item = ds.read(position[int(row["sample_index"])], modalities)
    objs = [o for o in item["objects"] if not o.get("is_distractor") and o.get("bbox") is not None]
    boxes = np.array(
        [[b[0], b[1], b[0] + b[2], b[1] + b[3]] for b in (o["bbox"] for o in objs)],
        dtype=np.float32,
    ).reshape(-1, 4)
    out = {k: v for k, v in row.items() if k not in PATH_COLUMNS}
    out.update({m: item[m] for m in modalities})
    out["boxes"] = boxes
    out["labels"] = np.array([int(o["class_id"]) for o in objs], dtype=np.int64)
    out["instance_ids"] = np.array([int(o["instance_id"]) for o in objs], dtype=np.int64)
    out["objects"] = json.dumps(item["objects"], default=_json_default)
    return out


def read_dataset(
    path: str | os.PathLike[str], modalities: tuple[str, ...] | list[str] = ("rgb",)
) -> Any:
    """The dataset at ``path`` as a ``ray.data.Dataset`` of decoded samples (see the module
    doc); ``modalities`` picks which images are decoded. Needs ``pip install synthcv[ray]``;
    on a cluster ``path`` must be storage every node sees."""
    try:
        import ray.data
    except ImportError as e:
        raise ImportError("read_dataset needs Ray: pip install synthcv[ray]") from e
    wanted = tuple(modalities)
    if unknown := [m for m in wanted if m not in MODALITIES]:
        raise ValueError(f"modalities: unknown {unknown}; expected some of {list(MODALITIES)}")
    root = str(Path(path).resolve())
    ds = open_dataset(root)  # fails here, clearly, for a path that is not a dataset
    scalar = [
        f.name
        for f in ds.samples.schema
        if f.name not in PATH_COLUMNS and not str(f.type).startswith(("list", "null"))
    ]
    samples = ray.data.read_parquet(str(Path(root) / "samples.parquet")).select_columns(scalar)
    return samples.map(_load, fn_kwargs={"root": root, "modalities": wanted})
