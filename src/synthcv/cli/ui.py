"""``synthcv ui``: the MLflow UI on this folder's runs, opened on the runs table."""

from __future__ import annotations

import os
import subprocess

import typer

from synthcv.cli import errors


def ui(
    port: int = typer.Option(5000, "--port", min=1, max=65535, help="Port to serve on."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Interface to serve on (loopback: this machine only)."
    ),
) -> None:
    """Serve the MLflow UI for the store runs log to here (mlflow.db in this folder, or
    MLFLOW_TRACKING_URI) and print the address of the synthcv experiment's runs table. Ctrl-C
    stops it."""
    from synthcv.tracking import ui_command, ui_target, ui_url

    uri, experiment_id = ui_target()
    typer.echo(f"MLflow UI for {uri}\nopen {ui_url(host, port, experiment_id)}", err=True)
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true"),
    }
    try:
        code = subprocess.call(ui_command(uri, host, port), env=env)
    except KeyboardInterrupt:
        code = 0
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("ui", cls=errors.Command)(ui)
