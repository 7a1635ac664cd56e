"""``synthcv experiment run CONFIG``: run a training/evaluation recipe (see synthcv.tasks)."""

from __future__ import annotations

from pathlib import Path

import typer

from synthcv.cli import errors

app = errors.Typer(no_args_is_help=True, help="Train-on-synthetic / test-on-real experiments.")


@app.command("run")
def run(
    config: Path = typer.Argument(
        ..., dir_okay=False, help="Experiment YAML (see examples/experiments)."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", callback=errors.output_dir, help="Results dir (experiments/NAME)."
    ),
    seeds: str | None = typer.Option(None, help="Override seeds, e.g. '0,1,2'."),
    epochs: int | None = typer.Option(None, help="Override every stage's epochs (quick runs)."),
    track: bool | None = typer.Option(
        None,
        "--track/--no-track",
        help="Log the run to MLflow (default: on, unless SYNTHCV_TRACKING=0).",
    ),
    resume: bool = typer.Option(
        True,
        "--resume/--no-resume",
        help="Continue from the checkpoints an interrupted run of the same config and data "
        "left in --out (results as if uninterrupted); --no-resume starts over.",
    ),
) -> None:
    """Run CONFIG over its seeds; prints mean ± 95% interval per metric."""
    from synthcv.tasks.experiment import load_config, run_experiment, with_overrides

    seed_list = None
    if seeds:
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            msg = f"got {seeds!r}, expected integers separated by commas (0,1,2)"
            raise typer.BadParameter(msg, param_hint=["--seeds"]) from None
    cfg = load_config(config)  # a missing, non-YAML or invalid config: exit 2 (cli.errors)
    if seed_list is not None:
        with errors.blame("--seeds"):
            cfg = with_overrides(cfg, seeds=seed_list)
    if epochs is not None:
        with errors.blame("--epochs"):
            cfg = with_overrides(cfg, epochs=epochs)
    result = run_experiment(cfg, out=out, tracking=track, resume=resume)
    if result["resumed"]:
        stages = ", ".join(p.rstrip("/") for p in result["resumed"])
        typer.echo(f"resumed from checkpoints: {stages}", err=True)
    typer.echo(result["table"])
    if result.get("run_id"):
        typer.echo(f"MLflow run: {result['run_id']}")
