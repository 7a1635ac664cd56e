"""Export a dataset as COCO instances + keypoints JSON that pycocotools loads.

Image ids are the sample indexes; ``file_name`` is the RGB path relative to the dataset
directory. One annotation per non-distractor object with at least one visible pixel: the modal
box, ``area`` = visible pixel count, the instance mask as compressed RLE, COCO keypoints, and
two synthcv extras, ``visibility`` and ``amodal_bbox``. Hidden and out-of-view objects stay in
objects.parquet; COCO has no way to say "present but unseen" without a box. A category with
keypoints also carries ``sigmas``, its OKS sigmas (:mod:`synthcv.oks`), for COCOeval's
``params.kpt_oks_sigmas`` (docs/dataset_tools.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from synthcv.fileio import write_text_atomic
from synthcv.format import Dataset, open_dataset
from synthcv.format.codecs import read_png
from synthcv.oks import keypoint_sigmas


def _rle(mask: np.ndarray) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _categories(ds: Dataset) -> list[dict[str, Any]]:
    kp_names: dict[str, list[str]] = dict(ds.manifest.get("keypoints", {}))
    if len(ds.objects) and "keypoint_names" in ds.objects.column_names:
        # Fall back to the names recorded per object for classes the manifest does not list.
        cols = ds.objects.select(["class_name", "keypoint_names"]).to_pydict()
        for name, kps in zip(cols["class_name"], cols["keypoint_names"], strict=True):
            if name not in kp_names and kps is not None:
                kp_names[name] = list(kps)
    skeletons: dict[str, list[list[int]]] = dict(ds.manifest.get("skeletons", {}))
    categories = []
    for c in ds.classes:
        names = list(kp_names.get(c["name"], []))
        cat = {
            "id": int(c["id"]),
            "name": c["name"],
            "supercategory": "person" if c["name"] in skeletons else "object",
            # room geometry (floor, wall, ...): semantic classes without instances, as COCO
            # panoptic's stuff categories
            **({"supercategory": "room", "isthing": 0} if c.get("isthing") == 0 else {}),
            "keypoints": names,
            "skeleton": [list(p) for p in skeletons.get(c["name"], [])],
        }
        if names:
            # pycocotools scores keypoints with COCO's 17 person sigmas unless told otherwise
            # (a 9-keypoint category raises "shapes (9,) (17,)"): carry this category's own.
            cat["sigmas"] = [round(float(v), 6) for v in keypoint_sigmas(c["name"], len(names))]
        categories.append(cat)
    return categories


def build_coco(dataset: Dataset | str | os.PathLike[str], progress: bool = False) -> dict[str, Any]:
    """The COCO dictionary for a dataset (no file written)."""
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    rows: Any = range(len(ds))
    if progress and len(ds):
        from rich.console import Console
        from rich.progress import track

        rows = track(
            rows, description="exporting COCO", transient=True, console=Console(stderr=True)
        )
    # Read the few sample columns needed once, not a table slice per image.
    wanted_cols = ("sample_index", "width", "height", "rgb", "clip", "frame")
    cols = ds.samples.select([c for c in wanted_cols if c in ds.samples.column_names]).to_pydict()
    video = "clip" in cols  # a sequence dataset: TAO-style videos, frames and tracks
    tracks: dict[int, dict[str, Any]] = {}
    rgb_paths = cols.get("rgb", [None] * len(ds))
    has_instance = "instance" in ds.samples.column_names
    for j in rows:
        objects = ds.objects_of(j)
        image_id = int(cols["sample_index"][j])
        rgb = rgb_paths[j]
        images.append(
            {
                "id": image_id,
                "file_name": rgb,
                "width": int(cols["width"][j]),
                "height": int(cols["height"][j]),
            }
        )
        if video:
            images[-1] |= {"video_id": int(cols["clip"][j]) + 1, "frame_id": int(cols["frame"][j])}
        wanted = [
            o
            for o in objects
            if not o.get("is_distractor") and int(o.get("visible_pixels") or 0) > 0
        ]
        if not wanted:
            continue
        inst = None
        if has_instance and (p := ds.path(j, "instance")) is not None:
            inst = read_png(p, expect_uint16=True)
        for o in wanted:
            kps = [float(v) for v in (o.get("keypoints") or [])]
            for k in range(2, len(kps), 3):
                kps[k] = round(kps[k])
            ann: dict[str, Any] = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": int(o["class_id"]),
                "bbox": [float(v) for v in o["bbox"]],
                "area": int(o["visible_pixels"]),
                "iscrowd": 0,
                "keypoints": kps,
                "num_keypoints": sum(1 for k in range(2, len(kps), 3) if kps[k] > 0),
                "visibility": float(o.get("visibility") or 0.0),
                "amodal_bbox": (
                    [float(v) for v in o["bbox_amodal"]]
                    if o.get("bbox_amodal") is not None
                    else None
                ),
                "instance_id": int(o["instance_id"]),
            }
            if inst is not None:
                ann["segmentation"] = _rle(inst == o["instance_id"])
            if video:
                clip = int(cols["clip"][j])
                ann["video_id"] = clip + 1
                ann["track_id"] = clip * TRACK_STRIDE + int(o["instance_id"])
                tracks.setdefault(
                    ann["track_id"],
                    {
                        "id": ann["track_id"],
                        "category_id": ann["category_id"],
                        "video_id": clip + 1,
                    },
                )
            annotations.append(ann)
    m = ds.manifest
    return {
        "info": {
            "description": f"synthcv dataset {ds.root.name}",
            "version": str(m.get("spec_hash", ""))[:12],
            "synthcv_version": m.get("synthcv_version"),
            "spec_hash": m.get("spec_hash"),
            "file_names_relative_to": "the dataset directory",
        },
        "licenses": [],
        "categories": _categories(ds),
        "images": images,
        "annotations": annotations,
        **(_videos(ds, images, tracks) if video else {}),
    }


#: Track ids are unique across the dataset: clip × TRACK_STRIDE + instance id.
TRACK_STRIDE = 100_000


def _videos(
    ds: Dataset, images: list[dict[str, Any]], tracks: dict[int, dict[str, Any]]
) -> dict[str, Any]:
    """TAO's ``videos`` and ``tracks`` lists for a sequence dataset."""
    seq = ds.manifest.get("sequence") or {}
    videos: dict[int, dict[str, Any]] = {}
    for im in images:
        v = videos.setdefault(
            im["video_id"],
            {
                "id": im["video_id"],
                "name": f"clip-{im['video_id'] - 1:06d}",
                "width": im["width"],
                "height": im["height"],
                "fps": seq.get("fps"),
                "length": 0,
            },
        )
        v["length"] += 1
    return {
        "videos": list(videos.values()),
        "tracks": sorted(tracks.values(), key=lambda t: t["id"]),
    }


def export_coco(
    dataset: Dataset | str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> Path:
    """Write COCO JSON atomically; default ``DIR/coco/annotations.json``. Returns the path."""
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    out = Path(out) if out is not None else ds.root / "coco" / "annotations.json"
    data = build_coco(ds, progress=progress)
    write_text_atomic(out, json.dumps(data, separators=(",", ":")))
    return out
