"""Renderer backends. Each turns a :class:`synthcv.scene.Scene` into a RenderResult.

Backends are looked up by name so heavy imports (pybullet, bpy) happen only when used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Protocol

from synthcv.scene import RenderResult, Scene

BACKENDS: dict[str, str] = {
    "tiny": "synthcv.render.tiny:TinyRenderer",
    "cycles": "synthcv.render.cycles:CyclesRenderer",
}


class Renderer(Protocol):
    """A backend. One instance lives per worker process and renders many scenes."""

    name: str
    version: str

    def render(self, scene: Scene) -> RenderResult: ...

    def close(self) -> None: ...


def make_renderer(backend: str, options: dict[str, Any] | None = None) -> Renderer:
    if backend not in BACKENDS:
        raise ValueError(f"renderer.backend: got {backend!r}, expected one of {sorted(BACKENDS)}")
    module_name, cls_name = BACKENDS[backend].split(":")
    cls = getattr(import_module(module_name), cls_name)
    return cls(**(options or {}))
