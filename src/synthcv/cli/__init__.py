"""The ``synthcv`` command line. Sub-command modules import heavy libraries lazily.

Errors leave every command through one path (:mod:`synthcv.cli.errors`): a message naming what
is wrong and where, exit code 2 for usage/input errors and 1 for runtime failures, and a
traceback only with ``synthcv --debug`` or ``SYNTHCV_DEBUG=1``.
"""

from __future__ import annotations

import typer

from synthcv.cli import errors

app = errors.Typer(
    name="synthcv",
    help="Synthetic image data for computer vision.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from synthcv._version import __version__

        typer.echo(f"synthcv {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False,
        "--debug",
        help=f"Show the full traceback of an error (also: {errors.DEBUG_ENV}=1).",
    ),
) -> None:
    """Synthetic image data for computer vision."""
    if debug:
        errors.set_debug(ctx)


def _register() -> None:
    from synthcv.cli import (
        audit,
        augment,
        compare,
        data_commands,
        denoise,
        experiment,
        generate,
        genmodel,
        loop,
        monitor,
        realdata,
        ui,
    )

    generate.register(app)
    data_commands.register(app)
    augment.register(app)
    audit.register(app)
    compare.register(app)
    monitor.register(app)
    loop.register(app)
    ui.register(app)
    app.add_typer(genmodel.app, name="genmodel", help="Deep generative image models.")
    app.add_typer(
        experiment.app, name="experiment", help="Train-on-synthetic / test-on-real experiments."
    )
    app.add_typer(realdata.app, name="realdata", help="Real datasets made from the real digits.")
    app.add_typer(denoise.app, name="denoise", help="Denoising on (noisy, clean) pairs datasets.")


def main() -> None:
    _register()
    app()
