"""``synthcv monitor REFERENCE CURRENT``: data, prediction and performance drift, with an exit
code a pipeline branches on."""

from __future__ import annotations

from pathlib import Path

import typer

from synthcv.cli import errors
from synthcv.cli.compare import resolve_embedding
from synthcv.monitor.sources import SOURCE_HELP

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
    model: str | None = typer.Option(
        None,
        "--model",
        help="A classifier (.pt checkpoint or state dict, a directory holding model.pt, or an "
        "MLflow URI runs:/... or models:/NAME@ALIAS): adds prediction drift, its embedding, "
        "and with labels accuracy, calibration (ECE) and slices; a label-free estimate always. "
        "Or a detector (anything `synthcv audit` takes) on COCO / synthcv sets: detection "
        "counts, scores, sizes and classes, and COCO AP.",
    ),
    n: int | None = typer.Option(
        None, min=2, help="Use a seeded random subset of at most N images of each set."
    ),
    alpha: float = typer.Option(
        0.05, min=1e-6, max=0.5, help="Chance of any false alarm on undrifted data (Holm)."
    ),
    embedding: str = typer.Option(
        "auto",
        help="Embedding drift (MMD): 'auto' (the --model's own features, else the cached "
        "MNIST CNN of `synthcv compare`), 'pixels', 'none', or a SmallCNN state-dict .pt file.",
    ),
    permutations: int = typer.Option(200, min=19, help="Permutations of the MMD test."),
    mnist: str | None = typer.Option(None, help="Path of mnist-real-8000.npz (default: found)."),
    cache: Path | None = typer.Option(None, help="Where the default embedding is cached."),
    seed: int = typer.Option(0, help="Seed of the subsets and the permutations."),
    track: bool | None = typer.Option(
        None,
        "--track/--no-track",
        help="Log the run to MLflow (default: on, unless SYNTHCV_TRACKING=0).",
    ),
) -> None:
    """Has CURRENT drifted from REFERENCE? Per-feature tests on image statistics, objects, the
    class mix, a model's predictions and embedding; exit 0 when nothing drifted, 3 when drift
    is found."""
    from synthcv.monitor.report import to_markdown, write_report
    from synthcv.monitor.run import monitor_sets, track_monitor
    from synthcv.monitor.sources import load_monitor_source

    with errors.blame("REFERENCE"):
        ref = load_monitor_source(reference, n, seed, mnist)
    with errors.blame("CURRENT"):
        cur = load_monitor_source(current, n, seed + 1, mnist)
    clf, clf_name = None, ""
    if model is not None:
        from synthcv.monitor.run import load_monitor_model

        with errors.blame("--model"):
            clf, clf_name = load_monitor_model(model)
    emb = None
    if not (embedding == "auto" and clf is not None and hasattr(clf, "in_channels")):
        emb = resolve_embedding(embedding, cache, mnist, 0, allow_none=True)
    report = monitor_sets(
        ref,
        cur,
        model=clf,
        model_name=clf_name,
        embedding=emb,
        embedding_name=None if emb is None else emb.name,
        alpha=alpha,
        permutations=permutations,
        seed=seed,
    )
    typer.echo(to_markdown(report))
    files = write_report(report, out) if out is not None else []
    if files:
        typer.echo(f"wrote {', '.join(str(p) for p in files)}")
    params = {
        "alpha": alpha,
        "n": n,
        "embedding": embedding,
        "model": model,
        "permutations": permutations,
        "seed": seed,
    }
    track_monitor(
        report,
        {"reference": ref.digest, "current": cur.digest},
        params,
        files,
        enabled=track,  # None: SYNTHCV_TRACKING decides
    )
    if report.drifted:
        raise typer.Exit(DRIFT_EXIT_CODE)


def register(app: typer.Typer) -> None:
    app.command("monitor", cls=errors.Command)(monitor)
