"""A tiny hand-written dataset that follows docs/FORMAT.md, with analytic content.

It lets the readers and tools be tested against the format contract alone, independent of the
generator. Every sample is painted back to front from axis-aligned rectangles at constant depth,
so masks, boxes, areas, depths and visibility are known exactly:

- instance 1, class "cube" (id 1): rows 4..13, cols 3..14, depth 2.0, partly covered by 2;
- instance 2, class "sphere" (id 2): rows 8..19, cols 10..25, depth 1.5, fully visible;
- instance 3, distractor (class 0): rows 18..22, cols 27..30, depth 1.8;
- instance 4, "cube": rows 10..12, cols 15..18 at depth 3.0, fully behind 2 → hidden;
- instance 5, "sphere": outside the image (no pixels, null boxes).
Sample i shifts every rectangle right by i pixels. Ground: depth 5 - 0.1*row below row 2,
nothing hit (depth 0, normals (0,0,0)) in rows 0..1.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

W, H = 32, 24
CLASSES = [{"id": 1, "name": "cube"}, {"id": 2, "name": "sphere"}]
KP_NAMES = [f"corner_{k}" for k in range(8)] + ["centroid"]
# (instance_id, class_id, class_name, is_distractor, rows, cols, depth, colour); back to front.
RECTS = [
    (4, 1, "cube", False, (10, 12), (15, 18), 3.0, (255, 255, 0)),
    (1, 1, "cube", False, (4, 13), (3, 14), 2.0, (200, 30, 30)),
    (3, 0, "distractor", True, (18, 22), (27, 30), 1.8, (30, 30, 200)),
    (2, 2, "sphere", False, (8, 19), (10, 25), 1.5, (30, 200, 30)),
]
OUTSIDE = (5, 2, "sphere")
OBJ_NORMAL = np.array([0.0, 0.0, -1.0])
GROUND_NORMAL = np.array([0.0, -np.sqrt(0.5), -np.sqrt(0.5)])


def encode_normals(n: np.ndarray, hit: np.ndarray) -> np.ndarray:
    enc = np.round((n + 1.0) / 2.0 * 255.0).clip(0, 255).astype(np.uint8)
    enc[~hit] = 0
    return enc


def render_sample(i: int) -> dict[str, Any]:
    """Images and object rows of sample ``i`` (all analytic)."""
    rows_idx = np.arange(H)[:, None] * np.ones((1, W))
    depth = np.where(rows_idx >= 2, 5.0 - 0.1 * rows_idx, 0.0).astype(np.float32)
    rgb = np.full((H, W, 3), 90, np.uint8)
    rgb[:2] = 0
    instance = np.zeros((H, W), np.uint16)
    normals = np.broadcast_to(GROUND_NORMAL, (H, W, 3)).copy()
    full_masks = {}
    for iid, _cid, _name, _dist, (r0, r1), (c0, c1), z, colour in RECTS:
        m = np.zeros((H, W), bool)
        m[r0 : r1 + 1, c0 + i : c1 + 1 + i] = True
        full_masks[iid] = m
        instance[m] = iid
        depth[m] = z
        rgb[m] = colour
        normals[m] = OBJ_NORMAL
    class_of = {iid: cid for iid, cid, *_ in RECTS}
    semantic = np.zeros((H, W), np.uint16)
    for iid, cid in class_of.items():
        semantic[instance == iid] = cid
    hit = depth > 0

    objects = []
    for iid, cid, name, dist, *_ in sorted(RECTS):
        vis = instance == iid
        full = full_masks[iid]
        nvis, nfull = int(vis.sum()), int(full.sum())
        bbox = _box(vis) if nvis else None
        kps = []
        ys, xs = np.nonzero(full)
        corners = [
            (xs.min(), ys.min()),
            (xs.max(), ys.min()),
            (xs.min(), ys.max()),
            (xs.max(), ys.max()),
        ]
        for k in range(8):
            x, y = corners[k % 4]
            kps += [float(x), float(y), 2.0 if vis[y, x] else 1.0]
        cx, cy = float(xs.mean()), float(ys.mean())
        kps += [cx, cy, 2.0 if vis[int(cy), int(cx)] else 1.0]
        objects.append(
            _object_row(
                i,
                iid,
                cid,
                name,
                dist,
                "visible" if nvis else "hidden",
                nvis,
                nfull,
                bbox,
                _box(full),
                kps,
            )
        )
    iid, cid, name = OUTSIDE
    objects.append(
        _object_row(i, iid, cid, name, False, "outside", 0, 0, None, None, [0.0, 0.0, 0.0] * 9)
    )
    return {
        "rgb": rgb,
        "depth": depth,
        "instance": instance,
        "semantic": semantic,
        "normals_png": encode_normals(normals, hit),
        "objects": objects,
    }


def _box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [
        float(xs.min()),
        float(ys.min()),
        float(xs.max() - xs.min() + 1),
        float(ys.max() - ys.min() + 1),
    ]


def _object_row(i, iid, cid, name, dist, status, nvis, nfull, bbox, amodal, kps) -> dict[str, Any]:
    return {
        "sample_index": i,
        "instance_id": iid,
        "class_id": cid,
        "class_name": name,
        "is_distractor": dist,
        "status": status,
        "visible_pixels": nvis,
        "unoccluded_pixels": nfull,
        "visibility": nvis / nfull if nfull else 0.0,
        "bbox": bbox,
        "bbox_amodal": amodal,
        "keypoint_names": KP_NAMES,
        "keypoints": kps,
        "position_cam": [0.1 * iid, 0.0, 2.0],
        "rotation_cam": [0.0, 0.0, 0.0, 1.0],
        "box3d_cam": [0.0] * 24,
        "size": [0.1, 0.1, 0.1],
        "position_world": [0.1 * iid, 0.0, 0.05],
        "rotation_world": [0.0, 0.0, 0.0, 1.0],
        "asset": "primitive:cube" if name == "cube" else "primitive:sphere",
        "scale": 1.0 + 0.1 * iid,
        "color_h": 0.05 * iid,
    }


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


OBJECT_SCHEMA = pa.schema(
    [
        ("sample_index", pa.int64()),
        ("instance_id", pa.int32()),
        ("class_id", pa.int32()),
        ("class_name", pa.string()),
        ("is_distractor", pa.bool_()),
        ("status", pa.string()),
        ("visible_pixels", pa.int64()),
        ("unoccluded_pixels", pa.int64()),
        ("visibility", pa.float64()),
        # Nullable boxes are variable-length lists: pyarrow 25 cannot read back a parquet
        # fixed_size_list column that holds nulls ("Expected all lists to be of size=4").
        ("bbox", pa.list_(pa.float64())),
        ("bbox_amodal", pa.list_(pa.float64())),
        ("keypoint_names", pa.list_(pa.string())),
        ("keypoints", pa.list_(pa.float64())),
        ("position_cam", pa.list_(pa.float64(), 3)),
        ("rotation_cam", pa.list_(pa.float64(), 4)),
        ("box3d_cam", pa.list_(pa.float64(), 24)),
        ("size", pa.list_(pa.float64(), 3)),
        ("position_world", pa.list_(pa.float64(), 3)),
        ("rotation_world", pa.list_(pa.float64(), 4)),
        ("asset", pa.string()),
        ("scale", pa.float64()),
        ("color_h", pa.float64()),
    ]
)

SAMPLE_SCHEMA = pa.schema(
    [
        ("sample_index", pa.int64()),
        ("shard", pa.string()),
        ("rgb", pa.string()),
        ("depth", pa.string()),
        ("instance", pa.string()),
        ("semantic", pa.string()),
        ("normals", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("K", pa.list_(pa.float64(), 9)),
        ("world_to_camera", pa.list_(pa.float64(), 16)),
        ("seed", pa.int64()),
        ("num_objects", pa.int32()),
        ("num_visible", pa.int32()),
        ("camera.distance", pa.float64()),
        ("camera.elevation", pa.float64()),
        ("ground.texture", pa.string()),
    ]
)


def write_fixture_dataset(
    root: Path, count: int = 3, shard_size: int = 2, normals: bool = True
) -> Path:
    """Write the analytic dataset to ``root`` exactly as FORMAT.md lays it out."""
    root = Path(root)
    files: dict[str, str] = {}
    all_samples, all_objects = [], []
    num_shards = -(-count // shard_size)
    for s in range(num_shards):
        shard_rel = f"shards/shard-{s:06d}"
        shard_dir = root / shard_rel
        shard_dir.mkdir(parents=True)
        samples, objects = [], []
        for i in range(s * shard_size, min(count, (s + 1) * shard_size)):
            r = render_sample(i)
            stem = f"{i:06d}"
            Image.fromarray(r["rgb"]).save(shard_dir / f"{stem}.rgb.png")
            Image.fromarray(r["depth"]).save(
                shard_dir / f"{stem}.depth.tiff", compression="tiff_adobe_deflate"
            )
            Image.fromarray(r["instance"]).save(shard_dir / f"{stem}.instance.png")
            Image.fromarray(r["semantic"]).save(shard_dir / f"{stem}.semantic.png")
            if normals:
                Image.fromarray(r["normals_png"]).save(shard_dir / f"{stem}.normals.png")
            f = 30.0
            samples.append(
                {
                    "sample_index": i,
                    "shard": shard_rel,
                    "rgb": f"{shard_rel}/{stem}.rgb.png",
                    "depth": f"{shard_rel}/{stem}.depth.tiff",
                    "instance": f"{shard_rel}/{stem}.instance.png",
                    "semantic": f"{shard_rel}/{stem}.semantic.png",
                    "normals": f"{shard_rel}/{stem}.normals.png" if normals else None,
                    "width": W,
                    "height": H,
                    "K": [f, 0, (W - 1) / 2, 0, f, (H - 1) / 2, 0, 0, 1],
                    "world_to_camera": np.eye(4).ravel().tolist(),
                    "seed": 1000 + i,
                    "num_objects": len(r["objects"]),
                    "num_visible": sum(o["status"] == "visible" for o in r["objects"]),
                    "camera.distance": 1.0 + 0.5 * i,
                    "camera.elevation": 30.0 + 10.0 * i,
                    "ground.texture": ["wood", "checker", "wood"][i % 3],
                }
            )
            objects.extend(r["objects"])
        pq.write_table(pa.Table.from_pylist(samples, SAMPLE_SCHEMA), shard_dir / "samples.parquet")
        pq.write_table(pa.Table.from_pylist(objects, OBJECT_SCHEMA), shard_dir / "objects.parquet")
        shard_files = {p.name: _sha(p) for p in sorted(shard_dir.iterdir())}
        (shard_dir / "shard.json").write_text(
            json.dumps(
                {
                    "start": s * shard_size,
                    "stop": min(count, (s + 1) * shard_size),
                    "files": shard_files,
                }
            )
        )
        all_samples += samples
        all_objects += objects
    pq.write_table(pa.Table.from_pylist(all_samples, SAMPLE_SCHEMA), root / "samples.parquet")
    pq.write_table(pa.Table.from_pylist(all_objects, OBJECT_SCHEMA), root / "objects.parquet")
    for p in sorted(root.rglob("*")):
        if p.is_file():
            files[p.relative_to(root).as_posix()] = _sha(p)
    manifest = {
        "format_version": 2,
        "synthcv_version": "0.1.0",
        "spec": {"count": count, "seed": 0},
        "spec_hash": "f" * 64,
        "count": count,
        "shard_size": shard_size,
        "num_shards": num_shards,
        "backend": {"name": "fixture", "version": "1", "normals_source": "geometry"},
        "classes": CLASSES,
        "keypoints": {"cube": KP_NAMES, "sphere": KP_NAMES},
        "depth": {"file": "tiff-float32", "units": "m", "invalid": 0},
        "normals": {"file": "png-uint8", "frame": "camera", "decode": "v/255*2-1"},
        "files": files,
    }
    write_manifest_with_digest(root, manifest)
    return root


def write_manifest_with_digest(root: Path, manifest: dict[str, Any]) -> None:
    """manifest.json with its ``manifest_digest`` as FORMAT.md defines it: sha256 of the
    canonical JSON (sorted keys, no spaces) of the manifest without that key."""
    body = {k: v for k, v in manifest.items() if k != "manifest_digest"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    full = {**body, "manifest_digest": hashlib.sha256(canonical.encode()).hexdigest()}
    (root / "manifest.json").write_text(json.dumps(full, indent=1, sort_keys=True))
