"""``synthcv genmodel ...``: train, evaluate, sample and inspect deep generative image models.

torch is imported inside the commands so ``synthcv --help`` stays fast.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer


# the choices synthcv.genmodels.train accepts, as enums so a bad value is a usage error naming
# the flag (kept here so --help needs no torch; a test checks they match)
class LrSchedule(enum.StrEnum):
    exp = "exp"
    cosine = "cosine"


class Precision(enum.StrEnum):
    fp32 = "fp32"
    bf16 = "bf16"
    auto = "auto"


app = typer.Typer(no_args_is_help=True, help="Deep generative image models (PixelCNN family, VAE).")


def _parse_value(text: str) -> Any:
    """JSON if it parses; ``1,2,4`` is the list ``[1, 2, 4]``; anything else stays a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if "," in text:
        try:
            return [json.loads(part) for part in text.split(",")]
        except json.JSONDecodeError:
            pass
    return text


def _parse_params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise typer.BadParameter(f"--param {item!r}: expected KEY=VALUE (VALUE as JSON)")
        k, v = item.split("=", 1)
        out[k.strip()] = _parse_value(v)
    return out


def _threads(n: int | None) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def _load_run(run_dir: Path):
    from synthcv.genmodels.registry import load_checkpoint

    ckpt = run_dir / "checkpoint.pt"
    if not ckpt.is_file():
        raise typer.BadParameter(f"{run_dir}: no checkpoint.pt (train first)", param_hint="RUN_DIR")
    return load_checkpoint(ckpt)


@app.command()
def train(
    out: Path = typer.Option(..., "--out", help="Run directory (checkpoints, metrics)."),
    model: str = typer.Option("gated-pixelcnn", help="fvsbn|nade|made|gated-pixelcnn|conv-vae"),
    data: str = typer.Option("mnist8000", help="mnist8000 | sklearn-digits | DATASET_DIR | X.npz"),
    epochs: int = typer.Option(10, min=1),
    batch_size: int = typer.Option(64, min=1),
    micro_batch: int | None = typer.Option(
        None,
        min=1,
        help="Images per forward/backward pass: a larger batch is split and its gradients"
        " summed, the same update in less memory. Default: the whole batch.",
    ),
    lr: float = typer.Option(1e-3),
    lr_decay: float = typer.Option(
        1.0, min=0.0, max=1.0, help="Per-epoch learning-rate factor (epoch e: lr * decay^e)."
    ),
    lr_schedule: LrSchedule = typer.Option(
        LrSchedule.exp,
        help="exp (lr * decay^epoch) | cosine (half cosine to 0 by the last epoch or --minutes).",
    ),
    warmup_steps: int = typer.Option(0, min=0, help="Linear learning-rate warm-up steps."),
    ema: float = typer.Option(
        0.0,
        min=0.0,
        max=0.9999999,
        help="Evaluate, checkpoint and sample an exponential moving average of the weights with"
        " this decay (e.g. 0.999; 0 = off).",
    ),
    augment_shift: int = typer.Option(
        0,
        min=0,
        help="Shift each training image by a random offset of up to N pixels per axis (edges"
        " repeat); a regularizer for small datasets. Test images stay unshifted.",
    ),
    seed: int = typer.Option(0),
    conditional: bool = typer.Option(False, help="Condition on the class label."),
    binarize: bool = typer.Option(False, help="Threshold at 128: a 2-level (binary) model."),
    crop: int | None = typer.Option(None, help="Central crop size (small, fast problems)."),
    limit: int | None = typer.Option(None, help="Use only the first N training images."),
    test_limit: int | None = typer.Option(None, help="Use only the first N test images."),
    minutes: float | None = typer.Option(None, help="Stop training after this wall-clock budget."),
    eval_every: int = typer.Option(
        1,
        min=1,
        help="Test bits/dim every N epochs (always after the last): evaluation time counts"
        " against --minutes.",
    ),
    param: list[str] = typer.Option([], help="Model hyper-parameter KEY=VALUE (JSON), repeatable."),
    precision: Precision = typer.Option(
        Precision.fp32,
        help="fp32 | bf16 | auto (bfloat16 training passes: 2-4x faster on AMX CPUs).",
    ),
    compile: bool = typer.Option(
        False, "--compile", help="torch.compile the training loss (faster after a warm-up)."
    ),
    resume: bool = typer.Option(False, help="Continue the run in --out from its checkpoint."),
    threads: int | None = typer.Option(None, help="torch CPU threads."),
    mnist_path: str | None = typer.Option(None, help="Path of mnist-real-8000.npz."),
    track: bool = typer.Option(
        True, "--track/--no-track", help="Log to MLflow (SYNTHCV_TRACKING=0 disables)."
    ),
) -> None:
    """Train a model; writes run.json, checkpoint.pt and metrics.jsonl into --out."""
    _threads(threads)
    from synthcv.genmodels.train import TrainConfig
    from synthcv.genmodels.train import train as run_train

    cfg = TrainConfig(
        model=model,
        data=data,
        epochs=epochs,
        batch_size=batch_size,
        micro_batch=micro_batch,
        lr=lr,
        lr_decay=lr_decay,
        lr_schedule=lr_schedule.value,
        warmup_steps=warmup_steps,
        ema=ema,
        augment_shift=augment_shift,
        seed=seed,
        conditional=conditional,
        binarize=binarize,
        crop=crop,
        limit=limit,
        test_limit=test_limit,
        minutes=minutes,
        eval_every=eval_every,
        hparams=_parse_params(param),
        mnist_path=mnist_path,
        precision=precision.value,
        compile=compile,
    )
    try:
        summary = _tracked_train(cfg, out, resume, track, run_train)
    except (FileExistsError, FileNotFoundError, ValueError, FloatingPointError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps(summary, indent=2))


