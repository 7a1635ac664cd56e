"""Training loop with a run directory: config, checkpoints, resume, per-epoch metrics.

RUN_DIR/
  run.json        the resolved configuration (model spec, data, optimizer, seed)
  checkpoint.pt   latest weights + optimizer + progress, written atomically after every epoch;
                  with ``ema`` the weights are the average and ``train_state_dict`` holds the
                  training weights
  metrics.jsonl   one JSON line per epoch: train_bpd (mean over the epoch's batches),
                  test_bpd (full test split, averaged weights with ``ema``), lr (of the
                  epoch's last step), seconds, steps

Batches are shuffled by ``numpy.random.default_rng([seed, epoch])`` and model noise (VAE) by a
``torch.Generator`` seeded from (seed, epoch), so a resumed run replays exactly the epochs an
uninterrupted one would.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthcv.genmodels.base import GenerativeModel

# the configuration (torch-free) lives in synthcv.genmodels.config; re-exported from here
from synthcv.genmodels.config import (  # noqa: F401
    PRECISIONS,
    SCHEDULES,
    TrainConfig,
    load_run_config,
)
from synthcv.genmodels.data import ImageData, load_images, random_shift
from synthcv.genmodels.io import atomic_path
from synthcv.genmodels.registry import build_model, load_checkpoint, num_params, save_checkpoint


def scheduled_lr(cfg: TrainConfig, epoch: int, progress: float, step: int) -> float:
    """Learning rate of the next step: ``progress`` in [0, 1] is how much of the run is done."""
    if cfg.lr_schedule == "cosine":
        lr = 0.5 * cfg.lr * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    else:
        lr = cfg.lr * cfg.lr_decay**epoch
    if step < cfg.warmup_steps:
        lr *= (step + 1) / cfg.warmup_steps
    return lr


class WeightAverage:
    """Exponential moving average of a model's parameters (Polyak averaging).

    Averaged weights score better than the last iterate of a noisy (small-batch, bf16) run and
    are what PixelCNN++ evaluates. The decay ramps up as ``(1 + t) / (10 + t)`` so the first
    steps do not drag the average towards the random initial weights.
    """

    def __init__(self, model: torch.nn.Module, decay: float, steps: int = 0) -> None:
        self.decay = decay
        self.steps = steps
        self.params = list(model.parameters())
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        d = min(self.decay, (1.0 + self.steps) / (10.0 + self.steps))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - d)

    @contextmanager
    def swapped_in(self):
        """Inside the block the model holds the averaged weights; the training ones come back."""
        with torch.no_grad():
            saved = [p.detach().clone() for p in self.params]
            for p, a in zip(self.params, self.shadow, strict=True):
                p.copy_(a)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, t in zip(self.params, saved, strict=True):
                    p.copy_(t)

    def load(self, shadow: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for a, s in zip(self.shadow, shadow, strict=True):
                a.copy_(s)


def resolve_precision(precision: str) -> str:
    """``auto`` -> ``bf16`` where the CPU has AMX bfloat16 tiles (where it pays), else ``fp32``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision got {precision!r}, expected one of {list(PRECISIONS)}")
    if precision != "auto":
        return precision
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "fp32"
    return "bf16" if "amx_bf16" in flags else "fp32"


def training_loss(model: GenerativeModel, precision: str, compile: bool):
    """``(model, loss_fn)`` set up for training passes at ``precision`` (``fp32``/``bf16``).

    bf16 means channels-last weights (what oneDNN's AMX kernels want) and the loss under
    bfloat16 autocast; ``compile`` wraps ``model.loss`` in ``torch.compile``. Parameters stay
    float32. Shared by :func:`train` and the training-speed benchmark.
    """
    bf16 = precision == "bf16"
    if bf16:
        model = model.to(memory_format=torch.channels_last)
    loss = torch.compile(model.loss) if compile else model.loss

    def loss_fn(*args: Any) -> torch.Tensor:
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            return loss(*args)

    return model, loss_fn


