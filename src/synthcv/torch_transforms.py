"""Joint transforms for :class:`synthcv.torch_data.SynthcvTorchDataset`: a flip or crop that
moves boxes, masks and keypoints with the pixels (torchvision's ``transforms=`` contract:
``(input, target) -> (input, target)``).

A transform sees the adapter's input (a CHW tensor, or a dict of them by modality) and its
target (a detection dict, a semantic map, or a class label, which no geometric transform
changes). Boxes are re-derived from the moved masks, so they stay tight around what is still
visible (what COCO boxes are); objects a crop leaves with no pixel are dropped from every
per-object field. Keypoints use the pixel-edge convention of the labels (pixel ``i`` spans
``[i, i + 1)``); one that leaves the image becomes ``(0, 0, 0)``, "not labelled". Randomness
comes from ``generator`` (a ``torch.Generator``) or torch's global RNG, as in torchvision.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

#: Target fields with one row per object (filtered together when a crop drops objects).
PER_OBJECT = ("boxes", "labels", "masks", "instance_ids", "area", "iscrowd", "keypoints")

Transform = Callable[[Any, Any], tuple[Any, Any]]


class Compose:
    """Apply joint transforms in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: Any, target: Any) -> tuple[Any, Any]:
        for t in self.transforms:
            image, target = t(image, target)
        return image, target


def _map_images(image: Any, fn: Callable[[str, torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(image, dict):
        return {m: fn(m, x) for m, x in image.items()}
    return fn("rgb", image)


def _size(image: Any) -> tuple[int, int]:
    x = next(iter(image.values())) if isinstance(image, dict) else image
    return int(x.shape[-2]), int(x.shape[-1])


def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """(N, 4) xyxy pixel-edge boxes of (N, H, W) masks (zeros for an empty mask)."""
    n = masks.shape[0]
    out = torch.zeros((n, 4), dtype=torch.float32)
    for i in range(n):
        ys, xs = torch.nonzero(masks[i], as_tuple=True)
        if len(xs):
            out[i] = torch.tensor(
                [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32
            )
    return out


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``. Normals (camera frame) get their x negated;
    keypoint pairs in ``flip_pairs`` (0-based, e.g. COCO's left/right eyes, shoulders, ...:
    :data:`synthcv.people.keypoints.COCO_FLIP_PAIRS`) swap, so a left wrist stays a left
    wrist."""

    def __init__(
        self,
        p: float = 0.5,
        flip_pairs: Sequence[tuple[int, int]] = (),
        generator: torch.Generator | None = None,
    ) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p, self.flip_pairs, self.generator = p, tuple(flip_pairs), generator

    def __call__(self, image: Any, target: Any) -> tuple[Any, Any]:
        if float(torch.rand(1, generator=self.generator)) >= self.p:
            return image, target
        _, w = _size(image)

        def flip(modality: str, x: torch.Tensor) -> torch.Tensor:
            x = x.flip(-1)
            if modality == "normals":
                x = x.clone()
                x[0] = -x[0]
            return x

        image = _map_images(image, flip)
        if isinstance(target, torch.Tensor) and target.ndim == 2:
            return image, target.flip(-1)
        if not isinstance(target, dict):
            return image, target
        out = dict(target)
        boxes = target["boxes"].clone()
        boxes[:, 0], boxes[:, 2] = w - target["boxes"][:, 2], w - target["boxes"][:, 0]
        out["boxes"] = boxes
        out["masks"] = target["masks"].flip(-1)
        if "keypoints" in target:
            kp = target["keypoints"].clone()
            labelled = kp[..., 2] > 0
            kp[..., 0] = torch.where(labelled, w - kp[..., 0], kp[..., 0])
            for a, b in self.flip_pairs:
                if b < kp.shape[1]:
                    kp[:, [a, b]] = kp[:, [b, a]]
            out["keypoints"] = kp
        return image, out


class RandomCrop:
    """Cut a random ``(height, width)`` window; objects left with no pixel are dropped, boxes
    are re-derived from the cropped masks, ``area`` recounted."""

    def __init__(self, size: int | tuple[int, int], generator: torch.Generator | None = None):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if min(self.size) < 1:
            raise ValueError(f"crop size must be positive, got {self.size}")
        self.generator = generator

    def __call__(self, image: Any, target: Any) -> tuple[Any, Any]:
        h, w = _size(image)
        ch, cw = self.size
        if ch > h or cw > w:
            raise ValueError(f"crop {ch}x{cw} is larger than the image {h}x{w}")
        top = int(torch.randint(0, h - ch + 1, (1,), generator=self.generator))
        left = int(torch.randint(0, w - cw + 1, (1,), generator=self.generator))
        window = (slice(top, top + ch), slice(left, left + cw))
        image = _map_images(image, lambda _m, x: x[..., window[0], window[1]])
        if isinstance(target, torch.Tensor) and target.ndim == 2:
            return image, target[window]
        if not isinstance(target, dict):
            return image, target
        masks = target["masks"][:, window[0], window[1]]
        keep = (masks.flatten(1) > 0).any(1)
        out = {k: (v[keep] if k in PER_OBJECT else v) for k, v in target.items()}
        out["masks"] = masks[keep]
        out["boxes"] = boxes_from_masks(out["masks"])
        out["area"] = out["masks"].flatten(1).sum(1).to(torch.float32)
        if "keypoints" in out:
            kp = out["keypoints"].clone()
            kp[..., 0] -= left
            kp[..., 1] -= top
            inside = (kp[..., 0] >= 0) & (kp[..., 0] < cw) & (kp[..., 1] >= 0) & (kp[..., 1] < ch)
            gone = (kp[..., 2] == 0) | ~inside
            kp[gone] = 0.0
            out["keypoints"] = kp
        return image, out
