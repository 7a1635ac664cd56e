"""Box maths in one place: format conversions, pairwise IoU / GIoU, and non-maximum suppression.

Every detector, matcher and metric of synthcv asks this module, so "overlap" means one thing
everywhere. Boxes are torch tensors of shape (N, 4); pairwise functions take ``xyxy`` (corners,
x right and y down) because that is what overlap needs, and the conversions turn the COCO
``xywh`` of :mod:`synthcv.tasks.instances` and a detector's ``cxcywh`` into it. Areas are
continuous (``(x2 - x1) * (y2 - y1)``, no +1), as in COCO.

Degenerate boxes are allowed (a zero-area box is a point or a line): their IoU with anything
is 0, never NaN, so a detector that predicts a collapsed box gets no credit and no crash.

NMS is exact and greedy and its ties are deterministic: boxes are visited by descending score,
equal scores in index order (a stable sort), so the same input always keeps the same boxes.
"""

from __future__ import annotations

from typing import Literal

import torch

# --- conversions ---------------------------------------------------------------------------


def xywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    """COCO ``[x, y, w, h]`` → corners ``[x1, y1, x2, y2]``."""
    x, y, w, h = b.unbind(-1)
    return torch.stack([x, y, x + w, y + h], -1)


def xyxy_to_xywh(b: torch.Tensor) -> torch.Tensor:
    """Corners → COCO ``[x, y, w, h]``."""
    x1, y1, x2, y2 = b.unbind(-1)
    return torch.stack([x1, y1, x2 - x1, y2 - y1], -1)


def cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    """Centre and size (what anchor-free and DETR-style heads regress) → corners."""
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def xyxy_to_cxcywh(b: torch.Tensor) -> torch.Tensor:
    """Corners → centre and size."""
    x1, y1, x2, y2 = b.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], -1)


def xywh_to_cxcywh(b: torch.Tensor) -> torch.Tensor:
    """COCO ``[x, y, w, h]`` → centre and size."""
    x, y, w, h = b.unbind(-1)
    return torch.stack([x + w / 2, y + h / 2, w, h], -1)


def cxcywh_to_xywh(b: torch.Tensor) -> torch.Tensor:
    """Centre and size → COCO ``[x, y, w, h]``."""
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, w, h], -1)


# --- overlap -------------------------------------------------------------------------------


def _float(b: torch.Tensor) -> torch.Tensor:
    b = torch.as_tensor(b)
    return b if b.is_floating_point() else b.float()


def box_area(b: torch.Tensor) -> torch.Tensor:
    """Area of ``xyxy`` boxes; an inverted box (x2 < x1) counts as empty, not negative."""
    b = _float(b)
    return (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)