def resolve_micro_batch(cfg: TrainConfig, model: GenerativeModel) -> int:
    """Images per forward/backward pass: ``cfg.micro_batch`` (None = the whole batch)."""
    if cfg.micro_batch is None:
        return cfg.batch_size
    if cfg.micro_batch < cfg.batch_size and not model.splittable_loss:
        raise ValueError(
            f"micro_batch {cfg.micro_batch} < batch_size {cfg.batch_size}, but"
            f" {model.model_name} draws one connectivity per loss call (num_masks > 1):"
            " train it with micro_batch = batch_size"
        )
    return min(cfg.micro_batch, cfg.batch_size)


def accumulate_gradients(
    loss_fn, x: torch.Tensor, y: torch.Tensor | None, generator, micro_batch: int
) -> float:
    """Backpropagate the batch-mean loss in passes of ``micro_batch`` images; returns the mean.

    Raises FloatingPointError on a non-finite loss, before any gradient reaches the weights.
    """
    mean = 0.0
    for start in range(0, len(x), micro_batch):
        part = slice(start, start + micro_batch)
        loss = loss_fn(x[part], None if y is None else y[part], generator)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss.item()}")
        share = len(x[part]) / len(x)  # each pass's mean, weighted by its share of the batch
        (loss * share).backward()
        mean += float(loss.detach()) * share
    return mean


def load_split(cfg: TrainConfig, split: str) -> ImageData:
    limit = cfg.limit if split == "train" else cfg.test_limit
    return load_images(cfg.data, split, crop=cfg.crop, limit=limit, mnist_path=cfg.mnist_path)


def tensors(data: ImageData, levels: int, conditional: bool) -> tuple[torch.Tensor, Any]:
    x = torch.from_numpy(data.levels_array(levels))
    if not conditional:
        return x, None
    if len(data.labels) and data.labels.min() < 0:
        raise ValueError(f"{data.source}: --conditional needs a label for every image, some are -1")
    return x, torch.from_numpy(data.labels)


# Elements of per-level outputs (images x dims x levels) one evaluation batch may produce. A
# 28x28 8-bit model emits 256 numbers per pixel: at batch 256 that is 205 MB of logits and
# evaluation runs ~2.5x slower than at batch 20, where they stay in cache (measured on 2 cores).
EVAL_BATCH_OUTPUTS = 1 << 22


def eval_batch_size(model: GenerativeModel) -> int:
    """The evaluation batch for ``model``: as many images as keep its outputs cache-sized."""
    return max(1, min(256, EVAL_BATCH_OUTPUTS // (model.num_dims * model.levels)))


@torch.no_grad()
def evaluate(model: GenerativeModel, x: torch.Tensor, y, batch_size: int | None = None) -> float:
    """Mean bits/dim over ``x`` (exact for autoregressive models; the ELBO bound for a VAE).

    ``batch_size`` only changes speed (None = :func:`eval_batch_size`), never the result beyond
    float rounding.
    """
    batch_size = batch_size or eval_batch_size(model)
    was = model.training
    model.eval()
    total = 0.0
    try:
        for s in range(0, len(x), batch_size):
            yb = None if y is None else y[s : s + batch_size]
            total += float(model.log_prob(x[s : s + batch_size], yb).sum())
    finally:
        model.train(was)
    return -total / (len(x) * model.num_dims * math.log(2.0))


def _averaged(average: WeightAverage | None):
    """The averaged weights in the model for the block (a no-op without averaging)."""
    return average.swapped_in() if average is not None else nullcontext()


def _write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2))


def _append_metrics(path: Path, row: dict[str, Any]) -> None:
    lines = path.read_text().splitlines() if path.exists() else []
    lines.append(json.dumps(row))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    p = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


@dataclass
class _Run:
    """A run opened for training: its config, data, model and where the checkpoint left it."""

    cfg: TrainConfig
    x_tr: torch.Tensor
    y_tr: torch.Tensor | None
    x_te: torch.Tensor
    y_te: torch.Tensor | None
    model: GenerativeModel
    payload: dict[str, Any]
    epochs_done: int
    seconds: float
    steps: int


