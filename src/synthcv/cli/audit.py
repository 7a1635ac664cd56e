"""``synthcv audit MODEL DATASET``: a model's metrics on a synthcv dataset, factor by factor."""

from __future__ import annotations

from pathlib import Path

import typer

from synthcv.cli import errors


def audit(
    model: str = typer.Argument(
        ...,
        help="A synthcv experiment output dir or model.pt, an MLflow model URI, a TorchScript "
        "file, or module:function.",
    ),
    dataset: Path = typer.Argument(..., help="A synthcv dataset directory, typically a sweep."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write audit.json, audit.md and metric-vs-factor plots here."
    ),
    factor: list[str] | None = typer.Option(
        None,
        "--factor",
        "-f",
        help="Factor to slice by (repeatable); default: the swept value "
        "of a sweep, else every per-image factor.",
    ),
    bins: int = typer.Option(5, min=1, help="Bins for numeric factors (swept values: one each)."),
    score_threshold: float = typer.Option(
        0.3, min=0.0, max=1.0, help="Score a detection needs to count towards recall."
    ),
) -> None:
    """Run MODEL over DATASET and report COCO metrics overall and by factor, worst first."""
    from synthcv.tasks.audit import audit as run_audit
    from synthcv.tasks.audit import audit_markdown

    result = run_audit(
        model, dataset, out, factors=factor or None, bins=bins, score_threshold=score_threshold
    )
    typer.echo(audit_markdown(result))
    if out is not None:
        typer.echo(f"wrote {out}/audit.json, audit.md and plots")


def register(app: typer.Typer) -> None:
    app.command("audit", cls=errors.Command)(audit)
