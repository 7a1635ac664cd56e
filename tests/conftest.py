"""Fixtures many test modules share."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def tiny():
    """One tiny-backend renderer per test module (a module may define its own ``tiny``)."""
    from synthcv.render.tiny import TinyRenderer

    r = TinyRenderer()
    yield r
    r.close()