def _data_inputs(data: str, mnist_path: str | None) -> dict[str, str]:
    """Lineage: content hash of the training data (file or dataset manifest)."""
    from synthcv.tracking import dataset_hash

    if data == "mnist8000":
        from synthcv.realdata import find_mnist8000

        return {"mnist8000": dataset_hash(find_mnist8000(mnist_path))}
    if data == "sklearn-digits":
        return {}
    return {Path(data).name: dataset_hash(data)}


def _tracked_train(cfg: Any, out: Path, resume: bool, track: bool, run_train: Any) -> dict:
    """Train inside an MLflow run: config as params, per-epoch bits/dim, run files."""
    from dataclasses import asdict

    from synthcv.tracking import tracked_run, tracking_enabled

    if not tracking_enabled(track):
        return run_train(cfg, out, resume=resume)
    params = {k: v for k, v in asdict(cfg).items() if v is not None}
    with tracked_run(
        "genmodel-train",
        params=params | {"out": str(out)},
        inputs=_data_inputs(cfg.data, cfg.mnist_path),
        enabled=True,
    ) as tr:
        summary = run_train(cfg, out, resume=resume)
        metrics = Path(out) / "metrics.jsonl"
        for line in metrics.read_text().splitlines() if metrics.exists() else []:
            row = json.loads(line)
            step = int(row.get("epoch", 0))
            tr.log_metrics(
                {
                    k: float(v)
                    for k, v in row.items()
                    if isinstance(v, int | float) and k != "epoch"
                },
                step=step,
            )
        for name in ("run.json", "metrics.jsonl"):
            if (Path(out) / name).exists():
                tr.log_artifact(Path(out) / name)
        return summary


