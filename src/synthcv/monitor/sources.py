"""What ``synthcv monitor`` can read: every source ``synthcv compare`` takes, a folder of
images, and a COCO set, each as images plus whatever labels it carries.

Production data rarely arrives as a synthcv dataset: a camera drops JPEGs into a folder, an
annotation team returns COCO. A folder is read the way torchvision's ``ImageFolder`` reads one
(class sub-folders name the labels; loose images have none); images may differ in size. Sets
with objects (COCO, synthcv datasets) also give per-object features: size, position, count per
image and the class mix of the objects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from synthcv.tasks.instances import InstanceSet

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}

#: Per-object feature name -> what it measures (shown in reports).
OBJECT_FEATURES: dict[str, str] = {
    "object_count": "labelled objects per image",
    "object_size": "sqrt(box area) as a share of sqrt(image area)",
    "object_x": "box centre x, as a share of the width",
    "object_y": "box centre y, as a share of the height",
}

SOURCE_HELP = (
    "a synthcv dataset directory, a samples .npz (images, labels), a folder of images "
    "(class sub-folders name the labels), a COCO annotations .json (or a folder holding "
    "annotations.json), or mnist[:train|test|val|train-part]"
)


@dataclass
class MonitorSet:
    """Images (one uint8 array, or a list when sizes differ) with what is known about them.

    ``labels`` are image-level class indexes (-1: none); ``object_classes`` the class *names*
    of the objects (so two sets compare by name); ``objects`` per-object/per-image features."""

    name: str
    images: np.ndarray | list[np.ndarray]
    labels: np.ndarray | None = None
    factors: dict[str, np.ndarray] = field(default_factory=dict)
    digest: str = ""
    objects: dict[str, np.ndarray] = field(default_factory=dict)
    object_classes: np.ndarray | None = None
    #: the same images as an InstanceSet (boxes, masks, categories) for a detector; loaded on
    #: first use, since only a detector needs it
    instance_loader: Callable[[], InstanceSet] | None = field(default=None, repr=False)
    _instances: InstanceSet | None = field(default=None, repr=False)

    def instances(self) -> InstanceSet:
        """The set as labelled objects; a ValueError names a set that has none."""
        if self._instances is None:
            if self.instance_loader is None:
                raise ValueError(
                    f"{self.name}: a detector needs objects to look at: give a COCO set or a "
                    "synthcv dataset"
                )
            self._instances = self.instance_loader()
        return self._instances

    def __len__(self) -> int:
        return len(self.images)

    @property
    def same_size(self) -> bool:
        return isinstance(self.images, np.ndarray)


def _subset(count: int, n: int | None, seed: int) -> np.ndarray:
    idx = np.arange(count)
    if n is not None and n < count:
        idx = np.sort(np.random.default_rng(seed).permutation(count)[:n])
    return idx


def _stack_if_same(images: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    return np.stack(images) if len({im.shape for im in images}) == 1 else images


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in ("L", "I;16", "I", "F", "1"):
                return np.asarray(im.convert("L"), dtype=np.uint8)
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from None


def load_folder(path: Path, n: int | None = None, seed: int = 0) -> MonitorSet:
    """Images under ``path``: loose ones unlabelled, those in sub-folder ``C`` labelled ``C``
    (an integer folder name is the class index itself, as for digits; otherwise the classes
    are numbered in sorted order, as torchvision's ImageFolder does)."""
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(
            f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder"
        )
    classes = sorted({p.relative_to(path).parts[0] for p in files if p.parent != path})
    numeric = all(c.isdigit() for c in classes)
    index = {c: (int(c) if numeric else i) for i, c in enumerate(classes)}
    keep = [files[i] for i in _subset(len(files), n, seed)]
    labels = np.array(
        [index[p.relative_to(path).parts[0]] if p.parent != path else -1 for p in keep],
        dtype=np.int64,
    )
    images = [_read_image(p) for p in keep]
    return MonitorSet(
        name=path.name,
        images=_stack_if_same(images),
        labels=labels if (labels >= 0).any() else None,
        digest=_files_digest(path, files),
    )


def _files_digest(root: Path, files: list[Path]) -> str:
    """sha256 over every image's relative path and bytes: the folder's identity for lineage
    (and for ``synthcv loop``'s "same batch, nothing to do")."""
    from synthcv.fileio import sha256_file, sha256_text

    return sha256_text("\n".join(f"{p.relative_to(root)}\0{sha256_file(p)}" for p in files))


def load_npz(path: Path, n: int | None = None, seed: int = 0) -> MonitorSet:
    """``images`` (uint8 (N,H,W[,C])) and, optionally, ``labels`` (-1: unlabelled): a
    production batch may arrive with labels for only a sample of it, or none."""
    from synthcv.fileio import read_images_npz
    from synthcv.format import content_digest

    if not path.is_file():
        raise FileNotFoundError(f"samples file not found: {path}")
    images, labels = read_images_npz(path, labels_required=False)
    idx = _subset(len(images), n, seed)
    return MonitorSet(
        name=path.stem,
        images=images[idx],
        labels=None if labels is None or not (labels[idx] >= 0).any() else labels[idx],
        digest=content_digest(path),
    )


def object_features(boxes: list[np.ndarray], sizes: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    """boxes: per image (M,4) xywh; sizes: per image (height, width)."""
    count = np.array([len(b) for b in boxes], dtype=np.float64)
    rows = [
        (np.sqrt(np.maximum(b[:, 2] * b[:, 3], 0) / (h * w)),
         (b[:, 0] + b[:, 2] / 2) / w, (b[:, 1] + b[:, 3] / 2) / h)
        for b, (h, w) in zip(boxes, sizes, strict=True) if len(b)
    ]  # fmt: skip
    out = {"object_count": count}
    if rows:
        out["object_size"] = np.concatenate([r[0] for r in rows]).astype(np.float64)
        out["object_x"] = np.concatenate([r[1] for r in rows]).astype(np.float64)
        out["object_y"] = np.concatenate([r[2] for r in rows]).astype(np.float64)
    return out


def load_coco_set(annotations: Path, n: int | None = None, seed: int = 0) -> MonitorSet:
    """A COCO set (images relative to the annotation file's folder): full images, objects."""
    from synthcv.tasks.coco_data import load_coco

    data = load_coco(annotations.parent, annotations, name=annotations.parent.name)
    idx = _subset(len(data.images), n, seed)
    images = [data.images[i] for i in idx]
    targets = [data.targets[i] for i in idx]
    names = np.array(data.categories, dtype=object)
    subset = data.take(idx)
    return MonitorSet(
        instance_loader=lambda: subset,
        name=annotations.parent.name,
        images=_stack_if_same(images),
        factors={k: v[idx] for k, v in data.factors.items()},
        digest=data.digest,
        objects=object_features([t.boxes for t in targets], [im.shape[:2] for im in images]),
        object_classes=np.concatenate([names[t.labels] for t in targets]).astype(str)
        if targets
        else None,
    )


def load_dataset_set(path: Path, n: int | None = None, seed: int = 0) -> MonitorSet:
    """A synthcv dataset as rendered (no re-framing), each image labelled by its target object,
    with its factors and its objects' boxes. With ``n``, one seeded subset of the samples that
    have a target object feeds the images, the object features and the instance view alike."""
    from synthcv.format import open_dataset
    from synthcv.targets import target_object
    from synthcv.tasks.data import load_synthcv_dataset

    ds = open_dataset(path)
    sample_ids = np.asarray(ds.samples.column("sample_index").to_numpy())
    # the samples load_synthcv_dataset keeps: those with a target object; only the chosen
    # subset's images are decoded
    kept = np.array(
        [i for i in range(len(ds)) if target_object(ds.objects_of(i)) is not None], dtype=np.int64
    )
    if not len(kept):
        raise ValueError(f"{path}: no sample has a visible labelled object")
    idx = _subset(len(kept), n, seed)
    data = load_synthcv_dataset(path, match=None, progress=False, positions=kept[idx])
    chosen = sample_ids[kept[idx]]
    objects = ds.objects
    keep = np.asarray(objects.column("visible_pixels").to_numpy()) > 0
    keep &= ~np.asarray(objects.column("is_distractor").to_numpy(zero_copy_only=False), bool)
    sample_of = np.asarray(objects.column("sample_index").to_numpy())[keep]
    # a hidden object's bbox is null (FORMAT.md): read the boxes of the visible ones only
    visible_boxes = [b for b, k in zip(objects.column("bbox").to_pylist(), keep, strict=True) if k]
    boxes = np.array(visible_boxes, dtype=np.float64).reshape(-1, 4)
    classes = np.asarray(objects.column("class_name").to_pylist(), dtype=object)[keep]
    widths = np.asarray(ds.samples.column("width").to_numpy())
    heights = np.asarray(ds.samples.column("height").to_numpy())
    pos = {int(s): i for i, s in enumerate(sample_ids)}
    per_image = [boxes[sample_of == s] for s in chosen]
    sizes = [(int(heights[pos[int(s)]]), int(widths[pos[int(s)]])) for s in chosen]

    def instances() -> InstanceSet:
        from synthcv.tasks.coco_data import load_synthcv

        full = load_synthcv(path)
        at = {int(s): j for j, s in enumerate(full.image_ids)}
        return full.take(np.array([at[int(s)] for s in chosen], dtype=np.int64))

    return MonitorSet(
        instance_loader=instances,
        name=path.name,
        images=data.images,
        labels=data.labels,
        factors=data.factors,
        digest=data.digest,
        objects=object_features(per_image, sizes),
        object_classes=np.concatenate([classes[sample_of == s] for s in chosen]).astype(str)
        if len(chosen)
        else None,
    )


def load_monitor_source(
    text: str, n: int | None = None, seed: int = 0, mnist_path: str | None = None
) -> MonitorSet:
    """Any source of :data:`SOURCE_HELP`; ``n`` keeps a seeded random subset of images."""
    from synthcv.tasks.compare import load_compare_source

    path = Path(text)
    if path.suffix == ".json":
        if not path.is_file():
            raise FileNotFoundError(f"COCO annotations file not found: {path}")
        return load_coco_set(path, n, seed)
    if path.is_dir() and (path / "manifest.json").is_file():
        return load_dataset_set(path, n, seed)
    if path.is_dir() and (path / "annotations.json").is_file():
        return load_coco_set(path / "annotations.json", n, seed)
    if path.is_dir():
        return load_folder(path, n, seed)
    if path.suffix == ".npz":
        return load_npz(path, n, seed)
    data = load_compare_source(text, n, seed, mnist_path)
    return MonitorSet(
        name=text,
        images=data.images,
        labels=data.labels,
        factors=data.factors,
        digest=data.digest,
    )
