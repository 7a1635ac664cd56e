"""``synthcv genmodel ...`` (placeholder until the generative-models module lands)."""

import typer

app = typer.Typer(no_args_is_help=True)