@app.command("eval")
def eval_cmd(
    run_dir: Path = typer.Argument(..., help="Run directory written by `genmodel train`."),
    batch_size: int | None = typer.Option(
        None, min=1, help="Images per evaluation batch (speed only); default: sized to the model."
    ),
    iw_samples: int = typer.Option(100, help="VAE: importance samples for the IW estimate."),
    iw_limit: int = typer.Option(500, help="VAE: images per split for the (costly) IW estimate."),
    threads: int | None = typer.Option(None),
) -> None:
    """Bits/dim on train and test and the overfitting gap; writes RUN_DIR/eval.json."""
    _threads(threads)
    import math

    import torch

    from synthcv.genmodels.io import atomic_path
    from synthcv.genmodels.train import evaluate, load_run_config, load_split, tensors
    from synthcv.genmodels.vae import ConvVAE

    model, _ = _load_run(run_dir)
    model.to(memory_format=torch.channels_last)  # oneDNN's fast convolution layout; same values
    cfg = load_run_config(run_dir)
    res: dict[str, Any] = {"model": model.model_name}
    for split in ("train", "test"):
        x, y = tensors(load_split(cfg, split), model.levels, cfg.conditional)
        res[f"{split}_bpd"] = evaluate(model, x, y, batch_size)
        res[f"{split}_n"] = len(x)
        if isinstance(model, ConvVAE):
            xs, ys = x[:iw_limit], None if y is None else y[:iw_limit]
            gen = torch.Generator().manual_seed(0)
            tot = 0.0
            with torch.no_grad():
                for s in range(0, len(xs), 32):
                    yb = None if ys is None else ys[s : s + 32]
                    tot += float(model.iw_log_prob(xs[s : s + 32], yb, iw_samples, gen).sum())
            res[f"{split}_iw_bpd"] = -tot / (len(xs) * model.num_dims * math.log(2))
    res["gap_bpd"] = res["test_bpd"] - res["train_bpd"]
    if isinstance(model, ConvVAE):
        res["note"] = (
            f"*_bpd = negative ELBO (bound); *_iw_bpd: K={iw_samples} on <= {iw_limit} images"
        )
    with atomic_path(run_dir / "eval.json") as tmp:
        tmp.write_text(json.dumps(res, indent=2))
    for k, v in res.items():
        typer.echo(f"{k:>14}: {v:.4f}" if isinstance(v, float) else f"{k:>14}: {v}")


def _check_image_out(out: Path) -> None:
    """Reject an unsupported --out before minutes of sampling, not after."""
    if out.suffix not in (".png", ".npz"):
        raise typer.BadParameter(f"{out}: use a .npz or .png file", param_hint="--out")


def _write_image_out(
    out: Path, grid: Callable[[], Any], images: Any, labels: Any, meta: dict[str, Any], scale: int
) -> None:
    """``.png``: the picture ``grid()`` draws; ``.npz``: ``images`` + labels + meta, a
    trainable set (no picture is drawn: 10,000 samples make a large grid)."""
    from synthcv.genmodels.io import save_png, save_samples_npz

    if out.suffix == ".png":
        save_png(out, grid(), scale=scale)
    else:
        save_samples_npz(out, images, labels, meta)


@app.command()
def sample(
    run_dir: Path = typer.Argument(...),
    n: int = typer.Option(16, "-n", "--n", min=1, help="Number of samples."),
    class_: int | None = typer.Option(None, "--class", help="Class label (conditional models)."),
    out: Path = typer.Option(..., "--out", help="samples.npz (a trainable dataset) or grid.png"),
    seed: int = typer.Option(0),
    naive: bool = typer.Option(
        False, help="Use the slow naive sampler (the cached one is default)."
    ),
    batch_size: int | None = typer.Option(None),
    scale: int = typer.Option(4, help="PNG upscaling factor."),
    threads: int | None = typer.Option(None),
) -> None:
    """Draw samples; .npz = images (N,H,W) uint8 + labels int64 (-1 if unconditional) + meta."""
    _threads(threads)
    import time

    from synthcv.genmodels.io import image_grid, levels_to_uint8, to_hw_images

    _check_image_out(out)
    model, _ = _load_run(run_dir)
    if class_ is not None and model.num_classes == 0:
        raise typer.BadParameter("model is unconditional; drop --class", param_hint="--class")
    y = model.prepare_cond(class_, n)
    t0 = time.perf_counter()
    x = model.sample(n, cond=y, seed=seed, cached=not naive, batch_size=batch_size, progress=True)
    dt = time.perf_counter() - t0
    images = to_hw_images(levels_to_uint8(x.numpy(), model.levels))
    meta = dict(
        model=model.model_name,
        run_dir=str(run_dir.resolve()),
        seed=seed,
        sampler="naive" if naive else "cached",
        levels=model.levels,
    )
    labels = None if y is None else y.numpy()
    _write_image_out(out, lambda: image_grid(images), images, labels, meta, scale)
    typer.echo(f"wrote {n} samples to {out} in {dt:.1f} s ({n / dt:.2f} images/s)")


