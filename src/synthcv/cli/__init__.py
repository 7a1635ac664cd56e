"""The ``synthcv`` command line. Sub-command modules import heavy libraries lazily."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="synthcv",
    help="Synthetic image data for computer vision.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from synthcv._version import __version__

        typer.echo(f"synthcv {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Synthetic image data for computer vision."""


def _register() -> None:
    from synthcv.cli import augment, data_commands, experiment, generate, genmodel

    generate.register(app)
    data_commands.register(app)
    augment.register(app)
    app.add_typer(genmodel.app, name="genmodel", help="Deep generative image models.")
    app.add_typer(
        experiment.app, name="experiment", help="Train-on-synthetic / test-on-real experiments."
    )


def main() -> None:
    _register()
    app()
