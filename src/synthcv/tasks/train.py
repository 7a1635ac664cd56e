"""Seeded train and evaluation loops for classification.

Training draws batches from one or more :class:`ArraySet` sources through a
:class:`MixtureBatchSampler` (a single source is a mixture of one), so real-only, synthetic-only
and mixed recipes share one code path. A run is a pure function of (data, config, seed): the
model init, batch order and jitter draws all come from the seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthcv.tasks.data import ArraySet
from synthcv.tasks.loop import Schedule, StepResult, run_epochs


@dataclass(frozen=True)
class Jitter:
    """Random warps applied per batch on the fly: affine (shift px, rotation °, scale, shear °)
    plus an optional elastic field (``elastic`` px of displacement, smoothed over
    ``elastic_sigma`` px). Label-preserving, and the classic way to widen a narrow source
    (e.g. font glyphs) towards handwriting."""

    shift: float = 2.0
    rotate: float = 10.0
    scale: float = 0.1
    shear: float = 0.0
    elastic: float = 0.0
    elastic_sigma: float = 3.0

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape

        def u(lo: float, hi: float) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(n, generator=gen)

        ang = torch.deg2rad(u(-self.rotate, self.rotate))
        sh = torch.tan(torch.deg2rad(u(-self.shear, self.shear)))
        s = u(1 - self.scale, 1 + self.scale)
        tx = u(-self.shift, self.shift) * 2 / w
        ty = u(-self.shift, self.shift) * 2 / h
        cos, sin = torch.cos(ang) / s, torch.sin(ang) / s
        # Rotation·scale, then a horizontal shear (x += sh·y), in grid coordinates.
        theta = torch.stack(
            [torch.stack([cos, -sin + cos * sh, tx], 1), torch.stack([sin, cos + sin * sh, ty], 1)],
            1,
        ).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        if self.elastic > 0:
            grid = grid + self._elastic_field(n, h, w, gen).to(x.dtype)
        return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)

    def _elastic_field(self, n: int, h: int, w: int, gen: torch.Generator) -> torch.Tensor:
        """Smooth random displacement (N, H, W, 2) in grid units, ~``elastic`` px in size."""
        noise = torch.rand(n, 2, h, w, generator=gen) * 2 - 1
        r = max(1, round(2 * self.elastic_sigma))
        t = torch.arange(-r, r + 1, dtype=torch.float32)
        k = torch.exp(-0.5 * (t / self.elastic_sigma) ** 2)
        k = k / k.sum()
        field = noise.reshape(n * 2, 1, h, w)
        field = F.conv2d(F.pad(field, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
        field = F.conv2d(F.pad(field, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))
        field = field.reshape(n, 2, h, w)
        # Normalise so the typical displacement is `elastic` pixels whatever the smoothing.
        field = field / field.flatten(1).std(dim=1).clamp_min(1e-6).view(n, 1, 1, 1)
        scale = torch.tensor([2.0 / w, 2.0 / h]).view(1, 2, 1, 1) * self.elastic
        return (field * scale).permute(0, 2, 3, 1)


def to_tensor(images: np.ndarray, channels: int = 1) -> torch.Tensor:
    """uint8 (N,H,W[,C]) → float32 (N,channels,H,W) in [0,1]; RGB is reduced to luma for 1."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float() / 255.0
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    if x.shape[1] == channels:
        return x
    if channels == 1 and x.shape[1] >= 3:
        w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (x[:, :3] * w).sum(1, keepdim=True)
    if channels == 3 and x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1).contiguous()
    raise ValueError(f"cannot turn {x.shape[1]}-channel images into {channels} channels")


@dataclass
class FitConfig:
    epochs: int = 5
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    steps_per_epoch: int | None = None  # None: one pass over the (summed) sources
    jitter: Jitter | None = Jitter()
    label_smoothing: float = 0.0


def evaluate(model: nn.Module, data: ArraySet, batch_size: int = 512) -> dict[str, Any]:
    """Accuracy, mean loss and per-sample predictions/correctness (for slices, confusion)."""
    model.eval()
    channels = getattr(model, "in_channels", 1)
    preds, losses = [], []
    with torch.no_grad():
        for i in range(0, len(data), batch_size):
            x = to_tensor(data.images[i : i + batch_size], channels)
            y = torch.from_numpy(data.labels[i : i + batch_size])
            logits = model(x)
            losses.append(F.cross_entropy(logits, y, reduction="sum").item())
            preds.append(logits.argmax(1).numpy())
    pred = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    correct = pred == data.labels
    n = max(len(data), 1)
    return {
        "acc": float(correct.mean()) if len(data) else float("nan"),
        "loss": float(sum(losses) / n),
        "pred": pred,
        "correct": correct,
    }


def fit(
    model: nn.Module,
    sources: Sequence[ArraySet],
    ratios: Sequence[float] | None,
    cfg: FitConfig,
    seed: int,
    eval_sets: dict[str, ArraySet] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
) -> list[dict[str, float]]:
    """Train ``model`` in place; returns one metrics dict per epoch (train loss + evals).

    ``ratios`` is the share of each batch drawn from each source (None: proportional to the
    sources' sizes, i.e. ordinary shuffling of their union). ``on_epoch(epoch, metrics)`` is
    called after every epoch, epoch counted from 1; epoch 0 (before any step) is evaluated too
    when ``eval_sets`` is given so curves start from the initial model.
    """
    shapes = {s.name: s.images.shape[1:3] for s in sources}
    if len(set(shapes.values())) > 1:
        raise ValueError(
            f"training sources have different image sizes {shapes}; frame synthcv datasets "
            "with match_domain or use sources of one size"
        )
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    channels = getattr(model, "in_channels", 1)
    tensors = [to_tensor(s.images, channels) for s in sources]
    labels = [torch.from_numpy(s.labels) for s in sources]
    sizes = [len(s) for s in sources]

    def step(batch: list[tuple[int, int]]) -> StepResult:
        src = np.array([b[0] for b in batch])
        idx = np.array([b[1] for b in batch])
        xs, ys = [], []
        for j in np.unique(src):
            sel = torch.from_numpy(idx[src == j])
            xs.append(tensors[j][sel])
            ys.append(labels[j][sel])
        x, y = torch.cat(xs), torch.cat(ys)
        if cfg.jitter is not None:
            x = cfg.jitter(x, gen)
        loss = F.cross_entropy(model(x), y, label_smoothing=cfg.label_smoothing)
        return loss, {"loss": loss.item()}, len(y)

    def evaluate_sets() -> dict[str, float]:
        m: dict[str, float] = {}
        for name, ev in (eval_sets or {}).items():
            r = evaluate(model, ev)
            m[f"{name}.acc"], m[f"{name}.loss"] = r["acc"], r["loss"]
        return m

    schedule = Schedule(
        cfg.epochs,
        cfg.steps_per_epoch or max(1, math.ceil(sum(sizes) / cfg.batch_size)),
        cfg.batch_size,
        cfg.lr,
        cfg.weight_decay,
    )
    return run_epochs(
        model,
        sizes,
        [float(v) for v in (ratios if ratios is not None else sizes)],
        schedule,
        seed,
        step,
        evaluate_sets if eval_sets else None,
        on_epoch,
        progress,
    )
