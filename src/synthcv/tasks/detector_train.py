"""Seeded training, prediction and COCO evaluation for the dense detector.

Mirrors :mod:`synthcv.tasks.train` (classification): batches come from one or more sources
through the same :class:`~synthcv.tasks.sampling.MixtureBatchSampler`, so real-only,
synthetic-only and mixed recipes share one path, and a run is a pure function of (data,
config, seed). Images are letterboxed to a square ``input_size`` (scaled to fit, padded right
and bottom), and predictions are mapped back to each image's own pixels before evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from synthcv.tasks.detector import DenseDetector
from synthcv.tasks.detector_targets import TargetConfig, collate, decode, encode
from synthcv.tasks.instance_warp import flip_instances, keypoint_flip_pairs, warp_instances
from synthcv.tasks.instances import Instances, InstanceSet, Predictions
from synthcv.tasks.loop import Checkpoint, Schedule, StepResult, run_epochs
from synthcv.tasks.warps import Jitter


@dataclass(frozen=True)
class Photometric:
    """Per-image brightness, contrast, gamma and sensor noise, drawn per batch: the cheap,
    label-preserving widening that narrows a renderer's gap to a camera."""

    brightness: float = 0.2
    contrast: float = 0.3
    gamma: float = 0.3
    noise: float = 0.03
    blur: float = 1.0  # Gaussian blur sigma drawn in [0, blur] px per image (optics, resizing)
    grayscale: float = 0.0  # probability of dropping colour

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n = x.shape[0]

        def u(a: float) -> torch.Tensor:
            return (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * a

        mean = x.mean((1, 2, 3), keepdim=True)
        x = (x - mean) * (1 + u(self.contrast)) + mean + u(self.brightness)
        x = x.clamp(0, 1) ** torch.exp(u(self.gamma))
        if self.grayscale > 0 and x.shape[1] == 3:
            gray = x.mean(1, keepdim=True).expand_as(x)
            drop = torch.rand(n, 1, 1, 1, generator=gen) < self.grayscale
            x = torch.where(drop, gray, x)
        if self.blur > 0:
            x = _blur(x, torch.rand(n, generator=gen) * self.blur)
        if self.noise > 0:
            x = x + torch.randn(x.shape, generator=gen) * self.noise * torch.rand(
                n, 1, 1, 1, generator=gen
            )
        return x.clamp(0, 1)


def _blur(x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with one sigma per image (sigma < 0.2 px leaves it as is)."""
    out = x.clone()
    for i, sigma in enumerate(sigmas.tolist()):
        if sigma < 0.2:
            continue
        r = max(1, round(3 * sigma))
        t = torch.arange(-r, r + 1, dtype=x.dtype)
        k = torch.exp(-0.5 * (t / sigma) ** 2)
        k = k / k.sum()
        c = x.shape[1]
        img = F.pad(x[i : i + 1], (r, r, r, r), mode="replicate")
        img = F.conv2d(img, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
        out[i : i + 1] = F.conv2d(img, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return out


@dataclass
class DetFitConfig:
    epochs: int = 10
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    steps_per_epoch: int | None = None
    photometric: Photometric | None = Photometric()
    geometric: Jitter | None = None  # warps moving boxes, masks and keypoints with the pixels
    flip: float = 0.0  # probability of a left-right mirror (keypoints swap left/right twins)
    loss_weights: tuple[tuple[str, float], ...] = ()
    #: BatchNorm in inference mode while the rest trains (:func:`run_epochs`): for fine-tunes
    freeze_batchnorm: bool = False


#: Loss weights (CenterNet's for heatmap / offset / size; the rest balanced by hand on a
#: validation split of synthetic digit scenes, never on a test set).
DEFAULT_WEIGHTS = {
    "heatmap": 1.0,
    "offset": 1.0,
    "size": 1.0,
    "kp_offset": 0.1,
    "kp_heatmap": 1.0,
    "semantic": 1.0,
    "centre_vec": 0.05,
}


@dataclass
class Letterboxed:
    """A source resized for the model: uint8 (N, C, S, S) images, targets in model pixels, and
    each image's scale (model px per source px) to map predictions back."""

    images: torch.Tensor
    targets: list[Instances]
    scales: np.ndarray


def letterbox(data: InstanceSet, size: int, channels: int = 3) -> Letterboxed:
    images = torch.zeros(len(data), channels, size, size, dtype=torch.uint8)
    targets, scales = [], np.zeros(len(data), np.float32)
    for i, (img, t) in enumerate(zip(data.images, data.targets, strict=True)):
        x = torch.from_numpy(np.require(img, requirements=["C", "W"]))
        x = x[:, :, None] if x.ndim == 2 else x
        x = x.permute(2, 0, 1)
        if x.shape[0] != channels:
            x = x[:1].expand(3, -1, -1) if channels == 3 else x.float().mean(0, True).byte()
        h, w = x.shape[1:]
        s = size / max(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        if (nh, nw) != (h, w):
            x = (
                F.interpolate(
                    x[None].float(),
                    size=(nh, nw),
                    mode="bilinear",
                    antialias=True,
                    align_corners=False,
                )[0]
                .round()
                .clamp(0, 255)
                .byte()
            )
        images[i, :, :nh, :nw] = x
        scales[i] = s
        targets.append(_scale_target(t, s, nh, nw, size))
    return Letterboxed(images, targets, scales)


def _scale_target(t: Instances, s: float, nh: int, nw: int, size: int) -> Instances:
    masks = None
    if t.masks is not None:
        masks = np.zeros((len(t), size, size), bool)
        if len(t):
            m = torch.from_numpy(t.masks.astype(np.float32))[None]
            if m.shape[-2:] != (nh, nw):
                m = F.interpolate(m, size=(nh, nw), mode="bilinear", align_corners=False)
            masks[:, :nh, :nw] = (m[0] >= 0.5).numpy()
    kps = None
    if t.keypoints is not None:
        kps = t.keypoints.copy()
        kps[..., :2] *= s
    return Instances(t.boxes * s, t.labels, masks, kps, t.factors)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (α=2, β=4) over Gaussian-splatted heatmaps."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg_w = (1 - target) ** 4
    pos_loss = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_loss = -(torch.log(1 - p) * p**2 * neg_w * (1 - pos)).sum()
    return (pos_loss + neg_loss) / num.clamp_min(1)


def _gather_rows(feat: torch.Tensor, ind: torch.Tensor) -> torch.Tensor:
    n, d, h, w = feat.shape
    return (
        feat.view(n, d, h * w)
        .gather(2, ind.unsqueeze(1).expand(n, d, ind.shape[1]))
        .permute(0, 2, 1)
    )


def losses(out: dict[str, torch.Tensor], tgt: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each head's loss (unweighted); the heads absent from ``out`` are skipped."""
    result: dict[str, torch.Tensor] = {}
    valid = tgt["valid"]
    num = valid.sum()
    if "heatmap" in out:
        result["heatmap"] = focal_loss(out["heatmap"], tgt["heatmap"], num)
        m = valid.unsqueeze(-1)
        off = _gather_rows(out["offset"], tgt["ind"])
        result["offset"] = (F.l1_loss(off, tgt["offset"], reduction="none") * m).sum() / (
            2 * num.clamp_min(1)
        )
        size = _gather_rows(out["size"], tgt["ind"]).clamp_min(1e-3)
        log_err = (torch.log(size) - torch.log(tgt["size"].clamp_min(1e-3))).abs()
        result["size"] = (log_err * m).sum() / (2 * num.clamp_min(1))
    if "kp_offset" in out:
        n, k2 = out["kp_offset"].shape[:2]
        reg = _gather_rows(out["kp_offset"], tgt["ind"]).view(n, -1, k2 // 2, 2)
        kv = tgt["kp_valid"].unsqueeze(-1)
        result["kp_offset"] = (F.l1_loss(reg, tgt["kp_offset"], reduction="none") * kv).sum() / (
            2 * tgt["kp_valid"].sum().clamp_min(1)
        )
        result["kp_heatmap"] = focal_loss(
            out["kp_heatmap"], tgt["kp_heatmap"], tgt["kp_heatmap"].eq(1).sum()
        )
    if "semantic" in out:
        result["semantic"] = F.cross_entropy(out["semantic"], tgt["semantic"])
    if "centre_vec" in out:
        cv = tgt["centre_valid"].unsqueeze(1)
        err = F.l1_loss(out["centre_vec"], tgt["centre_vec"], reduction="none") * cv
        result["centre_vec"] = err.sum() / (2 * cv.sum().clamp_min(1))
    return result


def target_config(model: DenseDetector) -> TargetConfig:
    return TargetConfig(model.num_classes, model.num_keypoints, model.stride)


def fit(
    model: DenseDetector,
    sources: Sequence[InstanceSet],
    ratios: Sequence[float] | None,
    cfg: DetFitConfig,
    seed: int,
    eval_sets: dict[str, InstanceSet] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
    prepared: dict[int, Letterboxed] | None = None,
    checkpoint: Checkpoint | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place; one metrics dict per epoch (train losses + COCO metrics of
    every eval set as ``NAME.bbox.AP50`` etc.), epoch 0 included when evaluating. With
    ``checkpoint`` the stage resumes from and saves to that file (:mod:`synthcv.tasks.loop`)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    size, channels = model.input_size, model.in_channels
    cache = {} if prepared is None else prepared
    boxed = []
    for s in sources:
        if id(s) not in cache:
            cache[id(s)] = letterbox(s, size, channels)
        boxed.append(cache[id(s)])
    tcfg = target_config(model)
    flip_pairs = {
        c: keypoint_flip_pairs(model.keypoint_names.get(name, []))
        for c, name in enumerate(model.categories)
    }
    sizes = [len(s) for s in sources]
    weights = {**DEFAULT_WEIGHTS, **dict(cfg.loss_weights)}

    def step(batch: list[tuple[int, int]]) -> StepResult:
        x = torch.stack([boxed[src].images[idx] for src, idx in batch]).float() / 255.0
        targets = [boxed[src].targets[idx] for src, idx in batch]
        if cfg.flip > 0:
            x, targets = flip_instances(x, targets, cfg.flip, flip_pairs, gen)
        if cfg.geometric is not None:
            x, targets = warp_instances(x, targets, cfg.geometric, gen)
        tg = [encode(t, size, size, tcfg) for t in targets]
        if cfg.photometric is not None:
            x = cfg.photometric(x, gen)
        parts = losses(model(x), collate(tg))
        loss = sum((weights[k] * v for k, v in parts.items()), torch.zeros(()))
        report = {k: float(v.detach()) for k, v in parts.items()}
        report["loss"] = float(loss.detach())
        return loss, report, len(batch)

    def evaluate_sets() -> dict[str, float]:
        return {
            f"{name}.{k}": v
            for name, ev in (eval_sets or {}).items()
            for k, v in evaluate(model, ev).items()
        }

    schedule = Schedule(
        cfg.epochs,
        cfg.steps_per_epoch or max(1, math.ceil(sum(sizes) / cfg.batch_size)),
        cfg.batch_size,
        cfg.lr,
        cfg.weight_decay,
        clip_grad=10.0,
    )
    return run_epochs(
        model,
        sizes,
        [float(v) for v in (ratios or sizes)],
        schedule,
        seed,
        step,
        evaluate_sets if eval_sets else None,
        on_epoch,
        progress,
        "training detector",
        generators=[gen],
        checkpoint=checkpoint,
        freeze_batchnorm=cfg.freeze_batchnorm,
    )


@torch.no_grad()
def predict(
    model: DenseDetector,
    data: InstanceSet,
    batch_size: int = 32,
    score_threshold: float = 0.05,
    nms: str = "none",
    topk: int = 100,
    prepared: Letterboxed | None = None,
) -> list[Predictions]:
    """Predictions for every image of ``data`` in the image's own pixels."""
    model.eval()
    lb = prepared or letterbox(data, model.input_size, model.in_channels)
    preds: list[Predictions] = []
    for i in range(0, len(data), batch_size):
        x = lb.images[i : i + batch_size].float() / 255.0
        out = model(x)
        for j, p in enumerate(
            decode(out, model.stride, topk, score_threshold, nms, image_size=None)
        ):
            preds.append(to_image_pixels(p, float(lb.scales[i + j]), data.images[i + j].shape[:2]))
    return preds


def to_image_pixels(p: Predictions, s: float, shape: tuple[int, ...]) -> Predictions:
    """Predictions on a letterboxed image (scale ``s``) in the original image's pixels, boxes
    clipped to it."""
    h, w = int(shape[0]), int(shape[1])
    boxes = p.boxes / s
    x1, y1 = np.clip(boxes[:, 0], 0, w), np.clip(boxes[:, 1], 0, h)
    x2 = np.clip(boxes[:, 0] + boxes[:, 2], 0, w)
    y2 = np.clip(boxes[:, 1] + boxes[:, 3], 0, h)
    out = replace(p, boxes=np.stack([x1, y1, x2 - x1, y2 - y1], 1))
    if p.keypoints is not None:
        kp = p.keypoints.copy()
        kp[..., :2] /= s
        out.keypoints = kp
    if p.masks is not None:
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        m = torch.from_numpy(p.masks[:, :nh, :nw].astype(np.float32))[None]
        if len(p) and (nh, nw) != (h, w):
            m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
        out.masks = (m[0] >= 0.5).numpy() if len(p) else np.zeros((0, h, w), bool)
    return out


def iou_types(model: DenseDetector) -> list[str]:
    kinds = []
    if hasattr(model, "heatmap"):
        kinds.append("bbox")
    if "instance_segmentation" in model.tasks:
        kinds.append("segm")
    if model.num_keypoints:
        kinds.append("keypoints")
    return kinds


def evaluate(
    model: DenseDetector,
    data: InstanceSet,
    preds: list[Predictions] | None = None,
    kpt_sigmas: Sequence[float] | None = None,
    full: bool = False,
) -> dict[str, Any]:
    """COCO metrics of ``model`` on ``data`` as flat ``bbox.AP``, ``segm.AP50``,
    ``keypoints.AP``, ``semantic.mIoU`` … (``full`` also returns the per-class and PR-curve
    detail under ``detail`` and the predictions under ``predictions``)."""
    from synthcv.tasks.evaluation import coco_evaluate, semantic_iou, semantic_maps

    preds = predict(model, data) if preds is None else preds
    flat: dict[str, Any] = {}
    kinds = iou_types(model)
    detail: dict[str, Any] = {}
    if kinds:
        detail = coco_evaluate(data, preds, iou_types=kinds, kpt_sigmas=kpt_sigmas)
        for kind in kinds:
            for k, v in detail[kind].items():
                if isinstance(v, int | float):
                    flat[f"{kind}.{k}"] = float(v)
    if "semantic_segmentation" in model.tasks:
        sem = semantic_maps_predicted(model, data)
        r = semantic_iou(semantic_maps(data), sem, model.num_classes + 1)
        flat["semantic.mIoU"] = float(r["mIoU"])
        detail["semantic"] = r
    if full:
        flat["detail"] = detail
        flat["predictions"] = preds
    return flat


@torch.no_grad()
def semantic_maps_predicted(
    model: DenseDetector, data: InstanceSet, batch_size: int = 32
) -> list[np.ndarray]:
    """Per-pixel class maps (0 background, class + 1) in each image's own pixels."""
    model.eval()
    lb = letterbox(data, model.input_size, model.in_channels)
    maps: list[np.ndarray] = []
    for i in range(0, len(data), batch_size):
        out = model(lb.images[i : i + batch_size].float() / 255.0)["semantic"]
        for j in range(out.shape[0]):
            h, w = data.images[i + j].shape[:2]
            s = float(lb.scales[i + j])
            nh, nw = max(1, round(h * s)), max(1, round(w * s))
            logits = out[j : j + 1, :, :nh, :nw]
            if (nh, nw) != (h, w):
                logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            maps.append(logits[0].argmax(0).numpy().astype(np.int64))
    return maps
