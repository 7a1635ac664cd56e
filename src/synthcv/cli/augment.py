"""``synthcv augment DIR --out DIR2``: write an augmented child dataset (see synthcv.augment)."""

from __future__ import annotations

from pathlib import Path

import typer


def augment(
    src: Path = typer.Argument(..., help="Input dataset directory."),
    out: Path = typer.Option(..., "--out", "-o", help="Output dataset directory."),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML file: a list of ops, or {ops: [...], seed: N}."
    ),
    op: list[str] = typer.Option(
        [], "--op", help="An op as NAME or NAME:key=value,key=lo..hi (repeatable)."
    ),
    seed: int = typer.Option(0, help="Seed; sample i draws from Generator([seed, i])."),
    overwrite: bool = typer.Option(False, help="Replace an existing dataset at --out."),
    track: bool = typer.Option(True, "--track/--no-track", help="Log the run to MLflow."),
) -> None:
    """Augment every image of a dataset; labels, depth and masks are kept exactly."""
    import yaml

    from synthcv.augment.dataset import augment_dataset
    from synthcv.tracking import track_augment

    ops: list[dict] = []
    if config is not None:
        raw = yaml.safe_load(config.read_text())
        if isinstance(raw, dict):
            seed = int(raw.get("seed", seed))
            raw = raw.get("ops", [])
        if not isinstance(raw, list):
            raise typer.BadParameter(f"{config}: expected a list of ops or {{ops: [...]}}")
        ops.extend(raw)
    ops.extend(parse_op(o) for o in op)
    if not ops:
        raise typer.BadParameter("give at least one op (--op NAME or --config FILE)")
    track_augment(
        lambda: augment_dataset(src, out, ops, seed=seed, overwrite=overwrite),
        src=src,
        out=out,
        ops=ops,
        seed=seed,
        enabled=track,
    )
    typer.echo(f"wrote {out}")


def parse_op(text: str) -> dict:
    """``blur:sigma=0.5..1.5`` → ``{op: blur, sigma: [0.5, 1.5]}``; plain numbers stay numbers."""
    name, _, rest = text.partition(":")
    cfg: dict = {"op": name.strip()}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, val = part.partition("=")
        if not eq:
            raise typer.BadParameter(f"--op {text!r}: expected key=value, got {part!r}")
        if ".." in val:
            lo, hi = val.split("..", 1)
            cfg[key] = [float(lo), float(hi)]
        else:
            try:
                cfg[key] = float(val)
            except ValueError:
                cfg[key] = val
    return cfg


def register(app: typer.Typer) -> None:
    app.command("augment")(augment)
