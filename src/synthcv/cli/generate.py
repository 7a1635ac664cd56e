"""``synthcv generate SPEC --out DIR``: render a dataset, resumable, with a progress bar."""

from __future__ import annotations

from pathlib import Path

import typer

from synthcv.cli import errors


def register(app: typer.Typer) -> None:
    @app.command(cls=errors.Command)
    def generate(
        spec: Path = typer.Argument(..., dir_okay=False, help="YAML spec file"),
        out: Path = typer.Option(
            ..., "--out", "-o", callback=errors.output_dir, help="dataset directory to write"
        ),
        count: int | None = typer.Option(
            None, "--count", "-n", min=1, help="override the spec's count"
        ),
        workers: int = typer.Option(1, "--workers", "-j", min=1, help="worker processes"),
        overwrite: bool = typer.Option(False, "--overwrite", help="delete DIR first"),
        track: bool = typer.Option(
            True, "--track/--no-track", help="log the run to MLflow (SYNTHCV_TRACKING=0 disables)"
        ),
    ) -> None:
        """Render SPEC into DIR. Re-running after an interruption finishes the job."""
        from rich.console import Console

        from synthcv.pipeline import generate as run
        from synthcv.spec import load_spec

        # errors (a bad spec or resource: exit 2; a failed sample: exit 1) go through cli.errors
        parsed = load_spec(spec)
        manifest = _tracked(parsed, spec, out, count, workers, overwrite, track, run)
        Console().print(
            f"[green]done[/]: {manifest['count']} samples in {out} "
            f"(spec {manifest['spec_hash'][:12]}, backend {manifest['backend']['name']})"
        )


def _tracked(parsed, spec_path, out, count, workers, overwrite, track, run):
    """Run generation as a tracked run (see synthcv.tracking.track_generate)."""
    from synthcv.tracking import track_generate

    return track_generate(
        lambda: run(parsed, out, count=count, workers=workers, overwrite=overwrite),
        spec_path=spec_path,
        out=out,
        count=count or parsed.count,
        workers=workers,
        backend=parsed.renderer.backend,
        spec_hash=parsed.spec_hash,
        contact_sheet=lambda png: _write_contact_sheet(Path(out), png),
        enabled=track,
    )


def _write_contact_sheet(dataset_dir: Path, png: Path) -> None:
    """A contact sheet of the new dataset (what people look at first)."""
    from synthcv.format import open_dataset
    from synthcv.tools.preview import write_preview

    write_preview(open_dataset(dataset_dir), png, n=8, cols=2)
