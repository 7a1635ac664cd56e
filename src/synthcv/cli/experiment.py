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
    from synthcv.tasks.experiment import load_config, run_experiment

    cfg = load_config(config)
    update: dict = {}
    if seeds:
        update["seeds"] = [int(s) for s in seeds.split(",") if s.strip()]
    if epochs is not None:
        update["train"] = cfg.train.model_copy(update={"epochs": epochs})
        if cfg.finetune is not None:
            update["finetune"] = cfg.finetune.model_copy(update={"epochs": epochs})
    if update:
        cfg = cfg.model_copy(update=update)
    result = run_experiment(cfg, out=out, tracking=track)
    typer.echo(result["table"])
    if result.get("run_id"):
        typer.echo(f"MLflow run: {result['run_id']}")
