"""The seeded epoch loop every task trains with: mixture batches, AdamW with a one-cycle
schedule, per-epoch evaluation and a progress bar. Tasks supply only what a step computes.

Sharing it keeps "equal gradient steps", "same schedule" and "epoch 0 is the untrained model"
true for every task, which the recipes' comparisons rely on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from synthcv.tasks.sampling import MixtureBatchSampler

#: One step's loss, its parts to report (floats) and how many items it saw.
StepResult = tuple[torch.Tensor, dict[str, float], int]


@dataclass(frozen=True)
class Schedule:
    epochs: int
    steps: int  # per epoch
    batch_size: int
    lr: float
    weight_decay: float
    clip_grad: float | None = None


def run_epochs(
    model: nn.Module,
    sizes: Sequence[int],
    ratios: Sequence[float],
    schedule: Schedule,
    seed: int,
    step: Callable[[list[tuple[int, int]]], StepResult],
    evaluate: Callable[[], dict[str, float]] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
    description: str = "training",
) -> list[dict[str, float]]:
    """Train ``model`` in place for ``schedule``; ``step(batch)`` turns a batch of
    ``(source, index)`` pairs into a loss. Returns one metrics dict per epoch: ``train.*`` (the
    step parts, averaged over items) and ``evaluate()``'s, with epoch 0 (before any step)
    evaluated too when ``evaluate`` is given."""
    opt = torch.optim.AdamW(model.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay)
    total = schedule.steps * schedule.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=schedule.lr, total_steps=max(total, 1), pct_start=0.15
    )
    history: list[dict[str, float]] = []

    def log_epoch(epoch: int, extra: dict[str, float]) -> None:
        m = dict(extra)
        if evaluate is not None:
            m.update(evaluate())
        history.append({"epoch": epoch, **m})
        if on_epoch is not None:
            on_epoch(epoch, m)

    if evaluate is not None:
        log_epoch(0, {})
    prog = None
    if progress:
        from rich.progress import Progress

        prog = Progress(transient=True)
        prog.start()
        task = prog.add_task(description, total=total)
    try:
        for epoch in range(1, schedule.epochs + 1):
            model.train()
            sampler = MixtureBatchSampler(
                sizes, ratios, schedule.batch_size, schedule.steps, seed * 1000 + epoch
            )
            sums: dict[str, float] = {}
            seen = 0
            for batch in sampler:
                loss, parts, n = step(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if schedule.clip_grad is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), schedule.clip_grad)
                opt.step()
                sched.step()
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + v * n
                seen += n
                if prog is not None:
                    prog.advance(task)
            log_epoch(epoch, {f"train.{k}": v / max(seen, 1) for k, v in sums.items()})
    finally:
        if prog is not None:
            prog.stop()
    return history
