"""``synthcv generate SPEC --out DIR``: render a dataset, resumable, with a progress bar."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def generate(
        spec: Path = typer.Argument(..., help="YAML spec file"),
        out: Path = typer.Option(..., "--out", "-o", help="dataset directory to write"),
        count: int | None = typer.Option(
            None, "--count", "-n", min=1, help="override the spec's count"
        ),
        workers: int = typer.Option(1, "--workers", "-j", min=1, help="worker processes"),
        overwrite: bool = typer.Option(False, "--overwrite", help="delete DIR first"),
        track: bool = typer.Option(
            True, "--track/--no-track", help="log the run to MLflow (SYNTHCV_TRACKING=0 disables)"
        ),
        asset_root: Path | None = typer.Option(
            None,
            "--asset-root",
            help="refuse asset files and extends: outside DIR (default: $SYNTHCV_ASSET_ROOT); "
            "for specs from someone else",
        ),
    ) -> None:
        """Render SPEC into DIR. Re-running after an interruption finishes the job."""
        from rich.console import Console
        from rich.markup import escape

        from synthcv.pipeline import GenerationError
        from synthcv.pipeline import generate as run
        from synthcv.spec import SpecError, load_spec

        err = Console(stderr=True)
        try:
            parsed = load_spec(spec, asset_root=asset_root)
        except SpecError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        try:
            manifest = _tracked(parsed, spec, out, count, workers, overwrite, track, run)
        except SpecError as exc:  # resources (fonts, meshes, textures) checked before writing
            named = SpecError(exc.problems, str(spec)) if exc.source == "spec" else exc
            err.print(f"[red]error:[/] {escape(str(named))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except GenerationError as exc:
            err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
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
