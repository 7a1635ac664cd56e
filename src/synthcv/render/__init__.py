"""Renderer backends: each turns a :class:`synthcv.scene.Scene` into a RenderResult.

A backend describes itself in its own module with a module-level ``BACKEND``
(:class:`Backend`): its name, its options model (the spec's ``renderer:`` section when
``backend:`` names it), where the renderer class lives, whether worker processes may be forked,
where its normals come from, and how to read its version. Every non-private module of this
package that defines ``BACKEND`` is registered, so adding a backend is adding one module.

Importing this package stays light: backend modules import their engines (pybullet, bpy) only
when a renderer is constructed.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar, Literal, Protocol

from pydantic import ConfigDict

from synthcv.scene import RenderResult, Scene
from synthcv.validation import HashStableModel


class Renderer(Protocol):
    """A backend's renderer. One instance lives per worker process and renders many scenes."""

    name: str
    version: str

    def render(self, scene: Scene) -> RenderResult: ...

    def close(self) -> None: ...


class BackendOptions(HashStableModel):
    """Base of every backend's options model (the spec's ``renderer:`` section).

    Subclasses declare ``backend: Literal["name"] = "name"`` first, then their own options.
    """

    model_config = ConfigDict(
        extra="forbid", validate_default=True, frozen=True, allow_inf_nan=False
    )

    #: Name of the option that sets CPU threads per worker (0 = let the runner share the cores).
    threads_option: ClassVar[str | None] = None

    def renderer_kwargs(self, threads: int = 0) -> dict[str, Any]:
        """Keyword arguments for the renderer class, with a worker's share of the cores."""
        kwargs = self.model_dump(exclude={"backend"})
        opt = self.threads_option
        if opt is not None and threads and kwargs.get(opt) == 0:
            kwargs[opt] = threads
        return kwargs


@dataclass(frozen=True)
class Backend:
    """What the rest of synthcv needs to know about a backend, declared by the backend."""

    name: str
    options: type[BackendOptions]
    renderer: str  # "module:Class", imported when a renderer is made
    fork_safe: bool  # may worker processes be forked (fast start) rather than spawned
    normals_source: Literal["geometry", "depth-derived"]
    version: Callable[[], str]  # the engine's version, read without starting it

    def make(self, options: BackendOptions | None = None, threads: int = 0) -> Renderer:
        module_name, cls_name = self.renderer.split(":")
        cls = getattr(importlib.import_module(module_name), cls_name)
        return cls(**(options or self.options()).renderer_kwargs(threads))

    def describe(self) -> dict[str, str]:
        """The manifest's ``backend`` record."""
        return {"name": self.name, "version": self.version(), "normals_source": self.normals_source}


@cache
def backends() -> dict[str, Backend]:
    """Every registered backend by name, in module order (``tiny`` first: the default)."""
    found: dict[str, Backend] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: (m.name != "tiny", m.name)):
        if info.name.startswith("_") or info.ispkg:
            continue
        backend = getattr(importlib.import_module(f"{__name__}.{info.name}"), "BACKEND", None)
        if isinstance(backend, Backend):
            found[backend.name] = backend
    return found


def get_backend(name: str) -> Backend:
    found = backends()
    if name not in found:
        raise ValueError(f"renderer.backend: got {name!r}, expected one of {sorted(found)}")
    return found[name]


def make_renderer(backend: str, options: dict[str, Any] | None = None) -> Renderer:
    """A renderer of ``backend`` with ``options`` (validated by the backend's options model)."""
    b = get_backend(backend)
    return b.make(b.options.model_validate({"backend": backend, **(options or {})}))
