"""``synthcv denoise``: a learned denoiser on a pairs dataset, against classical baselines."""

from __future__ import annotations

from pathlib import Path

import typer

from synthcv.cli import errors

app = errors.Typer(no_args_is_help=True, help="Denoising on (noisy, clean) pairs datasets.")

PAIRS_HELP = "a synthcv dataset generated with outputs: {pairs: true}"


@app.command("train")
def train(
    dataset: Path = typer.Argument(..., help=f"Training pairs: {PAIRS_HELP}."),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        callback=errors.output_dir,
        help="Run directory: model.pt, config.json, results.json and results.md go here.",
    ),
    test: Path | None = typer.Option(
        None,
        "--test",
        help="Test pairs, scored once at the end and never used for a choice (same form as "
        "DATASET).",
    ),
    val_fraction: float = typer.Option(
        0.1,
        min=0.01,
        max=0.9,
        help="Part of DATASET held out for validation (the checkpoint and the TV weight are "
        "chosen on it).",
    ),
    steps: int = typer.Option(1000, min=1, help="Training steps."),
    batch_size: int = typer.Option(16, min=1, help="Patches per step."),
    patch: int = typer.Option(64, min=8, help="Side of the square training crops in pixels."),
    lr: float = typer.Option(1e-3, min=0.0, help="Adam learning rate."),
    depth: int = typer.Option(8, min=2, help="DnCNN depth (conv layers)."),
    width: int = typer.Option(32, min=1, help="DnCNN width (channels of the hidden layers)."),
    limit: int | None = typer.Option(
        None, min=2, help="Use only the first N pairs of DATASET (and of --test)."
    ),
    seed: int = typer.Option(0, help="Seed of the train/val cut, the crops and the weights."),
    threads: int | None = typer.Option(None, min=1, help="Torch CPU threads (default: torch's)."),
    track: bool | None = typer.Option(
        None,
        "--track/--no-track",
        help="Log the run to MLflow (default: on, unless SYNTHCV_TRACKING=0).",
    ),
) -> None:
    """Train a DnCNN on DATASET's train part and compare it with non-local means, total
    variation and wavelet denoising (PSNR, SSIM; the noisy input is the floor)."""
    from rich.console import Console
    from rich.progress import Progress

    from synthcv.tasks.denoise import results_markdown, train_and_evaluate
    from synthcv.tracking import track_denoise_train

    if threads:
        import torch

        torch.set_num_threads(threads)
    with Progress(transient=True, console=Console(stderr=True)) as prog:
        task = prog.add_task("training the denoiser", total=steps)
        best = [float("-inf")]

        def progress(step: int, total: int, val_psnr: float | None) -> None:
            if val_psnr is not None:
                best[0] = max(best[0], val_psnr)
                prog.update(task, description=f"training the denoiser (val {best[0]:.2f} dB)")
            prog.update(task, completed=step)

        settings = {
            "val_fraction": val_fraction,
            "limit": limit,
            "steps": steps,
            "batch_size": batch_size,
            "patch": patch,
            "lr": lr,
            "depth": depth,
            "width": width,
            "seed": seed,
        }
        results = track_denoise_train(
            lambda: train_and_evaluate(dataset, out, test=test, progress=progress, **settings),
            params=settings,
            dataset=dataset,
            test=test,
            out=out,
            enabled=track,
        )
    typer.echo(results_markdown(results))
    typer.echo(f"wrote {out / 'model.pt'}, config.json, results.json and results.md")


@app.command("apply")
def apply(
    run_dir: Path = typer.Argument(..., help="Run directory written by `synthcv denoise train`."),
    source: Path = typer.Argument(
        ..., help="A synthcv dataset (its rgb images) or a folder of image files."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        callback=errors.output_dir,
        help="Folder for the denoised images (one PNG per input).",
    ),
) -> None:
    """Denoise the images of SOURCE with a trained model."""
    from synthcv.tasks.denoise import apply_denoiser

    written = apply_denoiser(run_dir, source, out)
    typer.echo(f"wrote {len(written)} denoised images to {out}")
