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


def _register() -> None:
    from synthcv.cli import data_commands, generate, genmodel

    generate.register(app)
    data_commands.register(app)
    app.add_typer(genmodel.app, name="genmodel", help="Deep generative image models.")


def main() -> None:
    _register()
    app()
