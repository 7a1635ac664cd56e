"""``synthcv generate SPEC --out DIR``: render a dataset, resumable, with a progress bar."""

from __future__ import annotations

import enum
import time
import warnings
from pathlib import Path

import typer

from synthcv.cli import errors


class Executor(enum.StrEnum):
    local = "local"
    ray = "ray"


class OnEmpty(enum.StrEnum):
    warn = "warn"
    fail = "fail"
    allow = "allow"


def register(app: typer.Typer) -> None:
    @app.command(cls=errors.Command)
    def generate(
        spec: Path = typer.Argument(..., dir_okay=False, help="YAML spec file."),
        out: Path = typer.Option(
            ..., "--out", "-o", callback=errors.output_dir, help="Dataset directory to write."
        ),
        count: int | None = typer.Option(
            None, "--count", "-n", min=1, help="Override the spec's count."
        ),
        workers: int = typer.Option(1, "--workers", "-j", min=1, help="Worker processes."),
        executor: Executor = typer.Option(
            Executor.local,
            "--executor",
            help="Where shards render: local (this machine's worker processes) or ray (one "
            "Ray task per shard; docs/scale.md).",
        ),
        address: str | None = typer.Option(
            None,
            "--address",
            help="Ray: the cluster to join, auto or ray://HOST:PORT (default: RAY_ADDRESS, "
            "else a new local Ray).",
        ),
        num_cpus_per_task: int = typer.Option(
            1, "--num-cpus-per-task", min=1, help="Ray: CPUs each shard task reserves."
        ),
        overwrite: bool = typer.Option(False, "--overwrite", help="Delete DIR first."),
        on_empty: OnEmpty = typer.Option(
            OnEmpty.warn,
            "--on-empty",
            help="Samples showing no labelled object: warn (list them at the end), fail (stop"
            " at the first), allow (background-only samples on purpose).",
        ),
        track: bool | None = typer.Option(
            None,
            "--track/--no-track",
            help="Log the run to MLflow (default: on, unless SYNTHCV_TRACKING=0).",
        ),
        asset_root: Path | None = typer.Option(
            None,
            "--asset-root",
            help="Refuse asset files and extends: outside DIR (default: $SYNTHCV_ASSET_ROOT); "
            "for specs from someone else.",
        ),
        profile: bool = typer.Option(
            False,
            "--profile",
            help="Print where the time went: milliseconds per sample in each pipeline stage "
            "(summed over workers) and its share.",
        ),
    ) -> None:
        """Render SPEC into DIR. Re-running after an interruption finishes the job."""
        from rich.console import Console

        from synthcv.pipeline import EmptySamplesWarning
        from synthcv.pipeline import generate as run
        from synthcv.spec import load_spec

        # errors (a bad spec or resource: exit 2; a failed sample: exit 1) go through cli.errors
        parsed = load_spec(spec, asset_root=asset_root)
        times: dict[str, float] = {}
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EmptySamplesWarning)
            placement = {
                "executor": executor.value,
                "ray_address": address,
                "num_cpus_per_task": num_cpus_per_task,
                "profile_into": times,
            }
            manifest = _tracked(
                parsed, spec, out, count, workers, overwrite, track, run, on_empty.value, placement
            )
        for w in caught:
            if issubclass(w.category, EmptySamplesWarning):
                typer.echo(f"warning: {w.message}", err=True)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        Console().print(
            f"[green]done[/]: {_what(manifest)} in {out} "
            f"(spec {manifest['spec_hash'][:12]}, backend {manifest['backend']['name']})"
        )
        if profile:
            _print_profile(times, int(manifest["count"]), time.perf_counter() - t0, workers)


def _print_profile(times: dict[str, float], count: int, wall: float, workers: int) -> None:
    """Milliseconds per sample in each stage, and its share of the staged time."""
    from rich.console import Console
    from rich.table import Table

    from synthcv.pipeline.profile import STAGES

    staged = sum(times.values())
    table = Table(title=f"where the time went ({count} samples, {workers} worker(s))")
    table.add_column("stage")
    table.add_column("ms / sample", justify="right")
    table.add_column("share", justify="right")
    for name in [*STAGES, *sorted(set(times) - set(STAGES))]:
        if name in times:
            ms = 1000 * times[name] / max(count, 1)
            table.add_row(name, f"{ms:.1f}", f"{100 * times[name] / max(staged, 1e-12):.0f}%")
    table.add_row("all stages", f"{1000 * staged / max(count, 1):.1f}", "100%")
    Console().print(table)
    Console().print(
        f"wall {wall:.1f} s: {count / max(wall, 1e-12):.1f} samples/s (a resumed run times only"
        " the shards it rendered; start-up, preflight and tracking are outside the stages)"
    )


def _tracked(parsed, spec_path, out, count, workers, overwrite, track, run, on_empty, placement):
    """Run generation as a tracked run (see synthcv.tracking.track_generate)."""
    from synthcv.tracking import track_generate

    return track_generate(
        lambda: run(
            parsed,
            out,
            count=count,
            workers=workers,
            overwrite=overwrite,
            on_empty=on_empty,
            label=str(spec_path),
            **placement,
        ),
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


def _what(manifest: dict) -> str:
    """'16 samples', or '8 clips (192 frames)' for a sequence dataset."""
    seq = manifest.get("sequence")
    if seq:
        return f"{seq['clips']} clips ({manifest['count']} frames)"
    return f"{manifest['count']} samples"
