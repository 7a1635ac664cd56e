"""A ``torch.utils.data.Dataset`` over a synthcv dataset directory.

Only users who have torch import this module (``pip install synthcv[models]``), so torch is
imported at the top. Images come back as CHW float32 tensors in [0, 1]; targets follow the task:

- ``"class"``: the 0-based label of :mod:`synthcv.targets` — ``class_id - 1`` of the largest
  visible labelled object, -1 if none is visible (usable as CrossEntropyLoss's
  ``ignore_index``);
- ``"detection"``: ``{"boxes": (N, 4) float xyxy, "labels": (N,) int64, "masks": (N, H, W)
  uint8, "instance_ids": (N,) int64}`` for non-distractor objects with ≥ 1 visible pixel;
- ``"segmentation"``: the semantic map as an (H, W) int64 tensor;
- ``"pairs"``: the ``clean`` image (CHW float32 in [0, 1]) of a dataset written with
  ``outputs: {pairs: true}``, so items are (noisy, clean) for a denoiser (docs/sensor.md).

Detection targets also carry what torchvision's detection models and COCO tools expect:
``image_id`` (the sample index), ``area`` (visible pixels), ``iscrowd`` (zeros) and
``keypoints`` (N, K, 3) float32 ``(x, y, v)`` with K the dataset's largest keypoint count
(classes with fewer keypoints are padded with v = 0, "not labelled").

Only what is used is decoded: the input modalities (``modalities``, default RGB alone) and
what the target needs (instance ids for detection, the semantic map for segmentation). With
``modalities`` given, the input is a dict of CHW float32 tensors by modality (depth in metres,
normals in [-1, 1], ids as float). ``transforms(input, target)`` is the joint form
(torchvision's ``transforms=``): one callable that sees both, for flips and crops that must
move boxes, masks and keypoints with the pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

try:
    import torch
    from torch.utils.data import Dataset as _TorchDataset
except ImportError as e:  # pragma: no cover - exercised by simulating a missing torch
    raise ImportError(
        "synthcv.torch_data needs PyTorch, which is not installed: pip install synthcv[models]"
    ) from e

import numpy as np

from synthcv.format import Dataset, open_dataset
from synthcv.format.layout import MODALITIES
from synthcv.targets import target_label

TARGETS = ("class", "detection", "segmentation", "pairs")


#: What each target decodes besides the input modalities.
TARGET_MODALITIES = {
    "class": (),
    "detection": ("instance",),
    "segmentation": ("semantic",),
    "pairs": ("clean",),  # (noisy rgb, clean) for denoisers: outputs.pairs (docs/sensor.md)
}


def _keypoints(objs: list[dict[str, Any]], k_max: int) -> torch.Tensor:
    """(N, k_max, 3) float32: each object's (x, y, v) rows, padded with zeros (v = 0)."""
    out = torch.zeros((len(objs), k_max, 3), dtype=torch.float32)
    for n, o in enumerate(objs):
        flat = o.get("keypoints") or []
        if flat:
            rows = torch.tensor(flat, dtype=torch.float32).reshape(-1, 3)[:k_max]
            out[n, : len(rows)] = rows
    return out


def _detection_target(item: dict[str, Any], k_max: int = 0) -> dict[str, torch.Tensor]:
    objs = [
        o
        for o in item["objects"]
        if not o.get("is_distractor")
        and int(o.get("visible_pixels") or 0) > 0
        and o.get("bbox") is not None
    ]
    boxes = torch.tensor(
        [[b[0], b[1], b[0] + b[2], b[1] + b[3]] for b in (o["bbox"] for o in objs)],
        dtype=torch.float32,
    ).reshape(-1, 4)
    labels = torch.tensor([int(o["class_id"]) for o in objs], dtype=torch.int64)
    ids = torch.tensor([int(o["instance_id"]) for o in objs], dtype=torch.int64)
    inst = item["instance"]
    if inst is None:
        raise ValueError(
            f"sample {item['index']}: target='detection' needs the instance modality, "
            "which this dataset does not have (outputs.instance was off)"
        )
    inst_t = torch.from_numpy(inst.astype(np.int64))
    masks = (inst_t[None] == ids[:, None, None]).to(torch.uint8)
    target = {
        "boxes": boxes,
        "labels": labels,
        "masks": masks,
        "instance_ids": ids,
        "image_id": torch.tensor(int(item["index"]), dtype=torch.int64),
        "area": masks.flatten(1).sum(1).to(torch.float32),
        "iscrowd": torch.zeros(len(objs), dtype=torch.int64),
    }
    if k_max:
        target["keypoints"] = _keypoints(objs, k_max)
    return target


