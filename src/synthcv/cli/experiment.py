"""``synthcv experiment run CONFIG``: run a training/evaluation recipe (see synthcv.tasks)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Train-on-synthetic / test-on-real experiments.")


@app.command("run")
def run(
    config: Path = typer.Argument(..., help="Experiment YAML (see examples/experiments)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Results dir (experiments/NAME)."),
    seeds: str | None = typer.Option(None, help="Override seeds, e.g. '0,1,2'."),
    epochs: int | None = typer.Option(None, help="Override every stage's epochs (quick runs)."),
    track: bool = typer.Option(True, "--track/--no-track", help="Log the run to MLflow."),
) -> None:
    """Run CONFIG over its seeds; prints mean ± 95% interval per metric."""
    from synthcv.tasks.experiment import load_config, run_experiment, with_overrides
    from synthcv.validation import ConfigError

    cfg = load_config(config)
    if seeds:
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            msg = f"got {seeds!r}, expected integers separated by commas (0,1,2)"
            raise typer.BadParameter(msg, param_hint=["--seeds"]) from None
        try:
            cfg = with_overrides(cfg, seeds=seed_list)
        except ConfigError as exc:
            raise typer.BadParameter("; ".join(exc.problems), param_hint=["--seeds"]) from None
    if epochs is not None:
        try:
            cfg = with_overrides(cfg, epochs=epochs)
        except ConfigError as exc:
            raise typer.BadParameter("; ".join(exc.problems), param_hint=["--epochs"]) from None
    result = run_experiment(cfg, out=out, tracking=track)
    typer.echo(result["table"])
    if result.get("run_id"):
        typer.echo(f"MLflow run: {result['run_id']}")
