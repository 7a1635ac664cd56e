"""``synthcv loop CONFIG``: one continuous-training pass over a production batch."""

from __future__ import annotations

from pathlib import Path

import typer

from synthcv.cli import errors


def loop(
    config: Path = typer.Argument(..., help="The loop config (YAML); see docs/monitoring.md."),
    current: str | None = typer.Option(
        None, "--current", help="The production batch (overrides the config's current:)."
    ),
) -> None:
    """Monitor the batch; on drift, render targeted synthetic data, fine-tune the champion with
    replay, and promote it only if the gate passes. Re-running on the same batch does nothing.
    Writes OUT/batches/<key>/decision.json; exit 0 when the pass completed (whatever it
    decided), 2 for bad input, 1 when a step failed."""
    from synthcv.loop import load_loop_config, run_loop

    cfg = load_loop_config(config, {"current": current})
    run_loop(cfg, say=typer.echo)


def register(app: typer.Typer) -> None:
    app.command("loop", cls=errors.Command)(loop)