def _inter_union(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter, union


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of ``xyxy`` boxes, (N, 4) × (M, 4) → (N, M); 0 where the union is empty
    (two degenerate boxes), so collapsed predictions never produce NaN."""
    a, b = _float(a).reshape(-1, 4), _float(b).reshape(-1, 4)
    inter, union = _inter_union(a, b)
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), 0.0)


def generalized_box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise GIoU (Rezatofighi et al. 2019), (N, M) in [-1, 1]: IoU minus the part of the
    smallest enclosing box that neither box covers. Unlike IoU it still ranks disjoint boxes
    (farther apart → lower), which is why losses use it. Where the enclosing box is empty
    (both boxes the same point) it equals the IoU, 0."""
    a, b = _float(a).reshape(-1, 4), _float(b).reshape(-1, 4)
    inter, union = _inter_union(a, b)
    tiny = torch.finfo(union.dtype).tiny
    iou = torch.where(union > 0, inter / union.clamp(min=tiny), 0.0)
    lt = torch.minimum(a[:, None, :2], b[None, :, :2])
    rb = torch.maximum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    hull = wh[..., 0] * wh[..., 1]
    return torch.where(hull > 0, iou - (hull - union) / hull.clamp(min=tiny), iou)


# --- non-maximum suppression -----------------------------------------------------------------


def _check(boxes: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    boxes, scores = _float(boxes).reshape(-1, 4), _float(scores).reshape(-1)
    if len(boxes) != len(scores):
        raise ValueError(f"nms: {len(boxes)} boxes but {len(scores)} scores")
    return boxes, scores


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS on ``xyxy`` boxes: keep the best box, drop every box whose IoU with it is
    *greater than* ``iou_threshold``, repeat. Returns the kept indices (int64) by descending
    score, equal scores in index order. Exact: the loop runs once per kept box, each step
    one vectorised IoU row against the boxes still alive."""
    boxes, scores = _check(boxes, scores)
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order]
    alive = torch.ones(len(b), dtype=torch.bool, device=b.device)
    keep: list[int] = []
    for i in range(len(b)):
        if not alive[i]:
            continue
        keep.append(i)
        rest = alive[i + 1 :]
        if rest.any():
            iou = box_iou(b[i : i + 1], b[i + 1 :])[0]
            alive[i + 1 :] = rest & ~(iou > iou_threshold)
    return order[torch.tensor(keep, dtype=torch.int64, device=b.device)]


def _offset_by_class(boxes: torch.Tensor, idxs: torch.Tensor) -> torch.Tensor:
    """Move each class's boxes to its own region of the plane so boxes of different classes
    never overlap; then one NMS over all boxes is a per-class NMS. The stride is the span
    of all coordinates + 1, which separates classes even with negative coordinates."""
    if len(boxes) == 0:
        return boxes
    lo, hi = boxes.min(), boxes.max()
    stride = hi - lo + 1
    return boxes - lo + (idxs.to(boxes.dtype) * stride)[:, None]


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """:func:`nms` within each class (``idxs``: (N,) class or group per box); boxes of different
    classes never suppress each other. Kept indices by descending score."""
    boxes, scores = _check(boxes, scores)
    idxs = torch.as_tensor(idxs).reshape(-1)
    if len(idxs) != len(boxes):
        raise ValueError(f"batched_nms: {len(boxes)} boxes but {len(idxs)} idxs")
    return nms(_offset_by_class(boxes, idxs), scores, iou_threshold)


def soft_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    sigma: float = 0.5,
    iou_threshold: float = 0.3,
    method: Literal["gaussian", "linear"] = "gaussian",
    score_threshold: float = 0.001,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft-NMS (Bodla et al. 2017): instead of deleting the neighbours of a kept box, decay
    their scores, so a second object hidden behind the first keeps a chance (hard NMS loses it
    and with it recall in crowds).

    Repeatedly take the box with the highest current score M (equal scores: lowest index),
    keep it, and rescore every remaining box b by IoU(M, b):

    - ``"linear"``: ``s * (1 - iou)`` where ``iou > iou_threshold`` (N_t), else unchanged;
    - ``"gaussian"``: ``s * exp(-iou² / sigma)`` for every box (``iou_threshold`` unused).
      As sigma → 0 every overlapping box is decayed to 0 and dropped: hard NMS at
      threshold 0; as sigma → ∞ nothing is decayed.

    Boxes whose score is (or decays) below ``score_threshold`` are dropped. Returns the kept
    indices in the order they were picked (descending decayed score) and their decayed scores.
    """
    if method not in ("gaussian", "linear"):
        raise ValueError(f"soft_nms.method: got {method!r}, expected 'gaussian' or 'linear'")
    if method == "gaussian" and sigma <= 0:
        raise ValueError(f"soft_nms.sigma: got {sigma}, expected > 0")
    boxes, scores = _check(boxes, scores)
    s = scores.clone()
    alive = s >= score_threshold
    keep: list[int] = []
    kept_scores: list[torch.Tensor] = []
    while bool(alive.any()):
        masked = torch.where(alive, s, torch.tensor(-torch.inf, dtype=s.dtype, device=s.device))
        m = int(torch.argmax(masked))  # the first maximal value: ties in index order
        keep.append(m)
        kept_scores.append(s[m])
        alive[m] = False
        if not bool(alive.any()):
            break
        iou = box_iou(boxes[m : m + 1], boxes)[0]
        if method == "linear":
            decay = torch.where(iou > iou_threshold, 1 - iou, torch.ones_like(iou))
        else:
            decay = torch.exp(-(iou * iou) / sigma)
        s = torch.where(alive, s * decay, s)
        alive &= s >= score_threshold
    idx = torch.tensor(keep, dtype=torch.int64, device=boxes.device)
    out = torch.stack(kept_scores) if kept_scores else s.new_zeros(0)
    return idx, out


def batched_soft_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    idxs: torch.Tensor,
    sigma: float = 0.5,
    iou_threshold: float = 0.3,
    method: Literal["gaussian", "linear"] = "gaussian",
    score_threshold: float = 0.001,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`soft_nms` within each class: boxes of other classes have IoU 0 after the class
    offset, so they are never decayed (both decays leave IoU 0 unchanged)."""
    boxes, scores = _check(boxes, scores)
    idxs = torch.as_tensor(idxs).reshape(-1)
    if len(idxs) != len(boxes):
        raise ValueError(f"batched_soft_nms: {len(boxes)} boxes but {len(idxs)} idxs")
    return soft_nms(
        _offset_by_class(boxes, idxs), scores, sigma, iou_threshold, method, score_threshold
    )
