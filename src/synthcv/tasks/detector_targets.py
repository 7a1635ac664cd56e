"""Training targets for the dense detector, and the decoding that inverts them.

The detector is CenterNet-style (Zhou et al. 2019, "Objects as Points"): an object is the peak
of its class's heatmap at the box centre, on a grid ``stride`` times coarser than the image.
At the peak cell the head also regresses the sub-cell offset of the true centre, the box size
and, for keypoints, each keypoint's offset from the centre; a keypoint heatmap per keypoint
type refines those guesses. Instance masks follow Panoptic-DeepLab (Cheng et al. 2020): a
semantic map says *what* each pixel is, and a per-pixel vector to its object's centre says
*which* object — so touching digits of one class still get separate masks.

Encoding is numpy per image (runs in the data path); decoding is torch per batch. Decoding the
encoded targets returns the boxes and keypoints (sub-pixel): tests hold that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from synthcv.tasks.instances import Instances, Predictions


@dataclass(frozen=True)
class TargetConfig:
    num_classes: int
    num_keypoints: int = 0
    stride: int = 4
    max_objects: int = 64
    min_overlap: float = 0.7  # CenterNet's Gaussian radius: a peak this close still overlaps


def gaussian_radius(h: float, w: float, min_overlap: float = 0.7) -> float:
    """Largest centre error at which a box of size (h, w) still has IoU ≥ ``min_overlap``
    with the truth (CenterNet's three-case bound, taking the tightest)."""
    a1, b1 = 1.0, h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2 = 4.0, 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + np.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3 = 4 * min_overlap, -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + np.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return float(min(r1, r2, r3))


def draw_gaussian(heat: np.ndarray, cx: float, cy: float, radius: float) -> None:
    """Splat exp(-d²/2σ²), σ = (2r+1)/6, at integer cell (cx, cy) into ``heat`` by max."""
    r = max(0, int(radius))
    sigma = (2 * r + 1) / 6
    ys, xs = np.ogrid[-r : r + 1, -r : r + 1]
    g = np.exp(-(xs * xs + ys * ys) / (2 * sigma * sigma))
    h, w = heat.shape
    x, y = int(cx), int(cy)
    left, right = min(x, r), min(w - x, r + 1)
    top, bottom = min(y, r), min(h - y, r + 1)
    if right <= 0 or bottom <= 0 or left < 0 or top < 0:
        return
    patch = heat[y - top : y + bottom, x - left : x + right]
    np.maximum(patch, g[r - top : r + bottom, r - left : r + right], out=patch)


def encode(target: Instances, height: int, width: int, cfg: TargetConfig) -> dict[str, np.ndarray]:
    """Dense targets for one image of (height, width) pixels (multiples of ``cfg.stride``).

    Returns heatmap (C, h, w), per-object arrays padded to ``max_objects`` (index into the
    h·w grid, offset, size in pixels, mask of valid rows, keypoint offsets in pixels and their
    mask), keypoint heatmaps (K, h, w), and full-resolution semantic class map (0 background,
    class + 1) and centre vectors (2, H, W) in pixels with their foreground mask.
    """
    s = cfg.stride
    oh, ow = height // s, width // s
    k = cfg.num_keypoints
    heat = np.zeros((cfg.num_classes, oh, ow), np.float32)
    kp_heat = np.zeros((k, oh, ow), np.float32)
    n = cfg.max_objects
    ind = np.zeros(n, np.int64)
    off = np.zeros((n, 2), np.float32)
    size = np.zeros((n, 2), np.float32)
    valid = np.zeros(n, np.float32)
    kp_off = np.zeros((n, k, 2), np.float32)
    kp_valid = np.zeros((n, k), np.float32)
    semantic = np.zeros((height, width), np.int64)
    centre_vec = np.zeros((2, height, width), np.float32)
    centre_valid = np.zeros((height, width), np.float32)
    # Larger objects first, so a small object lying on a large one wins its pixels.
    order = np.argsort(-(target.boxes[:, 2] * target.boxes[:, 3]), kind="stable")
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    j = 0
    for i in order:
        x, y, w, h = (float(v) for v in target.boxes[i])
        if w <= 0 or h <= 0:
            continue
        cx, cy = (x + w / 2) / s, (y + h / 2) / s
        ix, iy = min(int(cx), ow - 1), min(int(cy), oh - 1)
        c = int(target.labels[i])
        draw_gaussian(heat[c], ix, iy, gaussian_radius(h / s, w / s, cfg.min_overlap))
        if target.masks is not None:
            m = target.masks[i]
            semantic[m] = c + 1
            centre_vec[0][m] = (x + w / 2) - xx[m]
            centre_vec[1][m] = (y + h / 2) - yy[m]
            centre_valid[m] = 1.0
        if j >= n:
            continue  # beyond max_objects: still on the heatmap and masks, no regression row
        ind[j] = iy * ow + ix
        off[j] = (cx - ix, cy - iy)
        size[j] = (w, h)
        valid[j] = 1.0
        if k and target.keypoints is not None:
            kps = target.keypoints[i]
            for q in range(min(k, len(kps))):
                if kps[q, 2] <= 0:
                    continue
                kp_off[j, q] = (kps[q, 0] - (x + w / 2), kps[q, 1] - (y + h / 2))
                kp_valid[j, q] = 1.0
                kx, ky = kps[q, 0] / s, kps[q, 1] / s
                if 0 <= kx < ow and 0 <= ky < oh:
                    draw_gaussian(
                        kp_heat[q],
                        int(kx),
                        int(ky),
                        max(1.0, gaussian_radius(h / s, w / s, cfg.min_overlap) / 2),
                    )
        j += 1
    return {
        "heatmap": heat,
        "ind": ind,
        "offset": off,
        "size": size,
        "valid": valid,
        "kp_offset": kp_off,
        "kp_valid": kp_valid,
        "kp_heatmap": kp_heat,
        "semantic": semantic,
        "centre_vec": centre_vec,
        "centre_valid": centre_valid,
    }


def collate(targets: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {key: torch.from_numpy(np.stack([t[key] for t in targets])) for key in targets[0]}


def _peaks(heat: torch.Tensor, topk: int) -> tuple[torch.Tensor, ...]:
    """Top-k local maxima (3×3) over all classes: scores, classes, ys, xs — each (N, k)."""
    n, c, h, w = heat.shape
    keep = (F.max_pool2d(heat, 3, stride=1, padding=1) == heat).float()
    scores, idx = (heat * keep).view(n, -1).topk(min(topk, c * h * w))
    classes = torch.div(idx, h * w, rounding_mode="floor")
    cell = idx % (h * w)
    return scores, classes, torch.div(cell, w, rounding_mode="floor"), cell % w


def _gather(feat: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """feat (N, D, h, w) at cells (N, k) → (N, k, D)."""
    n, d, h, w = feat.shape
    idx = (ys * w + xs).unsqueeze(1).expand(n, d, ys.shape[1])
    return feat.view(n, d, h * w).gather(2, idx).permute(0, 2, 1)


def decode(
    out: dict[str, torch.Tensor],
    stride: int = 4,
    topk: int = 100,
    score_threshold: float = 0.05,
    nms: str = "none",
    nms_iou: float = 0.5,
    image_size: tuple[int, int] | None = None,
) -> list[Predictions]:
    """Head outputs (heatmap as probabilities) → one :class:`Predictions` per image, in input
    pixels. Peaks are already non-maximum-suppressed within 3×3 cells; ``nms`` ("hard" or
    "soft") additionally suppresses overlapping boxes of one class (Soft-NMS decays their
    scores instead of dropping them). Masks need ``semantic`` and ``centre_vec`` outputs."""
    heat = out["heatmap"]
    scores, classes, ys, xs = _peaks(heat, topk)
    off = _gather(out["offset"], ys, xs)
    size = _gather(out["size"], ys, xs).clamp_min(0)
    cx = (xs.float() + off[..., 0]) * stride
    cy = (ys.float() + off[..., 1]) * stride
    boxes = torch.stack(
        [cx - size[..., 0] / 2, cy - size[..., 1] / 2, size[..., 0], size[..., 1]], -1
    )
    kps = None
    if "kp_offset" in out and out["kp_offset"].shape[1]:
        kps = _keypoints(out, ys, xs, cx, cy, size, stride)
    preds = []
    for b in range(heat.shape[0]):
        keep = scores[b] >= score_threshold
        bx, sc, cl = boxes[b][keep], scores[b][keep], classes[b][keep]
        kp_b = kps[b][keep] if kps is not None else None
        if nms != "none" and len(sc):
            bx, sc, cl, kp_b = _suppress(bx, sc, cl, kp_b, nms, nms_iou, score_threshold)
        p = Predictions(bx.numpy(), sc.numpy(), cl.numpy())
        if kp_b is not None:
            p.keypoints = kp_b.numpy()
        preds.append(p)
    if "semantic" in out and "centre_vec" in out:
        for b, p in enumerate(preds):
            p.masks = instance_masks(out["semantic"][b], out["centre_vec"][b], p)
    if image_size is not None:
        h, w = image_size
        for p in preds:
            _clip(p, w, h)
    return preds


def _keypoints(out, ys, xs, cx, cy, size, stride):
    """Keypoints regressed from the centre, snapped to the nearest confident keypoint-heatmap
    peak when that peak is more than a cell but less than a quarter box away (CenterNet's
    refinement: the heatmap fixes gross regression errors, the regression keeps sub-cell
    precision); confidence = the heatmap at the final place."""
    n, k2, h, w = out["kp_offset"].shape
    k = k2 // 2
    reg = _gather(out["kp_offset"], ys, xs).view(n, -1, k, 2)
    kx = cx.unsqueeze(-1) + reg[..., 0]
    ky = cy.unsqueeze(-1) + reg[..., 1]
    result = torch.zeros(n, ys.shape[1], k, 3)
    kp_heat = out.get("kp_heatmap")
    for b in range(n):
        for q in range(k):
            x, y = kx[b, :, q], ky[b, :, q]
            conf = torch.full_like(x, 0.5)
            if kp_heat is not None:
                hm = kp_heat[b, q]
                flat = hm.flatten()
                peak = (F.max_pool2d(hm[None, None], 3, 1, 1)[0, 0] == hm) & (hm > 0.1)
                py, px = torch.nonzero(peak, as_tuple=True)
                gx = (px.float() + 0.5) * stride
                gy = (py.float() + 0.5) * stride
                gxi = (x / stride).long().clamp(0, w - 1)
                gyi = (y / stride).long().clamp(0, h - 1)
                conf = flat[gyi * w + gxi]
                if len(px):
                    d = (x[:, None] - gx[None]) ** 2 + (y[:, None] - gy[None]) ** 2
                    dmin, arg = d.min(1)
                    reach = (size[b].max(1).values / 4).clamp_min(stride) ** 2
                    # within a cell the regression is finer than the heatmap's grid: keep it
                    snap = (dmin <= reach) & (dmin > stride**2)
                    x = torch.where(snap, gx[arg], x)
                    y = torch.where(snap, gy[arg], y)
                    conf = torch.where(snap, hm[py[arg], px[arg]], conf)
            result[b, :, q, 0], result[b, :, q, 1], result[b, :, q, 2] = x, y, conf
    return result


def _suppress(bx, sc, cl, kp, method, iou, score_threshold):
    from synthcv.tasks.boxes import batched_nms, batched_soft_nms, xywh_to_xyxy

    xyxy = xywh_to_xyxy(bx)
    if method == "hard":
        keep = batched_nms(xyxy, sc, cl, iou)
        new_scores = sc[keep]
    elif method == "soft":
        keep, new_scores = batched_soft_nms(xyxy, sc, cl, score_threshold=score_threshold)
    else:
        raise ValueError(f"nms: got {method!r}, expected 'none', 'hard' or 'soft'")
    return bx[keep], new_scores, cl[keep], (kp[keep] if kp is not None else None)


def instance_masks(
    semantic: torch.Tensor,
    centre_vec: torch.Tensor,
    p: Predictions,
    confident: float = 0.3,
) -> np.ndarray:
    """Panoptic-DeepLab grouping, one mask per detection: a foreground pixel (semantic
    background below 1/2) inside the detection's box (grown by a tenth) belongs to it when the
    pixel's centre vector points closer to this detection's centre than to any *other
    confident* detection's (score ≥ ``confident``). The detection decides the class, the
    pixels only decide "object or not" — a per-pixel digit classifier splits one stroke among
    several classes, a detector sees the whole digit. Confident detections so split touching
    objects between them, and a weak duplicate gets its own mask without taking pixels from
    the object it repeats (as box-based detectors give every box a mask). Full-resolution
    inputs: semantic (C+1, H, W) logits, centre_vec (2, H, W) pixels."""
    _, h, w = semantic.shape
    masks = np.zeros((len(p), h, w), bool)
    if not len(p):
        return masks
    foreground = (torch.softmax(semantic, 0)[0] < 0.5).numpy()
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    px = xx + centre_vec[0].numpy()
    py = yy + centre_vec[1].numpy()
    centres = p.boxes[:, :2] + p.boxes[:, 2:] / 2
    strong = np.flatnonzero(p.scores >= confident)
    for d in range(len(p)):
        x, y, bw, bh = p.boxes[d]
        x0, y0 = max(0, int(x - 0.1 * bw)), max(0, int(y - 0.1 * bh))
        x1, y1 = min(w, int(np.ceil(x + 1.1 * bw))), min(h, int(np.ceil(y + 1.1 * bh)))
        if x1 <= x0 or y1 <= y0:
            continue
        fg = foreground[y0:y1, x0:x1]
        if not fg.any():
            continue
        qx, qy = px[y0:y1, x0:x1][fg], py[y0:y1, x0:x1][fg]
        own = (qx - centres[d, 0]) ** 2 + (qy - centres[d, 1]) ** 2
        rivals = strong[strong != d]
        keep = np.ones(len(qx), bool)
        if len(rivals):
            other = (qx[:, None] - centres[rivals, 0]) ** 2 + (
                qy[:, None] - centres[rivals, 1]
            ) ** 2
            keep = own <= other.min(1)
        ys, xs = np.nonzero(fg)
        masks[d, ys[keep] + y0, xs[keep] + x0] = True
    return masks


def _clip(p: Predictions, width: int, height: int) -> None:
    x1 = np.clip(p.boxes[:, 0], 0, width)
    y1 = np.clip(p.boxes[:, 1], 0, height)
    x2 = np.clip(p.boxes[:, 0] + p.boxes[:, 2], 0, width)
    y2 = np.clip(p.boxes[:, 1] + p.boxes[:, 3], 0, height)
    p.boxes = np.stack([x1, y1, x2 - x1, y2 - y1], 1).astype(np.float32)
