"""Help texts render literally (no rich-markup loss) and read alike (capitalised sentences)."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from synthcv.cli import _register, app

if not app.registered_commands:
    _register()

ENV = {"SYNTHCV_TRACKING": "0", "COLUMNS": "300"}


def _commands() -> list[tuple[list[str], object]]:
    found = []

    def walk(cmd: object, path: list[str]) -> None:
        found.append((path, cmd))
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def _flat(text: str) -> str:
    """Help as one line: box-drawing borders and wrapping removed."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.mark.parametrize(
    "path,cmd", _commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_every_option_help_shows_literally_and_reads_as_a_sentence(path, cmd) -> None:
    res = CliRunner().invoke(app, [*path, "--help"], env=ENV)
    assert res.exit_code == 0, res.output
    shown = _flat(res.output)
    for param in cmd.params:
        text = getattr(param, "help", None)
        if not text:
            continue
        literal = text.replace("\\[", "[")  # typer's escape for a literal bracket
        # rich would eat "[seed, i]" as a style tag: the text must survive whole
        assert _flat(literal) in shown, f"{' '.join(path)} {param.name}: {literal!r} not shown"
        assert literal[0].isupper() or literal[0] in "$-`", f"{param.name}: {literal!r}"
        assert literal.rstrip().endswith((".", ")", "]")), f"{param.name}: {literal!r}"
