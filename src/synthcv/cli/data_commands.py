"""``synthcv inspect|preview|report|export``: dataset-side commands (``generate`` lives in
generate.py).

Heavy imports happen inside each command so ``synthcv --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from synthcv.cli import errors

EXPORT_FORMATS = ("coco", "webdataset", "yolo", "hf", "bop")


def inspect(
    directory: Path = typer.Argument(..., metavar="DIR", help="Dataset directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Skip re-hashing every file."),
    conformance: bool = typer.Option(
        False,
        "--conformance",
        help="Also test every factor's realized values against its spec distribution "
        "(KS / chi-square, Holm-corrected); flagged factors are reported, not an error.",
    ),
    alpha: float = typer.Option(
        0.01, min=1e-12, max=0.5, help="Family-wise significance level of --conformance."
    ),
) -> None:
    """Counts, class/status histograms, factor ranges and checksum verification."""
    import json

    from synthcv.format import open_dataset
    from synthcv.tools.inspect import render, summarize

    ds = open_dataset(directory)
    summary = summarize(ds, verify=not no_verify)
    report = None
    if conformance:
        from synthcv.conformance import check_conformance

        report = check_conformance(directory, alpha=alpha)
        summary["conformance"] = report.to_dict()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        render(summary)
        if report is not None:
            typer.echo(report.to_markdown())
    check = summary["checksums"]
    if check is not None and not check["ok"]:
        typer.echo(
            f"error: checksum verification failed for {directory}:\n  "
            + "\n  ".join(check["problems"]),
            err=True,
        )
        raise typer.Exit(1)


def preview(
    directory: Path = typer.Argument(..., metavar="DIR", help="Dataset directory."),
    out: Path = typer.Option(
        ..., "--out", "-o", callback=errors.output_file, help="Contact sheet PNG to write."
    ),
    n: int = typer.Option(16, "--n", min=1, help="Number of samples (spread over the dataset)."),
    cols: int = typer.Option(4, "--cols", min=1, help="Tiles per row."),
    clips: int = typer.Option(
        0,
        "--clips",
        min=0,
        help="Also write an animated GIF of this many clips of a sequence dataset (RGB, "
        "tracks, flow) beside the sheet.",
    ),
) -> None:
    """Contact sheet: per sample, RGB with boxes, instance overlay and depth."""
    from synthcv.format import open_dataset
    from synthcv.tools.preview import write_clip_previews, write_preview

    ds = open_dataset(directory)
    path = write_preview(ds, out, n=n, cols=cols)
    typer.echo(f"wrote {path}")
    if clips:
        gifs = write_clip_previews(ds, out.parent / f"{out.stem}-clips", n=clips)
        typer.echo(f"wrote {len(gifs)} clip previews to {gifs[0].parent}")


def report(
    directory: Path = typer.Argument(
        ..., metavar="DIR", help="Dataset directory, or an experiment run directory."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        callback=errors.output_file,
        help="HTML file to write (default DIR/report.html).",
    ),
    n: int = typer.Option(24, "--n", min=1, help="Samples in the grid (spread over the dataset)."),
) -> None:
    """One self-contained HTML page (offline, images embedded): sample grid with switchable
    views and label overlays, class/status/visibility/factor charts, sweep strips; for an
    experiment run directory its results tables and plots."""
    from synthcv.tools.report import write_report

    path = write_report(directory, out, n=n)
    typer.echo(f"wrote {path} ({_size(path.stat().st_size)})")


def _size(nbytes: int) -> str:
    """A byte count as people read it: 812 B, 45.3 kB, 2.41 MB (powers of 1000)."""
    if nbytes < 1000:
        return f"{nbytes} B"
    if nbytes < 1000**2:
        return f"{nbytes / 1000:.1f} kB"
    return f"{nbytes / 1000**2:.2f} MB"


def export(
    directory: Path = typer.Argument(..., metavar="DIR", help="Dataset directory."),
    fmt: str = typer.Option(
        ...,
        "--format",
        "-f",
        help="Export format: coco (a JSON file), webdataset (tar shards), yolo, hf (Hugging "
        "Face parquet) or bop (6D object pose: models, poses, masks).",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Where to write: for coco the JSON file (default DIR/coco/annotations.json), for "
        "webdataset, yolo, hf and bop a new or empty directory (default DIR/webdataset, "
        "DIR/yolo, DIR/hf, DIR/bop).",
    ),
    shard_size: int = typer.Option(
        1000, "--shard-size", min=1, help="Webdataset and hf: samples per shard."
    ),
    yolo_task: str = typer.Option(
        "detect", "--yolo-task", help="Yolo: which labels, detect, segment or pose."
    ),
) -> None:
    """Export a dataset: COCO instances + keypoints, WebDataset tar shards for streaming, the
    YOLO layout (Ultralytics: detect, segment or pose labels), a Hugging Face parquet dataset
    that datasets.load_dataset(OUT) reads, or BOP (object models, 6D poses, masks)."""
    kind = fmt.lower()
    if kind not in EXPORT_FORMATS:
        raise typer.BadParameter(
            f"got {fmt!r}, expected one of {list(EXPORT_FORMATS)}", param_hint=["--format"]
        )
    from synthcv.format import open_dataset

    ds = open_dataset(directory)
    if kind == "coco":
        if out is not None and out.is_dir():
            raise typer.BadParameter(
                f"{out} is a directory; give a file name", param_hint="'--out'"
            )
        from synthcv.tools.coco import export_coco

        path = export_coco(ds, out, progress=True)
    elif kind == "webdataset":
        from synthcv.tools.webdataset import export_webdataset

        path = export_webdataset(ds, out, shard_size=shard_size, progress=True)
    elif kind == "hf":
        from synthcv.tools.hf import export_hf

        path = export_hf(ds, out, shard_size=shard_size)
    elif kind == "bop":
        from synthcv.tools.bop import export_bop

        path = export_bop(ds, out, progress=True)
    else:
        from synthcv.tools.yolo import export_yolo

        path = export_yolo(ds, out, task=yolo_task, progress=True)
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add the dataset commands to the top-level app."""
    for name, fn in (
        ("inspect", inspect),
        ("preview", preview),
        ("report", report),
        ("export", export),
    ):
        app.command(name, cls=errors.Command)(fn)
