"""Geometric jitter for instance tasks: one random warp moves an image and its labels together.

The classification :class:`~synthcv.tasks.train.Jitter` (shift, rotation, scale, shear, elastic)
widens a narrow source such as font glyphs towards handwriting; a detector trained on scenes
needs the same widening, with its boxes, masks and keypoints following the pixels. Masks are
resampled through the very grid the image is, and boxes are re-derived from the warped masks
so they stay tight around the object (what COCO boxes are); without masks, a box becomes the
axis-aligned hull of its warped corners. Keypoints move by the inverse of the warp (the elastic
part to first order, exact to well under a pixel for smooth fields). An object that the warp
pushes mostly out of the frame (under ``min_visible`` of its area left) is dropped, as a crop
would lose it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from synthcv.tasks.instances import Instances
from synthcv.tasks.warps import Jitter, sampling_grid

__all__ = ["flip_instances", "keypoint_flip_pairs", "warp_instances"]


def warp_instances(
    x: torch.Tensor,
    targets: list[Instances],
    jitter: Jitter,
    gen: torch.Generator,
    min_visible: float = 0.25,
) -> tuple[torch.Tensor, list[Instances]]:
    """Warp a batch of float images (N, C, H, W) and their targets (in the same pixels)."""
    n, _, h, w = x.shape
    theta, field = jitter.sample(n, h, w, gen)
    grid = sampling_grid(theta, field, x)
    warped = F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
    out = [
        _warp_one(t, grid[i], theta[i], None if field is None else field[i], h, w, min_visible)
        for i, t in enumerate(targets)
    ]
    return warped, out


def _warp_one(
    t: Instances,
    grid: torch.Tensor,
    theta: torch.Tensor,
    field: torch.Tensor | None,
    h: int,
    w: int,
    min_visible: float,
) -> Instances:
    if not len(t):
        return t
    forward = _forward_affine(theta)
    # How much the warp scales areas (the same in normalised and pixel units).
    det = abs(float(torch.linalg.det(forward[:, :2])))
    masks = None
    if t.masks is not None:
        m = torch.from_numpy(t.masks).to(grid.dtype)[:, None]
        g = grid[None].expand(len(t), -1, -1, -1)
        masks = (F.grid_sample(m, g, align_corners=False)[:, 0] >= 0.5).numpy()
        before = t.masks.reshape(len(t), -1).sum(1).astype(np.float64)
        after = masks.reshape(len(t), -1).sum(1).astype(np.float64)
        keep = (after > 0) & (after >= min_visible * before * det)
        boxes = _mask_boxes(masks)
    else:
        boxes, keep = _warp_boxes(t.boxes, forward, field, h, w, min_visible)
    keypoints = None
    if t.keypoints is not None:
        keypoints = _warp_points(t.keypoints, forward, field, h, w)
    idx = np.flatnonzero(keep)
    return Instances(
        boxes[idx],
        t.labels[idx],
        None if masks is None else masks[idx],
        None if keypoints is None else keypoints[idx],
        {k: np.asarray(v)[idx] for k, v in t.factors.items()},
    )


def _forward_affine(theta: torch.Tensor) -> torch.Tensor:
    """theta maps output → input grid coordinates; its inverse maps input → output (2, 3)."""
    a = theta[:, :2].double()
    inv = torch.linalg.inv(a)
    return torch.cat([inv, -(inv @ theta[:, 2:].double())], 1)


def _to_output(
    px: np.ndarray, forward: torch.Tensor, field: torch.Tensor | None, h: int, w: int
) -> np.ndarray:
    """Input pixel coordinates (M, 2) → output pixel coordinates (align_corners=False)."""
    if not len(px):
        return px.astype(np.float64)
    size = np.array([w, h], np.float64)
    g = torch.from_numpy(2 * px / size - 1)  # pixel edge 0 → -1, w → 1
    out = g @ forward[:, :2].T + forward[:, 2]
    if field is not None:
        # grid(p) = A p + t + d(p): undo d to first order, at the affine estimate of p.
        pix = ((out.numpy() + 1) * size / 2 - 0.5).round().astype(np.int64)
        pix = np.clip(pix, 0, [w - 1, h - 1])
        d = field[pix[:, 1], pix[:, 0]].double()
        out = out - d @ forward[:, :2].T
    return (out.numpy() + 1) * size / 2


def _warp_points(
    kps: np.ndarray, forward: torch.Tensor, field: torch.Tensor | None, h: int, w: int
) -> np.ndarray:
    out = kps.copy()
    flat = kps[..., :2].reshape(-1, 2).astype(np.float64)
    moved = _to_output(flat, forward, field, h, w).reshape((*kps.shape[:-1], 2))
    out[..., :2] = moved
    inside = (moved[..., 0] >= 0) & (moved[..., 0] < w) & (moved[..., 1] >= 0) & (moved[..., 1] < h)
    out[..., 2] = np.where(inside, kps[..., 2], 0)
    out[..., :2] = np.where(out[..., 2:] > 0, out[..., :2], 0)
    return out.astype(np.float32)


def _warp_boxes(
    boxes: np.ndarray,
    forward: torch.Tensor,
    field: torch.Tensor | None,
    h: int,
    w: int,
    min_visible: float,
) -> tuple[np.ndarray, np.ndarray]:
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    corners = np.stack([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], 0)  # (4, 2, M)
    pts = corners.transpose(2, 0, 1).reshape(-1, 2).astype(np.float64)
    moved = _to_output(pts, forward, field, h, w).reshape(len(boxes), 4, 2)
    lo, hi = moved.min(1), moved.max(1)
    full = np.prod(hi - lo, 1)
    lo_c = np.clip(lo, 0, [w, h])
    hi_c = np.clip(hi, 0, [w, h])
    wh = np.clip(hi_c - lo_c, 0, None)
    keep = (np.prod(wh, 1) > 0) & (np.prod(wh, 1) >= min_visible * full)
    return np.concatenate([lo_c, wh], 1).astype(np.float32), keep


def _mask_boxes(masks: np.ndarray) -> np.ndarray:
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        ys, xs = np.nonzero(m)
        if len(xs):
            boxes[i] = [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
    return boxes


def keypoint_flip_pairs(names: list[str]) -> list[tuple[int, int]]:
    """Index pairs (0-based) of keypoints a horizontal flip exchanges, found by name: every
    name with ``left`` whose ``right`` twin exists (``left_eye`` ↔ ``right_eye``: COCO's
    persons). Keypoints without such a twin keep their index."""
    index = {n: i for i, n in enumerate(names)}
    pairs = []
    for n, i in index.items():
        twin = n.replace("left", "right") if "left" in n else None
        if twin is not None and twin in index:
            pairs.append((i, index[twin]))
    return pairs


def flip_instances(
    x: torch.Tensor,
    targets: list[Instances],
    p: float,
    flip_pairs: dict[int, list[tuple[int, int]]],
    gen: torch.Generator,
) -> tuple[torch.Tensor, list[Instances]]:
    """Mirror each image of a batch (N, C, H, W) left-right with probability ``p``, with its
    labels: boxes and masks mirror, labelled keypoints mirror and exchange their left/right
    twins (``flip_pairs``: category index → pairs), so a left wrist stays a left wrist. The
    standard pose augmentation; it doubles the views of a small set without a warp's
    resampling. Only for categories that are mirror-symmetric up to those pairs (a person,
    not a box whose corners are numbered in its own frame)."""
    n, _, _, w = x.shape
    chosen = torch.rand(n, generator=gen) < p
    if not bool(chosen.any()):
        return x, targets
    x = torch.where(chosen[:, None, None, None], x.flip(-1), x)
    out = list(targets)
    for i in torch.nonzero(chosen).flatten().tolist():
        t = targets[i]
        boxes = t.boxes.copy()
        boxes[:, 0] = w - t.boxes[:, 0] - t.boxes[:, 2]
        kps = None
        if t.keypoints is not None:
            kps = t.keypoints.copy()
            labelled = kps[..., 2] > 0
            kps[..., 0] = np.where(labelled, w - kps[..., 0], kps[..., 0])
            for j, label in enumerate(t.labels.tolist()):
                for a, b in flip_pairs.get(int(label), []):
                    if b < kps.shape[1]:
                        kps[j, [a, b]] = kps[j, [b, a]]
        masks = None if t.masks is None else t.masks[:, :, ::-1].copy()
        out[i] = Instances(boxes, t.labels, masks, kps, t.factors)
    return x, out
