"""``synthcv generate|inspect|preview|export``."""

import typer


def register(app: typer.Typer) -> None:
    pass
