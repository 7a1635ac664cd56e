"""``synthcv genmodel ...``: train, evaluate, sample and inspect deep generative image models.

torch is imported inside the commands so ``synthcv --help`` stays fast.
"""

from __future__ import annotations

import enum
import inspect
import json
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from synthcv.cli import errors
from synthcv.genmodels.config import TrainConfig
from synthcv.validation import validation_problems

# ---- `genmodel train`'s options, derived from TrainConfig -------------------------------------
# Every TrainConfig field is a flag of the same name (``batch_size`` -> ``--batch-size``), default
# and help; a Literal field is an enum of its values, so a bad choice is a usage error naming the
# flag. Values are validated by TrainConfig itself, its problems reported against the flags.
# ``hparams`` is the one field with a command-line form of its own: repeated ``--param K=V``.
_CLI_FORMS = {"hparams": "--param"}


def _choice_enum(field: str, annotation: Any) -> type[enum.StrEnum]:
    name = "".join(part.title() for part in field.split("_"))
    return enum.StrEnum(name, {v: v for v in typing.get_args(annotation)})


_CHOICES: dict[str, type[enum.StrEnum]] = {
    name: _choice_enum(name, info.annotation)
    for name, info in TrainConfig.model_fields.items()
    if typing.get_origin(info.annotation) is typing.Literal
}
LrSchedule = _CHOICES["lr_schedule"]
Precision = _CHOICES["precision"]


def train_flag(field: str) -> str:
    """The ``genmodel train`` flag that sets TrainConfig ``field``."""
    return _CLI_FORMS.get(field, "--" + field.replace("_", "-"))


def _bounds(info: Any) -> str:
    """A field's numeric constraints as a range: ``>=1``, ``>0``, ``0.0<=x<1.0`` (never starting
    with a letter, which rich would read as markup inside ``[...]``)."""
    lower = upper = None  # (bound, inclusive)
    for m in info.metadata:
        for attr, inclusive in (("ge", True), ("gt", False)):
            if getattr(m, attr, None) is not None:
                lower = (getattr(m, attr), inclusive)
        for attr, inclusive in (("le", True), ("lt", False)):
            if getattr(m, attr, None) is not None:
                upper = (getattr(m, attr), inclusive)
    if lower and upper:
        return f"{lower[0]}{'<=' if lower[1] else '<'}x{'<=' if upper[1] else '<'}{upper[0]}"
    if lower:
        return f"{'>=' if lower[1] else '>'}{lower[0]}"
    if upper:
        return f"{'<=' if upper[1] else '<'}{upper[0]}"
    return ""


def _config_parameters() -> list[inspect.Parameter]:
    params = []
    for name, info in TrainConfig.model_fields.items():
        if name in _CLI_FORMS:
            continue
        annotation, default = info.annotation, info.default
        if name in _CHOICES:
            annotation, default = _CHOICES[name], _CHOICES[name](default)
        bounds = _bounds(info)
        help_text = (info.description or "") + (f" [{bounds}]" if bounds else "")
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=typer.Option(default, help=help_text),  # typer names it train_flag(name)
                annotation=annotation,
            )
        )
    return params


def _with_config_options(fn: Callable[..., None]) -> Callable[..., None]:
    """Give ``fn(cli-only options..., **fields)`` one option per TrainConfig field, after its
    first parameter (typer reads the command's options from ``__signature__``)."""
    sig = inspect.signature(fn, eval_str=True)
    own = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in sig.parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    params = [own[0], *_config_parameters(), *own[1:]]
    fn.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    return fn


