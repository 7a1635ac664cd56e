"""``synthcv compare SYNTH REAL``: how a synthetic set differs from a real one (generation QA)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from synthcv.cli import errors

SOURCE_HELP = (
    "a synthcv dataset directory, a samples .npz (images, labels), or "
    "mnist[:train|test|val|train-part]"
)


def _cache_dir() -> Path:
    base = os.environ.get("SYNTHCV_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "synthcv" if base else Path.home() / ".cache" / "synthcv"


def resolve_embedding(
    embedding: str, cache: Path | None, mnist: str | None, seed: int, allow_none: bool = False
):
    """``--embedding``: 'auto' (the cached MNIST CNN), 'pixels', 'none' where allowed, or a
    SmallCNN state-dict file; anything else is a usage error naming the flag."""
    from synthcv.tasks.compare import embedding_from_file, pixel_embedding, reference_embedding

    if embedding == "auto":
        return reference_embedding(cache or _cache_dir(), mnist, seed, progress=True)
    if embedding == "pixels":
        return pixel_embedding()
    if embedding == "none" and allow_none:
        return None
    if not Path(embedding).is_file():
        words = "'auto', 'pixels', 'none'" if allow_none else "'auto', 'pixels'"
        raise typer.BadParameter(
            f"{embedding}: expected {words} or a .pt file that exists", param_hint=["--embedding"]
        )
    return embedding_from_file(Path(embedding))


def compare(
    synth: str = typer.Argument(..., help=f"The synthetic set: {SOURCE_HELP}."),
    real: str = typer.Argument(..., help=f"The real set: {SOURCE_HELP}."),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        callback=errors.output_dir,
        help="Write compare.json, compare.md, farthest_real.png and farthest_synth.png here.",
    ),
    n: int | None = typer.Option(
        2000, min=10, help="Compare a seeded random subset of at most N samples of each set."
    ),
    k: int = typer.Option(3, min=1, max=50, help="Neighbourhood size of the manifold estimates."),
    embedding: str = typer.Option(
        "auto",
        help="Feature space: 'auto' (a CNN trained once on the real MNIST training part, "
        "cached), 'pixels', or a SmallCNN state-dict .pt file.",
    ),
    factor: list[str] | None = typer.Option(
        None, "--factor", "-f", help="Synthetic factor to slice realism by (repeatable)."
    ),
    bins: int = typer.Option(5, min=1, help="Bins for numeric factors."),
    mnist: str | None = typer.Option(None, help="Path of mnist-real-8000.npz (default: found)."),
    cache: Path | None = typer.Option(
        None, help="Where the default embedding is cached (default: $SYNTHCV_CACHE or ~/.cache)."
    ),
    seed: int = typer.Option(0, help="Seed of the subsets and the embedding's training."),
) -> None:
    """Compare SYNTH with REAL in a classifier's feature space: precision (realism), recall
    (coverage of real), density, coverage, a Fréchet distance beside its real-vs-real floor,
    per-class figures, realism by synthetic factor, and the farthest samples as pictures."""
    from synthcv.tasks.compare import compare_sets, load_compare_source, parse_source, write_report

    with errors.blame("SYNTH"):
        s = load_compare_source(synth, n, seed, mnist)
    with errors.blame("REAL"):
        r = load_compare_source(real, n, seed + 1, mnist)
    emb = resolve_embedding(embedding, cache, mnist, seed)
    with errors.blame("--factor"):
        report = compare_sets(s, r, emb, k=k, factors=factor or None, bins=bins, seed=seed)
    if parse_source(synth).kind == "dataset":
        from synthcv.conformance import check_conformance

        report.conformance = check_conformance(synth)
    typer.echo(report.to_markdown())
    if out is not None:
        paths = write_report(report, out, s, r)
        typer.echo(f"wrote {', '.join(str(p) for p in paths)}")


def register(app: typer.Typer) -> None:
    app.command("compare", cls=errors.Command)(compare)