@app.command()
def complete(
    run_dir: Path = typer.Argument(...),
    known: str = typer.Option("top-half", help="top-half | left-half | bottom-half | right-half"),
    n: int = typer.Option(8, "-n", "--n", min=1, help="Test images to complete."),
    out: Path = typer.Option(
        ..., "--out", help=".png (original / given / completion rows) or .npz"
    ),
    seed: int = typer.Option(0),
    scale: int = typer.Option(4),
    threads: int | None = typer.Option(None),
) -> None:
    """Complete test images from a known region (known pixels are never changed)."""
    _threads(threads)
    import numpy as np
    import torch

    from synthcv.genmodels.io import image_grid, levels_to_uint8, to_hw_images
    from synthcv.genmodels.train import load_run_config, load_split, tensors

    _check_image_out(out)
    model, _ = _load_run(run_dir)
    cfg = load_run_config(run_dir)
    x, y = tensors(load_split(cfg, "test"), model.levels, cfg.conditional)
    x, y = x[:n], None if y is None else y[:n]
    _, h, w = model.image_shape
    mask = torch.zeros(h, w, dtype=torch.bool)
    regions = {
        "top-half": (slice(0, h // 2), slice(None)),
        "bottom-half": (slice(h // 2, h), slice(None)),
        "left-half": (slice(None), slice(0, w // 2)),
        "right-half": (slice(None), slice(w // 2, w)),
    }
    if known not in regions:
        raise typer.BadParameter(f"{known!r}: choose one of {list(regions)}", param_hint="--known")
    mask[regions[known]] = True
    if known in ("bottom-half", "right-half") and model.model_name != "conv-vae":
        typer.echo("note: autoregressive models condition only on pixels before each one.")
    done = model.complete(x, mask, cond=y, seed=seed)
    to8 = lambda t: to_hw_images(levels_to_uint8(t.numpy(), model.levels))  # noqa: E731
    orig, comp = to8(x), to8(done)

    def grid() -> Any:  # rows: the test images, what the model was given, its completions
        given = orig.copy()
        given[:, ~mask.numpy()] = 128
        return image_grid(np.concatenate([orig, given, comp]), cols=len(orig))

    meta = dict(model=model.model_name, run_dir=str(run_dir.resolve()), seed=seed, known=known)
    _write_image_out(out, grid, comp, None if y is None else y.numpy(), meta, scale)
    typer.echo(f"wrote {len(comp)} completions to {out}")


@app.command("receptive-field")
def receptive_field_cmd(
    out: Path = typer.Option(..., "--out", help="PNG to write."),
    run_dir: Path | None = typer.Option(None, "--run", help="Use this run's GatedPixelCNN."),
    size: int = typer.Option(16, help="Image size when no --run is given."),
    layers: int = typer.Option(5, help="Panels: receptive field after 1..LAYERS blocks."),
    kernel: int = typer.Option(3),
    first_kernel: int = typer.Option(7),
    row: int | None = typer.Option(None, help="Target pixel row (default: centre)."),
    col: int | None = typer.Option(None, help="Target pixel column (default: centre)."),
) -> None:
    """Draw the receptive field of one pixel after 1..k gated layers (no blind spot)."""
    from synthcv.genmodels.causality import draw_receptive_field
    from synthcv.genmodels.registry import build_model

    if run_dir is not None:
        model, _ = _load_run(run_dir)
        if model.model_name != "gated-pixelcnn":
            raise typer.BadParameter(
                "receptive-field needs a gated-pixelcnn run", param_hint="--run"
            )
    else:
        model = build_model(
            "gated-pixelcnn",
            (1, size, size),
            channels=8,
            layers=layers,
            kernel=kernel,
            first_kernel=first_kernel,
        )
    _, h, w = model.image_shape
    k = min(layers, model.num_layers)
    pixel = (h // 2 if row is None else row, w // 2 if col is None else col)
    try:
        draw_receptive_field(model, pixel, k, out)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"wrote {out}")
