"""A ``torch.utils.data.Dataset`` over a synthcv dataset directory.

Only users who have torch import this module (``pip install synthcv[models]``), so torch is
imported at the top. Images come back as CHW float32 tensors in [0, 1]; targets follow the task:

- ``"class"``: the 0-based label of :mod:`synthcv.targets` — ``class_id - 1`` of the largest
  visible labelled object, -1 if none is visible (usable as CrossEntropyLoss's
  ``ignore_index``);
- ``"detection"``: ``{"boxes": (N, 4) float xyxy, "labels": (N,) int64, "masks": (N, H, W)
  uint8, "instance_ids": (N,) int64}`` for non-distractor objects with ≥ 1 visible pixel;
- ``"segmentation"``: the semantic map as an (H, W) int64 tensor.
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
from synthcv.targets import target_label

TARGETS = ("class", "detection", "segmentation")


def _detection_target(item: dict[str, Any]) -> dict[str, torch.Tensor]:
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
    return {"boxes": boxes, "labels": labels, "masks": masks, "instance_ids": ids}


class SynthcvTorchDataset(_TorchDataset):
    """Indexable (image, target) pairs; ``transform``/``target_transform`` apply per item."""

    def __init__(
        self,
        path_or_dataset: Dataset | str | os.PathLike[str],
        transform: Callable[[torch.Tensor], Any] | None = None,
        target: str = "class",
        target_transform: Callable[[Any], Any] | None = None,
    ):
        if target not in TARGETS:
            raise ValueError(f"target: got {target!r}, expected one of {list(TARGETS)}")
        self.dataset = (
            path_or_dataset
            if isinstance(path_or_dataset, Dataset)
            else open_dataset(path_or_dataset)
        )
        self.transform = transform
        self.target = target
        self.target_transform = target_transform

    @property
    def classes(self) -> list[dict[str, Any]]:
        return self.dataset.classes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        item = self.dataset[i]
        rgb = item["rgb"]
        if rgb is None:
            raise ValueError(f"sample {item['index']}: the dataset has no rgb images")
        arr = rgb[..., None] if rgb.ndim == 2 else rgb
        image = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float() / 255.0
        if self.target == "class":
            tgt: Any = target_label(item["objects"])
        elif self.target == "detection":
            tgt = _detection_target(item)
        else:
            if item["semantic"] is None:
                raise ValueError(
                    f"sample {item['index']}: target='segmentation' needs the semantic modality"
                )
            tgt = torch.from_numpy(item["semantic"].astype(np.int64))
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