def _as_chw(arr: np.ndarray, modality: str) -> torch.Tensor:
    """One decoded modality as a CHW float32 tensor (RGB scaled to [0, 1], the rest as is)."""
    a = arr[..., None] if arr.ndim == 2 else arr
    t = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
    return t.float() / 255.0 if modality in ("rgb", "clean") else t.float()


class SynthcvTorchDataset(_TorchDataset):
    """Indexable (input, target) pairs, torchvision-style: ``transform`` (input) and
    ``target_transform`` apply per item, or ``transforms(input, target)`` jointly."""

    def __init__(
        self,
        path_or_dataset: Dataset | str | os.PathLike[str],
        transform: Callable[[Any], Any] | None = None,
        target: str = "class",
        target_transform: Callable[[Any], Any] | None = None,
        modalities: list[str] | None = None,
        transforms: Callable[[Any, Any], tuple[Any, Any]] | None = None,
    ):
        if target not in TARGETS:
            raise ValueError(f"target: got {target!r}, expected one of {list(TARGETS)}")
        if transforms is not None and (transform is not None or target_transform is not None):
            raise ValueError(
                "transforms (joint) and transform/target_transform are mutually exclusive"
            )
        self.dataset = (
            path_or_dataset
            if isinstance(path_or_dataset, Dataset)
            else open_dataset(path_or_dataset)
        )
        if modalities is not None:
            if not modalities:
                raise ValueError("modalities: give at least one, e.g. ['rgb', 'depth']")
            if unknown := [m for m in modalities if m not in MODALITIES]:
                raise ValueError(
                    f"modalities: unknown {unknown}; expected some of {list(MODALITIES)}"
                )
        self.modalities = modalities
        self.transform = transform
        self.target = target
        self.target_transform = target_transform
        self.transforms = transforms
        inputs = modalities or ["rgb"]
        self._decode = tuple(dict.fromkeys([*inputs, *TARGET_MODALITIES[target]]))
        names = self.dataset.manifest.get("keypoints") or {}
        self._k_max = max((len(v) for v in names.values()), default=0)

    @property
    def classes(self) -> list[str]:
        """Class names in class-id order: ``classes[label]`` names a ``target="class"`` label,
        ``classes[label - 1]`` a detection label (0 there is the background)."""
        return [c["name"] for c in sorted(self.dataset.classes, key=lambda c: c["id"])]

    @property
    def class_to_idx(self) -> dict[str, int]:
        """Name -> ``target="class"`` label (torchvision's ``ImageFolder`` attribute)."""
        return {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.dataset)

    def _input(self, item: dict[str, Any]) -> Any:
        if self.modalities is None:
            if item["rgb"] is None:
                raise ValueError(f"sample {item['index']}: the dataset has no rgb images")
            return _as_chw(item["rgb"], "rgb")
        missing = [m for m in self.modalities if item[m] is None]
        if missing:
            raise ValueError(f"sample {item['index']}: the dataset has no {missing} images")
        return {m: _as_chw(item[m], m) for m in self.modalities}

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        item = self.dataset.read(i, self._decode)
        image = self._input(item)
        if self.target == "class":
            tgt: Any = target_label(item["objects"])
        elif self.target == "detection":
            tgt = _detection_target(item, self._k_max)
        elif self.target == "pairs":
            if item["clean"] is None:
                raise ValueError(
                    f"sample {item['index']}: target='pairs' needs the clean modality: "
                    "generate the dataset with outputs: {pairs: true}"
                )
            tgt = _as_chw(item["clean"], "clean")
        else:
            if item["semantic"] is None:
                raise ValueError(
                    f"sample {item['index']}: target='segmentation' needs the semantic modality"
                )
            tgt = torch.from_numpy(item["semantic"].astype(np.int64))
        if self.transforms is not None:
            return self.transforms(image, tgt)
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            tgt = self.target_transform(tgt)
        return image, tgt


def collate_detection(batch: list[tuple[Any, Any]]) -> tuple[list[Any], list[Any]]:
    """DataLoader ``collate_fn`` for ``target="detection"``: objects per image vary, so images
    and targets stay lists instead of being stacked."""
    images, targets = zip(*batch, strict=True) if batch else ((), ())
    return list(images), list(targets)
