"""Training loop with a run directory: config, checkpoints, resume, per-epoch metrics.

RUN_DIR/
  run.json        the resolved configuration (model spec, data, optimizer, seed)
  checkpoint.pt   latest weights + optimizer + progress, written atomically after every epoch
  metrics.jsonl   one JSON line per epoch: train_bpd (mean over the epoch's batches),
                  test_bpd (full test split), lr, seconds, steps

Batches are shuffled by ``numpy.random.default_rng([seed, epoch])`` and model noise (VAE) by a
``torch.Generator`` seeded from (seed, epoch), so a resumed run replays exactly the epochs an
uninterrupted one would.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthcv.genmodels.base import GenerativeModel
from synthcv.genmodels.data import ImageData, load_images
from synthcv.genmodels.io import atomic_path
from synthcv.genmodels.registry import build_model, load_checkpoint, num_params, save_checkpoint

PRECISIONS = ("fp32", "bf16", "auto")


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


@dataclass
class TrainConfig:
    model: str = "gated-pixelcnn"
    data: str = "mnist8000"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    lr_decay: float = 1.0  # per-epoch factor: epoch e trains at lr * lr_decay**e
    seed: int = 0
    conditional: bool = False
    binarize: bool = False
    crop: int | None = None
    limit: int | None = None
    test_limit: int | None = None
    minutes: float | None = None
    # "bf16": training passes under bfloat16 autocast with channels-last weights, 2-4x faster on
    # CPUs with AMX (recent Xeons); "auto" picks bf16 there. Evaluation and sampling are float32
    precision: str = "fp32"
    compile: bool = False  # torch.compile the training loss (~1.5x on CPU after a short warm-up)
    hparams: dict[str, Any] = field(default_factory=dict)
    mnist_path: str | None = None


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


@torch.no_grad()
def evaluate(model: GenerativeModel, x: torch.Tensor, y, batch_size: int = 256) -> float:
    """Mean bits/dim over ``x`` (exact for autoregressive models; the ELBO bound for a VAE)."""
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


def load_run_config(run_dir: str | Path) -> TrainConfig:
    p = Path(run_dir) / "run.json"
    if not p.is_file():
        raise FileNotFoundError(f"{run_dir}: no run.json — not a genmodel run directory")
    return TrainConfig(**json.loads(p.read_text())["config"])


def train(
    cfg: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True
) -> dict[str, Any]:
    """Train (or continue) a run in ``out``; returns a summary with the last metrics."""
    out = Path(out)
    ckpt = out / "checkpoint.pt"
    if ckpt.exists() and not resume:
        raise FileExistsError(
            f"{out} already holds a checkpoint; pass --resume to continue or pick a new --out"
        )
    if resume and not ckpt.exists():
        raise FileNotFoundError(f"--resume: no checkpoint at {ckpt}")
    if resume:  # the run's own configuration wins; only the epoch count and budget change
        saved = load_run_config(out)
        saved.epochs, saved.minutes = cfg.epochs, cfg.minutes
        cfg = saved
    cfg = replace(cfg, precision=resolve_precision(cfg.precision))  # run.json records the choice
    levels = 2 if cfg.binarize else 256
    train_d, test_d = load_split(cfg, "train"), load_split(cfg, "test")
    x_tr, y_tr = tensors(train_d, levels, cfg.conditional)
    x_te, y_te = tensors(test_d, levels, cfg.conditional)
    num_classes = train_d.num_classes if cfg.conditional else 0
    shape = tuple(x_tr.shape[1:])

    if resume:
        model, payload = load_checkpoint(ckpt)
        model.train()
        done, seconds, steps = payload["epochs_done"], payload["train_seconds"], payload["steps"]
    else:
        model = build_model(cfg.model, shape, levels, num_classes, seed=cfg.seed, **cfg.hparams)
        payload, done, seconds, steps = {}, 0, 0.0, 0
        out.mkdir(parents=True, exist_ok=True)
        info = dict(
            config=asdict(cfg),
            image_shape=list(shape),
            levels=levels,
            num_classes=num_classes,
            params=num_params(model),
            train_size=len(x_tr),
            test_size=len(x_te),
            class_names=train_d.class_names,
        )
        _write_json(out / "run.json", info)
    model, loss_fn = training_loss(model, cfg.precision, cfg.compile)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if payload.get("optimizer"):
        opt.load_state_dict(payload["optimizer"])
    d_ln2 = model.num_dims * math.log(2.0)
    budget = None if cfg.minutes is None else cfg.minutes * 60.0
    start = time.perf_counter() - seconds
    stopped = False
    last: dict[str, Any] = {}
    for epoch in range(done, cfg.epochs):
        t0 = time.perf_counter()
        perm = torch.from_numpy(np.random.default_rng([cfg.seed, epoch]).permutation(len(x_tr)))
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        epoch_lr = cfg.lr * cfg.lr_decay**epoch  # a function of the epoch: resume replays it
        for group in opt.param_groups:
            group["lr"] = epoch_lr
        model.train()
        tot, cnt = 0.0, 0
        batches = range(0, len(x_tr), cfg.batch_size)
        it: Any = batches
        if progress:
            from rich.progress import track

            it = track(batches, description=f"epoch {epoch + 1}/{cfg.epochs}", transient=True)
        for s in it:
            idx = perm[s : s + cfg.batch_size]
            loss = loss_fn(x_tr[idx], None if y_tr is None else y_tr[idx], gen)
            if not torch.isfinite(loss):  # stop before a NaN reaches the weights or a checkpoint
                raise FloatingPointError(
                    f"{out}: the loss became {loss.item()} at epoch {epoch + 1}, step {steps + 1};"
                    f" the checkpoint keeps epoch {epoch}. Train again with a lower --lr,"
                    " without --compile or with --precision fp32"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            opt.step()
            tot += float(loss.detach()) * len(idx)
            cnt += len(idx)
            steps += 1
            if budget is not None and time.perf_counter() - start > budget:
                stopped = True
                break
        seconds = time.perf_counter() - start
        complete = not stopped
        test_bpd = evaluate(model, x_te, y_te)
        last = dict(
            epoch=epoch + 1,
            complete=complete,
            steps=steps,
            train_bpd=tot / max(cnt, 1) / d_ln2,
            test_bpd=test_bpd,
            lr=epoch_lr,
            epoch_seconds=round(time.perf_counter() - t0, 3),
            train_seconds=round(seconds, 3),
        )
        _append_metrics(out / "metrics.jsonl", last)
        save_checkpoint(
            ckpt,
            model,
            optimizer=opt.state_dict(),
            epochs_done=epoch + 1 if complete else epoch,
            steps=steps,
            train_seconds=seconds,
        )
        if progress:
            from rich import print as rprint

            rprint(
                f"epoch {epoch + 1}: train {last['train_bpd']:.4f} test {test_bpd:.4f} bits/dim"
                f" ({last['epoch_seconds']:.1f} s){'' if complete else ' [time budget hit]'}"
            )
        if stopped:
            break
    return dict(run_dir=str(out), stopped_by_budget=stopped, params=num_params(model), **last)
