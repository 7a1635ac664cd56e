"""Images with per-object labels — the one in-memory form of every detection, segmentation and
keypoint source.

A synthcv dataset, a COCO-format dataset a user brings, and the real digit scenes all become an
:class:`InstanceSet`: images, and per image the objects' boxes, class indexes, masks and
keypoints, plus per-image and per-object factors for slicing. Category *names* are the contract
between sources (synthetic "7" meets real "7"); indexes are positions in ``categories``.

Conventions (the same as COCO's, so export and evaluation never translate):

- boxes are ``[x, y, w, h]`` in pixels, float32, x right and y down from the image's top-left
  corner, covering the object's visible pixels;
- masks are bool (H, W) per object, ``None`` when a source has none;
- keypoints are (K, 3) float32 ``x, y, v`` with COCO visibility ``v``: 0 not labelled,
  1 labelled but hidden, 2 visible; a category without keypoints has K = 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


@dataclass
class Instances:
    """The labelled objects of one image."""

    boxes: np.ndarray  # (M, 4) float32 xywh
    labels: np.ndarray  # (M,) int64 index into InstanceSet.categories
    masks: np.ndarray | None = None  # (M, H, W) bool
    keypoints: np.ndarray | None = None  # (M, K, 3) float32 x, y, v
    factors: dict[str, np.ndarray] = field(default_factory=dict)  # name → (M,) per object

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        m = len(self.labels)
        if len(self.boxes) != m:
            raise ValueError(f"{len(self.boxes)} boxes but {m} labels")
        if self.masks is not None:
            self.masks = np.asarray(self.masks, dtype=bool)
            if self.masks.ndim != 3 or len(self.masks) != m:
                raise ValueError(f"masks of shape {self.masks.shape} for {m} objects")
        if self.keypoints is not None:
            self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
            if self.keypoints.ndim != 3 or self.keypoints.shape[0] != m:
                raise ValueError(f"keypoints of shape {self.keypoints.shape} for {m} objects")
        for k, v in self.factors.items():
            if len(v) != m:
                raise ValueError(f"object factor {k!r} has {len(v)} values for {m} objects")

    def __len__(self) -> int:
        return len(self.labels)

    @staticmethod
    def empty(height: int, width: int, num_keypoints: int = 0) -> Instances:
        return Instances(
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.int64),
            np.zeros((0, height, width), bool),
            np.zeros((0, num_keypoints, 3), np.float32),
        )


@dataclass
class InstanceSet:
    """Images (each (H, W, C) uint8) with their :class:`Instances`.

    ``keypoint_names`` maps a category name to its keypoint names (the K of that category);
    ``image_ids`` are the source's own ids (COCO image ids, synthcv sample indexes) so exported
    predictions refer to the source's images; ``factors`` are per image (name → (N,) array).
    """

    images: list[np.ndarray]
    targets: list[Instances]
    categories: list[str]
    name: str = "data"
    digest: str = ""
    image_ids: np.ndarray | None = None
    keypoint_names: dict[str, list[str]] = field(default_factory=dict)
    factors: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.targets):
            raise ValueError(
                f"{self.name}: {len(self.images)} images but {len(self.targets)} targets"
            )
        n = len(self.images)
        self.image_ids = (
            np.arange(n, dtype=np.int64)
            if self.image_ids is None
            else np.asarray(self.image_ids, dtype=np.int64)
        )
        if len(self.image_ids) != n:
            raise ValueError(f"{self.name}: {len(self.image_ids)} image ids for {n} images")
        for k, v in self.factors.items():
            if len(v) != n:
                raise ValueError(f"{self.name}: factor {k!r} has {len(v)} values, want {n}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_keypoints(self) -> int:
        """K of the set: the largest keypoint count of any category (0: no keypoints)."""
        return max((len(v) for v in self.keypoint_names.values()), default=0)

    def keypoint_count(self, category: str, target: Instances | None = None) -> int:
        """K of one category: its ``keypoint_names`` entry; a set without any names gives every
        category the K of the keypoint arrays (of ``target``, else of the first target that
        has some)."""
        if self.keypoint_names:
            return len(self.keypoint_names.get(category, []))
        for t in [target] if target is not None else self.targets:
            if t is not None and t.keypoints is not None and t.keypoints.ndim == 3:
                return int(t.keypoints.shape[1])
        return 0

    def take(self, idx: Sequence[int] | np.ndarray, name: str | None = None) -> InstanceSet:
        idx = np.asarray(idx, dtype=np.int64)
        assert self.image_ids is not None
        return replace(
            self,
            images=[self.images[i] for i in idx],
            targets=[self.targets[i] for i in idx],
            image_ids=self.image_ids[idx],
            name=name or self.name,
            factors={k: v[idx] for k, v in self.factors.items()},
        )

    def aligned_to(self, categories: Sequence[str]) -> InstanceSet:
        """The set with class indexes into ``categories`` (a model's classes), matched by name;
        a class ``categories`` lacks is an error naming it (rename or drop it with a
        ``label_map``)."""
        names = list(categories)
        if list(self.categories) == names:
            return self
        pos = {c: i for i, c in enumerate(names)}
        missing = [c for c in self.categories if c not in pos]
        if missing:
            raise ValueError(
                f"source {self.name!r} has classes {missing} the model does not know "
                f"({names}); rename or drop them with label_map"
            )
        remap = np.array([pos[c] for c in self.categories], np.int64)
        targets = [replace(t, labels=remap[t.labels]) for t in self.targets]
        return replace(self, targets=targets, categories=names)

    def class_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.categories, 0)
        for t in self.targets:
            for c in t.labels:
                counts[self.categories[int(c)]] += 1
        return counts

    def to_coco(self) -> dict[str, Any]:
        """The ground truth as a COCO dict (category ids = index + 1), for COCOeval."""
        from pycocotools import mask as mask_utils

        assert self.image_ids is not None
        images, anns = [], []
        for img, t, image_id in zip(self.images, self.targets, self.image_ids, strict=True):
            h, w = img.shape[:2]
            images.append({"id": int(image_id), "width": int(w), "height": int(h)})
            for j in range(len(t)):
                box = [float(v) for v in t.boxes[j]]
                ann: dict[str, Any] = {
                    "id": len(anns) + 1,
                    "image_id": int(image_id),
                    "category_id": int(t.labels[j]) + 1,
                    "bbox": box,
                    "iscrowd": 0,
                }
                if t.masks is not None:
                    rle = mask_utils.encode(np.asfortranarray(t.masks[j].astype(np.uint8)))
                    ann["segmentation"] = {
                        "size": [int(v) for v in rle["size"]],
                        "counts": rle["counts"].decode("ascii"),
                    }
                    ann["area"] = float(t.masks[j].sum())
                else:
                    ann["area"] = box[2] * box[3]
                k = self.keypoint_count(self.categories[int(t.labels[j])], t)
                if k:  # COCO: 3 × the category's own K values; none labelled when a source has none
                    kp = np.zeros((k, 3), np.float32) if t.keypoints is None else t.keypoints[j, :k]
                    ann["keypoints"] = [float(v) for v in kp.reshape(-1)]
                    ann["num_keypoints"] = int((kp[:, 2] > 0).sum())
                anns.append(ann)
        cats = [
            {"id": i + 1, "name": c, "keypoints": list(self.keypoint_names.get(c, []))}
            for i, c in enumerate(self.categories)
        ]
        return {"images": images, "annotations": anns, "categories": cats}


@dataclass
class Predictions:
    """What a detector says about one image, in :class:`Instances`' conventions: boxes xywh,
    a score per object, and optionally masks and keypoints (``v`` holds each keypoint's
    confidence in [0, 1], as COCO results do)."""

    boxes: np.ndarray  # (D, 4) float32 xywh
    scores: np.ndarray  # (D,) float32
    labels: np.ndarray  # (D,) int64 index into the categories
    masks: np.ndarray | None = None  # (D, H, W) bool
    keypoints: np.ndarray | None = None  # (D, K, 3) float32 x, y, confidence

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if not len(self.boxes) == len(self.scores) == len(self.labels):
            raise ValueError(
                f"{len(self.boxes)} boxes, {len(self.scores)} scores, {len(self.labels)} labels"
            )

    def __len__(self) -> int:
        return len(self.labels)