def train_config(options: dict[str, Any], params: list[str]) -> TrainConfig:
    """The TrainConfig of parsed ``genmodel train`` options; a bad value is a usage error
    (exit code 2) naming its flag."""
    values = {k: v.value if isinstance(v, enum.Enum) else v for k, v in options.items()}
    values["hparams"] = _parse_params(params)
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as err:
        problems = validation_problems(err, TrainConfig)
    flags = [train_flag(str(p.loc[0])) if p.loc else "(options)" for p in problems]
    if len(problems) == 1:
        raise typer.BadParameter(problems[0].detail, param_hint=flags)
    detail = "; ".join(f"{f}: {p.detail}" for f, p in zip(flags, problems, strict=True))
    raise typer.BadParameter(detail, param_hint=list(dict.fromkeys(flags)))


app = errors.Typer(
    no_args_is_help=True, help="Deep generative image models (PixelCNN family, VAE)."
)


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
@_with_config_options
def train(
    out: Path = typer.Option(
        ..., "--out", callback=errors.output_dir, help="Run directory (checkpoints, metrics)."
    ),
    param: list[str] = typer.Option([], help="Model hyper-parameter KEY=VALUE (JSON), repeatable."),
    resume: bool = typer.Option(False, help="Continue the run in --out from its checkpoint."),
    threads: int | None = typer.Option(None, help="Torch CPU threads."),
    track: bool | None = typer.Option(
        None,
        "--track/--no-track",
        help="Log the run to MLflow (default: on, unless SYNTHCV_TRACKING=0).",
    ),
    **config: Any,
) -> None:
    """Train a model; writes run.json, checkpoint.pt and metrics.jsonl into --out.

    Every TrainConfig field is an option (see synthcv.genmodels.config)."""
    cfg = train_config(config, param)
    _threads(threads)
    from synthcv.genmodels.train import train as run_train
    from synthcv.tracking import track_genmodel_train

    # a bad --data or --out: exit 2; a diverged run (FloatingPointError): exit 1 (cli.errors)
    summary = track_genmodel_train(
        lambda: run_train(cfg, out, resume=resume), config=cfg.to_json(), out=out, enabled=track
    )
    typer.echo(json.dumps(summary, indent=2))


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
    out: Path = typer.Option(
        ...,
        "--out",
        callback=errors.output_file,
        help="Output: samples.npz (a trainable dataset) or grid.png.",
    ),
    seed: int = typer.Option(0),
    naive: bool = typer.Option(
        False, help="Use the slow naive sampler (the cached one is default)."
    ),
    batch_size: int = typer.Option(
        1000,
        min=1,
        help="Images sampled at once: the cached sampler holds every layer's activations for "
        "the batch (10,000 at once with 64 channels exceeded 24 GB and was killed).",
    ),
    scale: int = typer.Option(4, help="PNG upscaling factor."),
    threads: int | None = typer.Option(None),
    temperature: float = typer.Option(
        1.0,
        min=0.01,
        max=10.0,
        help="Sharpen (< 1) or flatten (> 1) every pixel's distribution: p^(1/T), "
        "renormalized (autoregressive models).",
    ),
) -> None:
    """Draw samples; .npz = images (N,H,W) uint8 + labels int64 (-1 if unconditional) + meta."""
    _threads(threads)
    import time

    from synthcv.genmodels.io import image_grid, levels_to_uint8, to_hw_images

    _check_image_out(out)
    model, _ = _load_run(run_dir)
    if class_ is not None and model.num_classes == 0:
        raise typer.BadParameter("model is unconditional; drop --class", param_hint="--class")
    if temperature != 1.0 and model.model_name == "conv-vae":
        raise typer.BadParameter(
            "temperature applies to autoregressive models, not conv-vae",
            param_hint="--temperature",
        )
    y = model.prepare_cond(class_, n)
    t0 = time.perf_counter()
    x = model.sample(
        n,
        cond=y,
        seed=seed,
        cached=not naive,
        batch_size=batch_size,
        progress=True,
        temperature=temperature,
    )
    dt = time.perf_counter() - t0
    images = to_hw_images(levels_to_uint8(x.numpy(), model.levels))
    meta = dict(
        model=model.model_name,
        run_dir=str(run_dir.resolve()),
        seed=seed,
        sampler="naive" if naive else "cached",
        levels=model.levels,
        temperature=temperature,
    )
    labels = None if y is None else y.numpy()
    _write_image_out(out, lambda: image_grid(images), images, labels, meta, scale)
    typer.echo(f"wrote {n} samples to {out} in {dt:.1f} s ({n / dt:.2f} images/s)")


