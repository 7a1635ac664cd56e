"""``synthcv monitor REFERENCE CURRENT``: data drift, with an exit code a pipeline branches on."""

from __future__ import annotations

from pathlib import Path

import typer

from synthcv.cli import errors
from synthcv.cli.compare import SOURCE_HELP, resolve_embedding

#: Exit status when drift is found (0: none; 2: bad input; 1: a runtime failure).
DRIFT_EXIT_CODE = 3


def monitor(
    reference: str = typer.Argument(..., help=f"What the model was trained on: {SOURCE_HELP}."),
    current: str = typer.Argument(..., help=f"What it sees now: {SOURCE_HELP}."),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        callback=errors.output_dir,
        help="Write drift.json, drift.md and drift.html here.",
    ),
    n: int | None = typer.Option(
        None, min=2, help="Use a seeded random subset of at most N images of each set."
    ),
    alpha: float = typer.Option(
        0.05, min=1e-6, max=0.5, help="Chance of any false alarm on undrifted data (Holm)."
    ),
    embedding: str = typer.Option(
        "auto",
        help="Embedding drift (MMD): 'auto' (the cached MNIST CNN of `synthcv compare`), "
        "'pixels', 'none', or a SmallCNN state-dict .pt file.",
    ),
    permutations: int = typer.Option(200, min=19, help="Permutations of the MMD test."),
    mnist: str | None = typer.Option(None, help="Path of mnist-real-8000.npz (default: found)."),
    cache: Path | None = typer.Option(None, help="Where the default embedding is cached."),
    seed: int = typer.Option(0, help="Seed of the subsets and the permutations."),
) -> None:
    """Has CURRENT drifted from REFERENCE? Per-feature tests on image statistics, the class mix
    and a classifier's embedding; exit 0 when nothing drifted, 3 when drift is found."""
    from synthcv.monitor.drift import detect_drift
    from synthcv.monitor.report import to_markdown, write_report
    from synthcv.tasks.compare import load_compare_source

    with errors.blame("REFERENCE"):
        ref = load_compare_source(reference, n, seed, mnist)
    with errors.blame("CURRENT"):
        cur = load_compare_source(current, n, seed + 1, mnist)
    emb = resolve_embedding(embedding, cache, mnist, 0, allow_none=True)
    report = detect_drift(
        ref.images,
        cur.images,
        reference_labels=ref.labels,
        current_labels=cur.labels,
        reference_embedding=None if emb is None else emb(ref.images),
        current_embedding=None if emb is None else emb(cur.images),
        alpha=alpha,
        permutations=permutations,
        seed=seed,
        names=(reference, current),
    )
    report.meta["embedding"] = None if emb is None else emb.name
    typer.echo(to_markdown(report))
    if out is not None:
        paths = write_report(report, out)
        typer.echo(f"wrote {', '.join(str(p) for p in paths)}")
    if report.drifted:
        raise typer.Exit(DRIFT_EXIT_CODE)


def register(app: typer.Typer) -> None:
    app.command("monitor", cls=errors.Command)(monitor)
