"""The seeded epoch loop every task trains with: mixture batches, AdamW with a one-cycle
schedule, per-epoch evaluation, a progress bar and checkpoints. Tasks supply only what a step
computes.

Sharing it keeps "equal gradient steps", "same schedule" and "epoch 0 is the untrained model"
true for every task, which the recipes' comparisons rely on.

A :class:`Checkpoint` makes a stage resumable: its file holds everything the rest of the stage
depends on (weights, optimizer and schedule state, the step's random generators, the global
torch generator, the history and the running sums of a cut epoch). It is written at every
epoch's end and, within an epoch, at step boundaries at most every ``interval_s`` seconds, so
an interrupted stage resumes at its last saved step and ends with the weights an uninterrupted
one would have had: every batch is a function of (seed, epoch, step), and the batches already
done are skipped, not redrawn.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synthcv.interrupts import InterruptGuard, interruption_point
from synthcv.tasks.sampling import MixtureBatchSampler

CHECKPOINT_FORMAT = "synthcv.stage-checkpoint/1"
_START_OVER = "start over without resuming (synthcv experiment run --no-resume)"

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


@dataclass(frozen=True)
class Checkpoint:
    """Where a stage keeps its resumable state, and what it must belong to: a file whose
    ``fingerprint`` differs (another config, other data, another stage) is refused."""

    path: Path
    fingerprint: str
    interval_s: float = 60.0


@dataclass
class _Progress:
    """Where a stage stands: the epoch being trained, the steps of it already taken, the
    running sums of the step parts and the items seen in it."""

    epoch: int = 1
    step: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    seen: int = 0


def _save(
    ckpt: Checkpoint,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: Any,
    generators: Sequence[torch.Generator],
    history: list[dict[str, float]],
    at: _Progress,
) -> None:
    from synthcv.fileio import atomic_path

    payload = {
        "format": CHECKPOINT_FORMAT,
        "fingerprint": ckpt.fingerprint,
        "epoch": at.epoch,
        "step": at.step,
        "sums": dict(at.sums),
        "seen": at.seen,
        # numpy scalars (COCOeval's figures) as Python numbers: a weights-only load takes those
        "history": [
            {k: v.item() if hasattr(v, "item") else v for k, v in h.items()} for h in history
        ],
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "generators": [g.get_state() for g in generators],
        "torch_rng": torch.get_rng_state(),
    }
    with atomic_path(ckpt.path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(ckpt: Checkpoint) -> dict[str, Any] | None:
    """The saved state at ``ckpt.path`` (None: no file), refusing another run's or a damaged
    file with a ValueError that names it."""
    if not ckpt.path.is_file():
        return None
    try:
        payload = torch.load(ckpt.path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a truncated or foreign file
        raise ValueError(
            f"{ckpt.path}: not a readable stage checkpoint "
            f"({(str(exc).splitlines() or [type(exc).__name__])[0]}); {_START_OVER}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{ckpt.path}: not a synthcv stage checkpoint; {_START_OVER}")
    if payload["fingerprint"] != ckpt.fingerprint:
        raise ValueError(
            f"{ckpt.path}: written by another configuration or other data "
            f"(fingerprint {payload['fingerprint'][:12]}, this run {ckpt.fingerprint[:12]}); "
            f"{_START_OVER}"
        )
    return payload


BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


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
    generators: Sequence[torch.Generator] = (),
    checkpoint: Checkpoint | None = None,
    freeze_batchnorm: bool = False,
) -> list[dict[str, float]]:
    """Train ``model`` in place for ``schedule``; ``step(batch)`` turns a batch of
    ``(source, index)`` pairs into a loss. Returns one metrics dict per epoch: ``train.*`` (the
    step parts, averaged over items) and ``evaluate()``'s, with epoch 0 (before any step)
    evaluated too when ``evaluate`` is given.

    ``generators`` are the random generators ``step`` draws from (augmentation): a checkpoint
    saves and restores their states. With ``checkpoint`` an existing file is resumed from (a
    finished stage only restores its weights and returns its history) and the state is saved
    as training goes; ``on_epoch`` is called again for the restored epochs, so a fresh
    tracking run of a resumed experiment holds every epoch's metrics.

    ``freeze_batchnorm`` keeps every BatchNorm layer in inference mode while the rest trains:
    batches are normalised by the statistics the model arrived with, which stay as they were
    (the layers' scale and shift still learn) — the usual way to fine-tune, since a mixture of
    old and new data would otherwise move the statistics every old image is normalised by.
    """
    frozen = [m for m in model.modules() if isinstance(m, BATCHNORMS)] if freeze_batchnorm else []
    opt = torch.optim.AdamW(model.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay)
    total = schedule.steps * schedule.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=schedule.lr, total_steps=max(total, 1), pct_start=0.15
    )
    history: list[dict[str, float]] = []
    at = _Progress()
    saved = read_checkpoint(checkpoint) if checkpoint is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        for g, state in zip(generators, saved["generators"], strict=True):
            g.set_state(state)
        torch.set_rng_state(saved["torch_rng"])
        history = list(saved["history"])
        at = _Progress(saved["epoch"], saved["step"], dict(saved["sums"]), saved["seen"])
        if on_epoch is not None:
            for h in history:
                on_epoch(int(h["epoch"]), {k: v for k, v in h.items() if k != "epoch"})

    def log_epoch(epoch: int, extra: dict[str, float]) -> None:
        m = dict(extra)
        if evaluate is not None:
            m.update(evaluate())
        history.append({"epoch": epoch, **m})
        if on_epoch is not None:
            on_epoch(epoch, m)

    def save() -> None:
        if checkpoint is not None:
            _save(checkpoint, model, opt, sched, generators, history, at)

    if evaluate is not None and saved is None:
        log_epoch(0, {})
    prog = None
    if progress and at.epoch <= schedule.epochs:
        from rich.progress import Progress

        prog = Progress(transient=True)
        prog.start()
        done = (at.epoch - 1) * schedule.steps + at.step
        task = prog.add_task(description, total=total, completed=done)
    last_save = time.monotonic()
    try:
        # its own guard: a library call (no CLI around it) does not lose a swallowed Ctrl-C
        with InterruptGuard():
            while at.epoch <= schedule.epochs:
                model.train()
                for m in frozen:
                    m.eval()
                sampler = MixtureBatchSampler(
                    sizes, ratios, schedule.batch_size, schedule.steps, seed * 1000 + at.epoch
                )
                for i, batch in enumerate(sampler):
                    if i < at.step:
                        continue  # taken before the checkpoint (the sampler is seeded)
                    interruption_point()  # a Ctrl-C Python swallowed stops at the next step
                    loss, parts, n = step(batch)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if schedule.clip_grad is not None:
                        nn.utils.clip_grad_norm_(model.parameters(), schedule.clip_grad)
                    opt.step()
                    sched.step()
                    for k, v in parts.items():
                        at.sums[k] = at.sums.get(k, 0.0) + v * n
                    at.seen += n
                    at.step = i + 1
                    if prog is not None:
                        prog.advance(task)
                    if (
                        checkpoint is not None
                        and at.step < schedule.steps
                        and time.monotonic() - last_save >= checkpoint.interval_s
                    ):
                        save()
                        last_save = time.monotonic()
                log_epoch(at.epoch, {f"train.{k}": v / max(at.seen, 1) for k, v in at.sums.items()})
                at = _Progress(at.epoch + 1)
                save()
                last_save = time.monotonic()
    finally:
        if prog is not None:
            prog.stop()
    return history
