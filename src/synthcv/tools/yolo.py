"""Export a dataset in the YOLO layout (Ultralytics): detect, segment or pose labels.

Ultralytics finds an image's labels by replacing ``images`` with ``labels`` in its path, so the
export is ``OUT/images/KEY.png`` (hard links to the dataset's RGB files where the filesystem
allows, copies otherwise), ``OUT/labels/KEY.txt`` and ``OUT/data.yaml``. One line per
non-distractor object with a visible box, its class index ``class_id - 1`` (synthcv's 0-based
label, :mod:`synthcv.targets`), coordinates normalised by the image size:

- ``detect``: ``cls cx cy w h`` (the modal box);
- ``segment``: ``cls x1 y1 x2 y2 ...``: the outline of the object's largest visible part
  (traced on the instance mask, simplified to within a quarter pixel);
- ``pose``: ``cls cx cy w h`` then ``x y v`` per keypoint, K the dataset's largest keypoint
  count (fewer keypoints are padded with ``0 0 0``); ``data.yaml`` gets ``kpt_shape`` and, for
  COCO people, ``flip_idx``.

``data.yaml`` lists every sample under both ``train`` and ``val``: split them for a real run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from synthcv.fileio import atomic_dir, link_or_copy, write_text_atomic
from synthcv.format import Dataset, open_dataset
from synthcv.format.codecs import read_png

YOLO_TASKS = ("detect", "segment", "pose")


def outline(mask: np.ndarray) -> np.ndarray:
    """(P, 2) x, y vertices of the largest connected part of a boolean mask, in pixel-edge
    coordinates (pixel i spans [i, i + 1)), simplified to within a quarter pixel."""
    from skimage import measure

    labels = measure.label(mask, connectivity=1)
    if labels.max() == 0:
        return np.zeros((0, 2))
    largest = np.argmax(np.bincount(labels.ravel())[1:]) + 1
    padded = np.pad(labels == largest, 1).astype(float)
    contours = measure.find_contours(padded, 0.5)
    contour = max(contours, key=len)
    contour = measure.approximate_polygon(contour, tolerance=0.25)
    # find_contours gives (row, col) through pixel centres of the padded image: centre (r, c)
    # of the unpadded image sits at r + 1; +0.5 moves centres to the pixel-edge convention.
    return np.stack([contour[:, 1] - 0.5, contour[:, 0] - 0.5], axis=1)


def _fmt(values: list[float]) -> str:
    return " ".join(f"{v:.6f}".rstrip("0").rstrip(".") if v % 1 else str(int(v)) for v in values)


def _lines(ds: Dataset, j: int, task: str, k_max: int, w: int, h: int) -> list[str]:
    objects = [
        o
        for o in ds.objects_of(j)
        if not o.get("is_distractor") and o.get("bbox") is not None and o["status"] == "visible"
    ]
    inst = None
    if task == "segment" and objects:
        path = ds.path(j, "instance")
        if path is None:
            raise ValueError(f"{ds.root}: --yolo-task segment needs the instance modality")
        inst = read_png(path, expect_uint16=True)
    lines = []
    for o in objects:
        cls = int(o["class_id"]) - 1
        x, y, bw, bh = (float(v) for v in o["bbox"])
        box = [(x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h]
        if task == "detect":
            lines.append(f"{cls} {_fmt(box)}")
        elif task == "segment":
            assert inst is not None
            poly = outline(inst == int(o["instance_id"]))
            if len(poly) >= 3:
                flat = (poly / np.array([w, h])).clip(0, 1).ravel().tolist()
                lines.append(f"{cls} {_fmt(flat)}")
        else:
            kps = np.zeros((k_max, 3))
            flat = o.get("keypoints") or []
            if flat:
                rows = np.asarray(flat, dtype=np.float64).reshape(-1, 3)[:k_max]
                kps[: len(rows)] = rows
            kps[:, 0] /= w
            kps[:, 1] /= h
            kps[kps[:, 2] == 0, :2] = 0  # unlabelled: "0 0 0", as Ultralytics writes them
            lines.append(f"{cls} {_fmt(box + kps.ravel().tolist())}")
    return lines


def _data_yaml(ds: Dataset, out: Path, task: str, k_max: int) -> str:
    import yaml

    names = {int(c["id"]) - 1: c["name"] for c in ds.classes}
    data: dict[str, Any] = {
        "path": str(out.resolve()),
        "train": "images",
        "val": "images",  # every sample: split into train and val for a real run
        "names": names,
    }
    if task == "pose":
        data["kpt_shape"] = [k_max, 3]
        skeletons = ds.manifest.get("skeletons") or {}
        kp_names = ds.manifest.get("keypoints") or {}
        people = [n for n in skeletons if len(kp_names.get(n, [])) == k_max == 17]
        if people and len(kp_names) == len(people):
            from synthcv.people.keypoints import COCO_FLIP_PAIRS

            flip = list(range(k_max))
            for a, b in COCO_FLIP_PAIRS:
                flip[a], flip[b] = b, a
            data["flip_idx"] = flip
    head = f"# synthcv export --format yolo (task: {task}) of {ds.root}\n"
    return head + yaml.safe_dump(data, sort_keys=False)


def export_yolo(
    dataset: Dataset | str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    task: str = "detect",
    progress: bool = False,
) -> Path:
    """Write ``dataset`` in the YOLO layout for ``task`` into directory ``out`` (default
    ``DIR/yolo``; it must not exist or be empty) and return ``out``."""
    if task not in YOLO_TASKS:
        raise ValueError(f"--yolo-task: got {task!r}, expected one of {list(YOLO_TASKS)}")
    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    final = Path(out) if out is not None else ds.root / "yolo"
    k_max = max((len(v) for v in (ds.manifest.get("keypoints") or {}).values()), default=0)
    if task == "pose" and k_max == 0:
        raise ValueError(f"{ds.root}: --yolo-task pose needs keypoints, and this dataset has none")
    positions: Any = range(len(ds))
    if progress and len(ds) > 50:
        from rich.progress import track

        positions = track(positions, description=f"yolo {final}", transient=True)
    with atomic_dir(final) as tmp:
        (tmp / "images").mkdir()
        (tmp / "labels").mkdir()
        for j in positions:
            rgb = ds.path(j, "rgb")
            if rgb is None:
                raise ValueError(f"{ds.root}: sample position {j} has no rgb image")
            key = f"{int(ds.samples.column('sample_index')[j].as_py()):08d}"
            w = int(ds.samples.column("width")[j].as_py())
            h = int(ds.samples.column("height")[j].as_py())
            link_or_copy(rgb, tmp / "images" / f"{key}.png")
            lines = _lines(ds, j, task, k_max, w, h)
            write_text_atomic(tmp / "labels" / f"{key}.txt", "".join(f"{s}\n" for s in lines))
        write_text_atomic(tmp / "data.yaml", _data_yaml(ds, final, task, k_max))
    return final
