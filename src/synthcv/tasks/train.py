"""Seeded train and evaluation loops for classification.

Training draws batches from one or more :class:`ArraySet` sources through a
:class:`MixtureBatchSampler` (a single source is a mixture of one), so real-only, synthetic-only
and mixed recipes share one code path. A run is a pure function of (data, config, seed): the
model init, batch order and jitter draws all come from the seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthcv.tasks.data import ArraySet
from synthcv.tasks.loop import Checkpoint, Schedule, StepResult, run_epochs
from synthcv.tasks.warps import Jitter


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
    jitter: Jitter | None = field(default_factory=Jitter)
    label_smoothing: float = 0.0
    #: weight of the distillation term (Learning without Forgetting, Li & Hoiem 2016): the
    #: KL divergence to a frozen ``teacher``'s softened outputs, so fine-tuning keeps what the
    #: teacher knew; 0 turns it off
    distill: float = 0.0
    distill_temperature: float = 2.0
    #: which sources (by position) the teacher speaks for; None: all. Learning without
    #: Forgetting distils on the old data only: on new data the teacher is what must change
    distill_sources: tuple[int, ...] | None = None
    #: BatchNorm in inference mode while the rest trains (:func:`run_epochs`): for fine-tunes
    freeze_batchnorm: bool = False


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
    teacher: nn.Module | None = None,
    checkpoint: Checkpoint | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place; returns one metrics dict per epoch (train loss + evals).

    With ``teacher`` and ``cfg.distill > 0`` every batch also pulls the model's softened
    outputs (temperature ``cfg.distill_temperature``) towards the frozen teacher's on the same
    (jittered) images, scaled by T² as Hinton et al. do so the term's gradients keep their size.

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
    if teacher is not None:
        teacher.eval()  # frozen: its BatchNorm statistics and dropout stay as trained
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
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        parts = {"loss": loss.item()}
        if teacher is not None and cfg.distill > 0:
            order = np.concatenate([src[src == j] for j in np.unique(src)])  # as x was built
            keep = (
                np.ones(len(order), bool)
                if cfg.distill_sources is None
                else np.isin(order, cfg.distill_sources)
            )
            if keep.any():
                t, sel = cfg.distill_temperature, torch.from_numpy(keep)
                with torch.no_grad():
                    target = F.softmax(teacher(x[sel]) / t, dim=1)
                student = F.log_softmax(logits[sel] / t, dim=1)
                kl = F.kl_div(student, target, reduction="batchmean")
                # weighted by the distilled share so the term's size follows the mixture
                loss = loss + cfg.distill * t * t * kl * float(keep.mean())
                parts["distill"] = kl.item()
        return loss, parts, len(y)

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
        generators=[gen],
        checkpoint=checkpoint,
        freeze_batchnorm=cfg.freeze_batchnorm,
    )


def recalibrate_batchnorm(
    model: Any,
    sources: list[Any],
    ratios: list[float] | None,
    batch_size: int,
    batches: int,
    seed: int,
) -> Any:
    """Re-estimate every BatchNorm layer's running mean and variance, in place, as the plain
    average over ``batches`` batches drawn from ``sources`` in ``ratios`` (labels unused).
    Two uses: after blending two networks' weights (the loop's ``interpolate``), whose
    activations are not the blend of theirs (Jordan et al., "REPAIR", 2023, measure the
    collapse); and to adapt a model trained on one domain to another's unlabelled images
    (AdaBN, Li et al. 2016: a stage's ``adapt_bn``). Nothing else changes."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model
    rng = np.random.default_rng([seed, 0xB4])
    shares = ratios or [1.0 / len(sources)] * len(sources)
    counts = [max(1, round(batch_size * r)) for r in shares]
    channels = getattr(model, "in_channels", 1)
    model.eval()
    saved = {m: m.momentum for m in norms}
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
        m.train()
    try:
        with torch.no_grad():
            for _ in range(batches):
                parts = [
                    src.images[rng.integers(0, len(src), size=k)]
                    for src, k in zip(sources, counts, strict=True)
                ]
                model(to_tensor(np.concatenate(parts), channels))
    finally:
        for m in norms:
            m.momentum = saved[m]
        model.eval()
    return model