@app.command()
def classify(
    run_dir: Path = typer.Argument(..., help="Run directory of a class-conditional model."),
    split: str = typer.Option("test", help="Which split of the run's data to classify."),
    limit: int | None = typer.Option(None, min=1, help="Classify only the first N images."),
    prior: str = typer.Option(
        "uniform", help="Class prior: 'uniform' or 'train' (the training split's class shares)."
    ),
    out: Path | None = typer.Option(
        None, "--out", callback=errors.output_file, help="Write the result as JSON here."
    ),
    batch_size: int | None = typer.Option(None, min=1),
    threads: int | None = typer.Option(None),
) -> None:
    """Classify real images by Bayes' rule over the model's class-conditional likelihoods:
    argmax_y log p(x|y) + log p(y). Prints accuracy, per-class accuracy and the margin."""
    _threads(threads)
    import numpy as np

    from synthcv.genmodels.classify import likelihood_classify
    from synthcv.genmodels.io import atomic_path
    from synthcv.genmodels.train import load_run_config, load_split, tensors

    if split not in ("train", "test"):
        raise typer.BadParameter(f"got {split!r}, expected train or test", param_hint="--split")
    if prior not in ("uniform", "train"):
        raise typer.BadParameter(f"got {prior!r}, expected uniform or train", param_hint="--prior")
    model, _ = _load_run(run_dir)
    if not model.num_classes:
        raise typer.BadParameter(
            f"{run_dir}: the model is unconditional (train it with --conditional)",
            param_hint="RUN_DIR",
        )
    cfg = load_run_config(run_dir)
    data = load_split(cfg, split)
    x, _ = tensors(data, model.levels, False)
    labels = np.asarray(data.labels)
    if limit is not None:
        x, labels = x[:limit], labels[:limit]
    class_prior = None
    if prior == "train":
        train_labels = np.asarray(load_split(cfg, "train").labels)
        class_prior = np.bincount(train_labels, minlength=model.num_classes).astype(float)
    res = likelihood_classify(model, x, labels, class_prior, batch_size)
    res.pop("predictions")
    res |= {"model": model.model_name, "run_dir": str(run_dir), "split": split, "prior": prior}
    if out is not None:
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(res, indent=2))
    typer.echo(
        f"likelihood classifier ({model.model_name}, {split}, {res['n']} images, {prior} prior): "
        f"accuracy {res['accuracy'] * 100:.2f}%, true-class posterior "
        f"{res['true_class_posterior']:.3f}, margin {res['margin_bpd']:+.4f} bits/dim"
    )
    typer.echo(
        "per class: "
        + ", ".join(f"{c}: {a * 100:.1f}" for c, a in res["per_class_accuracy"].items())
    )


@app.command()
def complete(
    run_dir: Path = typer.Argument(...),
    known: str = typer.Option(
        "top-half", help="Given part: top-half | left-half | bottom-half | right-half."
    ),
    n: int = typer.Option(8, "-n", "--n", min=1, help="Test images to complete."),
    out: Path = typer.Option(
        ...,
        "--out",
        callback=errors.output_file,
        help="Output: .png (original / given / completion rows) or .npz.",
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
    out: Path = typer.Option(..., "--out", callback=errors.output_file, help="PNG to write."),
    run_dir: Path | None = typer.Option(None, "--run", help="Use this run's GatedPixelCNN."),
    size: int = typer.Option(16, min=1, help="Image size when no --run is given."),
    layers: int = typer.Option(5, min=1, help="Panels: receptive field after 1..LAYERS blocks."),
    kernel: int = typer.Option(3, min=1),
    first_kernel: int = typer.Option(7, min=1),
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