def _open_run(cfg: TrainConfig, out: Path, resume: bool) -> _Run:
    """Check ``out``, resolve the config, load the data, build or restore the model, and write
    run.json for a new run."""
    ckpt = out / "checkpoint.pt"
    if ckpt.exists() and not resume:
        raise FileExistsError(
            f"{out} already holds a checkpoint; pass --resume to continue or pick a new --out"
        )
    if resume and not ckpt.exists():
        raise FileNotFoundError(f"--resume: no checkpoint at {ckpt}")
    if resume:  # the run's own configuration wins; only the epoch count and budget change
        cfg = load_run_config(out).replace(epochs=cfg.epochs, minutes=cfg.minutes)
    # TrainConfig validated every value when it was built
    cfg = cfg.replace(precision=resolve_precision(cfg.precision))  # run.json records the choice
    levels = 2 if cfg.binarize else 256
    train_d, test_d = load_split(cfg, "train"), load_split(cfg, "test")
    x_tr, y_tr = tensors(train_d, levels, cfg.conditional)
    x_te, y_te = tensors(test_d, levels, cfg.conditional)
    num_classes = train_d.num_classes if cfg.conditional else 0
    shape = tuple(x_tr.shape[1:])
    if resume:
        model, payload = load_checkpoint(ckpt)
        if "train_state_dict" in payload:  # the checkpoint's weights are the average
            model.load_state_dict(payload["train_state_dict"])
        model.train()
        done, seconds, steps = payload["epochs_done"], payload["train_seconds"], payload["steps"]
    else:
        model = build_model(cfg.model, shape, levels, num_classes, seed=cfg.seed, **cfg.hparams)
        payload, done, seconds, steps = {}, 0, 0.0, 0
    cfg = cfg.replace(micro_batch=resolve_micro_batch(cfg, model))  # run.json records it
    if not resume:
        out.mkdir(parents=True, exist_ok=True)
        info = dict(
            config=cfg.to_json(),
            image_shape=list(shape),
            levels=levels,
            num_classes=num_classes,
            params=num_params(model),
            train_size=len(x_tr),
            test_size=len(x_te),
            class_names=train_d.class_names,
        )
        _write_json(out / "run.json", info)
    return _Run(cfg, x_tr, y_tr, x_te, y_te, model, payload, done, seconds, steps)


@dataclass
class _EpochRandomness:
    """The generators of one epoch: batch order, model sampling, shifts (and the global one
    that dropout draws from). Seeded per (seed, epoch), restored mid-epoch on resume."""

    perm: torch.Tensor
    gen: torch.Generator
    shift_gen: torch.Generator

    @classmethod
    def of(cls, cfg: TrainConfig, epoch: int, n: int, partial: dict | None) -> _EpochRandomness:
        perm = torch.from_numpy(np.random.default_rng([cfg.seed, epoch]).permutation(n))
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        shift_gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch + 500_000)
        torch.manual_seed(cfg.seed * 1_000_003 + epoch + 1_000_000)
        if partial is not None:
            gen.set_state(partial["gen_state"])
            shift_gen.set_state(partial["shift_gen_state"])
            torch.set_rng_state(partial["global_rng_state"])
        return cls(perm, gen, shift_gen)

    def partial_state(self, batches: int, loss_sum: float, images: int) -> dict[str, Any]:
        """What a budget-cut epoch needs to resume at its next batch."""
        return dict(
            batches=batches,
            loss_sum=loss_sum,
            images=images,
            gen_state=self.gen.get_state(),
            shift_gen_state=self.shift_gen.get_state(),
            global_rng_state=torch.get_rng_state(),
        )


