"""Writing one sample's files and one shard's index, in the documented format (docs/FORMAT.md).

Encoders are deterministic (no timestamps), so the same arrays always give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

LUMA = np.array([0.299, 0.587, 0.114])
PNG_LEVEL = 3


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def to_gray(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.round(rgb.astype(np.float64) @ LUMA), 0, 255).astype(np.uint8)


def encode_normals(n: np.ndarray) -> np.ndarray:
    """float camera-frame normals → uint8 RGB (v = (n + 1) / 2 * 255); no hit → (0, 0, 0)."""
    enc = np.clip(np.round((n + 1.0) * 127.5), 0, 255).astype(np.uint8)
    enc[~np.any(n != 0, axis=-1)] = 0
    return enc


def decode_normals(v: np.ndarray) -> np.ndarray:
    n = v.astype(np.float32) / 255.0 * 2.0 - 1.0
    n[~np.any(v != 0, axis=-1)] = 0
    return n


def write_png(path: Path, arr: np.ndarray) -> None:
    Image.fromarray(arr).save(path, format="PNG", compress_level=PNG_LEVEL)


def write_depth(path: Path, depth: np.ndarray) -> None:
    Image.fromarray(depth.astype(np.float32)).save(path, format="TIFF", compression="tiff_deflate")


def write_table(rows: list[dict[str, Any]], path: Path) -> None:
    pq.write_table(rows_to_table(rows), path, compression="zstd")


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """A table from row dicts, with every column present in any row (missing → null)."""
    columns: dict[str, None] = {}
    for r in rows:
        columns.update(dict.fromkeys(r))
    return pa.table({c: [r.get(c) for r in rows] for c in columns})


def concat_tables(paths: list[Path]) -> pa.Table:
    tables = [pq.read_table(p) for p in paths]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="permissive")


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=_json_default) + "\n")
    os.replace(tmp, path)


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
