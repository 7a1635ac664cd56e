"""``synthcv augment DIR --out DIR2``: write an augmented child dataset (see synthcv.augment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from synthcv.cli import errors


def augment(
    src: Path = typer.Argument(..., help="Input dataset directory."),
    out: Path = typer.Option(
        ..., "--out", "-o", callback=errors.output_dir, help="Output dataset directory."
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        dir_okay=False,
        help="YAML file: a list of ops, or {ops: [...], seed: N}.",
    ),
    op: list[str] = typer.Option(
        [], "--op", help="An op as NAME or NAME:key=value,key=lo..hi (repeatable)."
    ),
    seed: int = typer.Option(0, help="Seed; sample i draws from Generator(\\[seed, i])."),
    overwrite: bool = typer.Option(False, help="Replace an existing dataset at --out."),
    track: bool | None = typer.Option(
        None,
        "--track/--no-track",
        help="Log the run to MLflow (default: on, unless SYNTHCV_TRACKING=0).",
    ),
) -> None:
    """Augment every image of a dataset; labels, depth and masks are kept exactly."""
    from synthcv.augment.dataset import augment_dataset
    from synthcv.format import open_dataset
    from synthcv.tracking import track_augment

    ops: list[dict] = []
    if config is not None:
        config_ops, seed = read_config(config, seed)
        ops.extend(config_ops)
    ops.extend(parse_op(o) for o in op)
    if not ops:
        raise typer.BadParameter("give at least one op (--op NAME or --config FILE)")
    open_dataset(src)  # a source that is not a dataset fails here, before anything is written
    track_augment(
        lambda: augment_dataset(src, out, ops, seed=seed, overwrite=overwrite),
        src=src,
        out=out,
        ops=ops,
        seed=seed,
        enabled=track,
    )
    typer.echo(f"wrote {out}")


def read_config(path: Path, seed: int) -> tuple[list[dict[str, Any]], int]:
    """The ops (each checked) and seed of an ``--config`` file; a problem is a usage error
    naming the file and the op's position."""
    import yaml

    from synthcv.augment.ops import build_op
    from synthcv.safeyaml import YAMLProblem, load_yaml_file

    with errors.blame("--config", f"{path}: "):
        try:
            raw = load_yaml_file(path)
        except YAMLProblem as exc:  # an unreadable file has no location inside it
            raise ValueError(str(exc) if exc.loc else exc.detail) from None
        except yaml.YAMLError as exc:
            raise ValueError(f"not valid YAML: {exc}") from None
        if isinstance(raw, dict):
            unknown = sorted(set(raw) - {"ops", "seed"})
            if unknown:
                raise ValueError(f"unknown keys {unknown}, expected ops and seed")
            if not isinstance(raw.get("seed", seed), int):
                raise ValueError(f"seed: got {raw['seed']!r}, expected an integer")
            seed = raw.get("seed", seed)
            raw = raw.get("ops", [])
        if not isinstance(raw, list):
            raise ValueError(
                f"got {type(raw).__name__}, expected a list of ops or {{ops: [...], seed: N}}"
            )
        for i, cfg in enumerate(raw):
            build_op(cfg, f"ops[{i}]")
    return raw, seed


def parse_op(text: str) -> dict:
    """``blur:sigma=0.5..1.5`` → ``{op: blur, sigma: [0.5, 1.5]}``; plain numbers stay numbers.

    The op is checked (name, keys, ranges): a problem is a usage error of ``--op``."""
    from synthcv.augment.ops import build_op

    name, _, rest = text.partition(":")
    cfg: dict = {"op": name.strip()}
    with errors.blame("--op", f"{text!r}: "):
        for part in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, val = part.partition("=")
            if not eq:
                raise ValueError(f"expected key=value, got {part!r}")
            if ".." in val:
                lo, hi = val.split("..", 1)
                try:
                    cfg[key] = [float(lo), float(hi)]
                except ValueError:
                    raise ValueError(f"{key}: got {val!r}, expected a range LO..HI") from None
            else:
                try:
                    cfg[key] = float(val)
                except ValueError:
                    cfg[key] = val
        build_op(cfg, "")
    return cfg


def register(app: typer.Typer) -> None:
    app.command("augment", cls=errors.Command)(augment)