def train(
    cfg: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Train (or continue) a run in ``out``; returns a summary with the last metrics."""
    out = Path(out)
    run = _open_run(cfg, out, resume)
    cfg, payload, steps = run.cfg, run.payload, run.steps
    x_tr, y_tr = run.x_tr, run.y_tr
    model, loss_fn = training_loss(run.model, cfg.precision, cfg.compile)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if payload.get("optimizer"):
        opt.load_state_dict(payload["optimizer"])
    average = WeightAverage(model, cfg.ema, steps) if cfg.ema else None
    if average is not None and "train_state_dict" in payload:
        average.load(list(payload["state_dict"][k] for k, _ in model.named_parameters()))
    steps_per_epoch = math.ceil(len(x_tr) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    d_ln2 = model.num_dims * math.log(2.0)
    budget = None if cfg.minutes is None else cfg.minutes * 60.0
    start = time.perf_counter() - run.seconds
    stopped = False
    last: dict[str, Any] = {}
    # a budget-cut epoch resumes at its next batch, with its generators and running loss
    partial = payload.get("partial_epoch")
    for epoch in range(run.epochs_done, cfg.epochs):
        t0 = time.perf_counter()
        rand = _EpochRandomness.of(cfg, epoch, len(x_tr), partial)
        epoch_lr = 0.0
        model.train()
        tot, cnt, batches_done = 0.0, 0, 0
        if partial is not None:
            tot, cnt, batches_done = partial["loss_sum"], partial["images"], partial["batches"]
            partial = None
        batches = range(batches_done * cfg.batch_size, len(x_tr), cfg.batch_size)
        it: Any = batches
        if progress:
            from rich.progress import track

            it = track(batches, description=f"epoch {epoch + 1}/{cfg.epochs}", transient=True)
        for s in it:
            idx = rand.perm[s : s + cfg.batch_size]
            progress_done = steps / total_steps
            if budget is not None:
                progress_done = max(progress_done, (time.perf_counter() - start) / budget)
            # a function of epoch, step and clock, all restored on resume
            epoch_lr = scheduled_lr(cfg, epoch, progress_done, steps)
            for group in opt.param_groups:
                group["lr"] = epoch_lr
            xb = random_shift(x_tr[idx], cfg.augment_shift, rand.shift_gen)
            yb = None if y_tr is None else y_tr[idx]
            opt.zero_grad(set_to_none=True)
            try:
                tot += accumulate_gradients(loss_fn, xb, yb, rand.gen, cfg.micro_batch) * len(idx)
            except FloatingPointError as exc:  # before a NaN reaches the weights
                raise FloatingPointError(
                    f"{out}: {exc} at epoch {epoch + 1}, step {steps + 1}; the checkpoint keeps"
                    f" epoch {epoch}. Train again with a lower --lr, without --compile or with"
                    " --precision fp32"
                ) from exc
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            if average is not None:
                average.update()
            cnt += len(idx)
            steps += 1
            batches_done += 1
            if budget is not None and time.perf_counter() - start > budget:
                stopped = True
                break
        seconds = time.perf_counter() - start
        complete = batches_done == steps_per_epoch
        extra: dict[str, Any] = {}
        if average is not None:
            extra["train_state_dict"] = {k: v.clone() for k, v in model.state_dict().items()}
        if not complete:
            extra["partial_epoch"] = rand.partial_state(batches_done, tot, cnt)
        with _averaged(average):  # one swap: evaluate and checkpoint the average
            last = dict(epoch=epoch + 1, complete=complete, steps=steps)
            last["train_bpd"] = tot / max(cnt, 1) / d_ln2
            if stopped or epoch + 1 == cfg.epochs or (epoch + 1) % cfg.eval_every == 0:
                last["test_bpd"] = evaluate(model, run.x_te, run.y_te)
            last["lr"] = epoch_lr
            last["epoch_seconds"] = round(time.perf_counter() - t0, 3)
            last["train_seconds"] = round(seconds, 3)
            _append_metrics(out / "metrics.jsonl", last)
            save_checkpoint(
                out / "checkpoint.pt",
                model,
                optimizer=opt.state_dict(),
                epochs_done=epoch + 1 if complete else epoch,
                steps=steps,
                train_seconds=seconds,
                **extra,
            )
        if progress:
            _print_epoch(last)
        if stopped:
            break
    return dict(run_dir=str(out), stopped_by_budget=stopped, params=num_params(model), **last)


def _print_epoch(last: dict[str, Any]) -> None:
    from rich import print as rprint

    test = f" test {last['test_bpd']:.4f}" if "test_bpd" in last else ""
    rprint(
        f"epoch {last['epoch']}: train {last['train_bpd']:.4f}{test} bits/dim"
        f" ({last['epoch_seconds']:.1f} s){'' if last['complete'] else ' [time budget hit]'}"
    )
