"""``synthcv realdata ...``: real datasets made from the real digits (no download, no render).

Heavy imports happen inside each command so ``synthcv --help`` stays fast.
"""

from __future__ import annotations

import enum
from pathlib import Path

import typer

from synthcv.cli import errors

app = errors.Typer(no_args_is_help=True)


class Split(enum.StrEnum):
    train = "train"
    test = "test"


@app.command("digit-scenes")
def digit_scenes(
    out: Path = typer.Option(
        ..., "--out", "-o", callback=errors.output_dir, help="Directory to write (new or empty)."
    ),
    split: Split = typer.Option(
        Split.train, "--split", help="MNIST part the digits come from: train (7,000) or test."
    ),
    count: int = typer.Option(1000, "--count", min=1, help="Number of images."),
    size: int = typer.Option(128, "--size", min=32, help="Image side in pixels."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed writes the same bytes."),
    n_source: int | None = typer.Option(
        None,
        "--n-source",
        min=1,
        help="Use only a class-balanced subset of N source digits (e.g. 100: real-small).",
    ),
    mnist: Path | None = typer.Option(
        None,
        "--mnist",
        help="Path of mnist-real-8000.npz (default: $SYNTHCV_MNIST, then searched).",
    ),
    digits: Path | None = typer.Option(
        None,
        "--digits",
        help="Compose from these digits instead of MNIST's: an .npz of images uint8 (N,S,S) and "
        "labels 0..9 (generated samples, digits from fitted templates). --split and --mnist "
        "are then unused.",
    ),
) -> None:
    """Compose multi-digit scenes from real MNIST digits, written as COCO (images/ +
    annotations.json): boxes, masks, categories "0".."9"."""
    from synthcv.digit_scenes import compose_digit_scenes

    path = compose_digit_scenes(
        out,
        split=split.value,
        count=count,
        size=size,
        seed=seed,
        n_source=n_source,
        mnist_path=mnist,
        digits_npz=digits,
    )
    what = f"scenes of {digits.name}" if digits is not None else f"{split.value} scenes"
    typer.echo(f"wrote {count} {what} to {path}")
