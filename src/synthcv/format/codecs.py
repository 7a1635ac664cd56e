"""Array ↔ file encodings of the dataset format, deterministic so the same arrays always give
the same bytes (no timestamps, fixed compression settings).

- RGB / grey: 8-bit PNG. Instance and semantic ids: 16-bit PNG (mode ``I;16``), so a scene may
  hold up to 65,535 objects without the 8-bit overflow other generators suffer.
- Depth: float32 TIFF (deflate), metres, 0 = nothing hit.
- Normals: 8-bit RGB PNG, ``n = v / 255 * 2 - 1`` in the camera frame, (0, 0, 0) = no hit.
- Indexes: parquet (zstd) built from row dicts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

#: ITU-R BT.601 luma weights: the one definition of "grey" in synthcv.
LUMA = np.array([0.299, 0.587, 0.114])
PNG_LEVEL = 3


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) → uint8 (H, W) luma, rounded."""
    return np.clip(np.round(rgb.astype(np.float64) @ LUMA), 0, 255).astype(np.uint8)


def to_gray_float(img: np.ndarray) -> np.ndarray:
    """float32 luma in [0, 1] from an (H, W) or (H, W, 3) uint8 image (no rounding)."""
    a = np.asarray(img, dtype=np.float32) / 255.0
    if a.ndim == 3:
        a = a[..., :3] @ LUMA.astype(np.float32)
    return a


def encode_normals(n: np.ndarray) -> np.ndarray:
    """float camera-frame normals → uint8 RGB (v = (n + 1) / 2 * 255); no hit → (0, 0, 0)."""
    enc = np.clip(np.round((n + 1.0) * 127.5), 0, 255).astype(np.uint8)
    enc[~np.any(n != 0, axis=-1)] = 0
    return enc


def decode_normals(encoded: np.ndarray) -> np.ndarray:
    """PNG normals (``v/255*2-1``) → float32 camera-frame vectors; no-hit pixels → 0."""
    enc = np.asarray(encoded)
    n = enc.astype(np.float32) / 255.0 * 2.0 - 1.0
    n[np.all(enc == 0, axis=-1)] = 0.0
    return n


def write_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(arr).save(path, format="PNG", compress_level=PNG_LEVEL)


def write_depth(path: Path, depth: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(depth.astype(np.float32)).save(path, format="TIFF", compression="tiff_deflate")


#: Middlebury's .flo tag (the float 202021.25, "PIEH" in little-endian bytes).
FLO_TAG = 202021.25


def write_flow(path: Path, flow: np.ndarray) -> None:
    """Optical flow (H, W, 2) as a Middlebury .flo file: the tag, width and height, then
    float32 (dx, dy) per pixel, row-major, little-endian."""
    h, w = flow.shape[:2]
    with open(path, "wb") as f:
        np.array([FLO_TAG], "<f4").tofile(f)
        np.array([w, h], "<i4").tofile(f)
        np.asarray(flow, "<f4").reshape(h, w, 2).tofile(f)


def read_flow(path: Path) -> np.ndarray:
    """A .flo file as float32 (H, W, 2); a file that is not one raises ValueError naming it."""
    raw = Path(path).read_bytes()
    if len(raw) < 12 or np.frombuffer(raw[:4], "<f4")[0] != np.float32(FLO_TAG):
        raise ValueError(f"{path}: not a .flo optical-flow file (bad tag)")
    w, h = (int(v) for v in np.frombuffer(raw[4:12], "<i4"))
    if w <= 0 or h <= 0 or len(raw) != 12 + 8 * w * h:
        raise ValueError(f"{path}: truncated or malformed .flo file ({w} x {h})")
    return np.frombuffer(raw[12:], "<f4").reshape(h, w, 2).copy()


def write_modality(path: Path, modality: str, arr: np.ndarray) -> None:
    """Write one modality's array in its format (depth: TIFF, flow: .flo, else PNG)."""
    if modality in ("flow", "flow_back"):
        write_flow(path, arr)
    else:
        (write_depth if modality == "depth" else write_png)(path, arr)


@contextmanager
def _decoding(path: Path, kind: str) -> Iterator[None]:
    """A file that does not decode is a ``ValueError`` naming it (a missing or unreadable file
    stays the ``OSError`` it is: it carries its errno and path)."""
    from PIL import UnidentifiedImageError

    try:
        yield
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not a readable {kind} (corrupt or not an image)") from None
    except (OSError, SyntaxError, EOFError) as exc:  # PIL's decoders: truncated, bad chunks, ...
        if isinstance(exc, OSError) and exc.errno is not None:
            raise
        raise ValueError(f"{path}: not a readable {kind} ({exc})") from None


def read_png(path: Path, expect_uint16: bool = False) -> np.ndarray:
    """RGB/L PNG as uint8, or (expect_uint16) an id PNG as uint16; a file that does not decode
    raises ValueError naming it."""
    with _decoding(path, "PNG image"):
        return _read_png(path, expect_uint16)


def _read_png(path: Path, expect_uint16: bool) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        if expect_uint16:
            if im.mode not in ("I;16", "I;16B", "I", "L"):
                raise ValueError(f"{path}: expected a 16-bit id PNG, got mode {im.mode}")
            arr = np.array(im)
            if arr.dtype != np.uint16:
                if arr.size and (arr.min() < 0 or arr.max() > 65535):
                    raise ValueError(f"{path}: id values out of uint16 range")
                arr = arr.astype(np.uint16)
            return arr
        if im.mode not in ("RGB", "L"):
            im = im.convert("RGB")
        return np.array(im)


def read_depth(path: Path) -> np.ndarray:
    """Float32 depth TIFF (metres, 0 = nothing hit); a file that does not decode raises
    ValueError naming it."""
    from PIL import Image

    with _decoding(path, "depth TIFF"), Image.open(path) as im:
        if im.mode != "F":
            raise ValueError(f"{path}: expected a float32 depth TIFF (mode F), got mode {im.mode}")
        return np.array(im, dtype=np.float32)


def read_modality(path: Path, modality: str) -> np.ndarray:
    """One modality's file as the array the reader hands out (normals decoded to floats)."""
    if modality == "depth":
        return read_depth(path)
    if modality in ("instance", "semantic"):
        return read_png(path, expect_uint16=True)
    if modality == "normals":
        return decode_normals(read_png(path))
    if modality in ("flow", "flow_back"):
        return read_flow(path)
    return read_png(path)


def load_table_support() -> None:
    """Import pyarrow's parquet writer and build one table now, so that a worker's first shard,
    and its profile, do not pay for them: about 0.4 s for the import and 0.35 s for the first
    table from Python lists (pyarrow then imports pandas), once per process."""
    import pyarrow as pa
    import pyarrow.parquet

    pa.table({"x": [1.0, None], "y": [[1.0], None], "z": ["a", None]})


def rows_to_table(rows: list[dict[str, Any]]) -> Any:
    """A pyarrow table from row dicts, with every column present in any row (missing → null)."""
    import pyarrow as pa

    columns: dict[str, None] = {}
    for r in rows:
        columns.update(dict.fromkeys(r))
    return pa.table({c: [r.get(c) for r in rows] for c in columns})


def write_table(table: Any, path: Path) -> None:
    """A pyarrow table as zstd parquet."""
    import pyarrow.parquet as pq

    pq.write_table(table, path, compression="zstd")


def concat_tables(paths: list[Path]) -> Any:
    """Shard tables concatenated in the given order; columns missing in a shard become null."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(p) for p in paths]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="permissive")
